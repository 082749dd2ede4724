"""The pictures: token similarity heatmap, token graph, readout weights, and accuracy-vs-distractor curves.

Each function takes data and an output path and returns the written paths (see :mod:`glot.viz.figure` for
the shared sizing and the atomic save).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.collections import LineCollection, PatchCollection
from matplotlib.figure import Figure
from matplotlib.patches import PathPatch
from matplotlib.path import Path as MplPath

from glot.errors import InputError
from glot.training.metrics import mean_std
from glot.viz.figure import (
    DEFAULT_FORMATS,
    DISPLAY_NAMES,
    caption,
    figure_side,
    font_size,
    save_figure,
    token_labels,
    token_ticks,
)


# ----------------------------------------------------------------------------------------------- heatmap
def _outline(mask: np.ndarray) -> np.ndarray:
    """Cell-boundary segments enclosing the True cells of a (L, L) mask. Shapes: -> (S, 2, 2) in (x, y)."""
    pad = np.pad(mask, 1)
    segs = []
    rows, cols = np.nonzero(pad[1:, 1:-1] != pad[:-1, 1:-1])  # horizontal edge above row r, column c
    segs += [((c - 0.5, r - 0.5), (c + 0.5, r - 0.5)) for r, c in zip(rows, cols, strict=True)]
    rows, cols = np.nonzero(pad[1:-1, 1:] != pad[1:-1, :-1])  # vertical edge left of column c, row r
    segs += [((c - 0.5, r - 0.5), (c - 0.5, r + 0.5)) for r, c in zip(rows, cols, strict=True)]
    return np.asarray(segs, dtype=float).reshape(-1, 2, 2)


def plot_similarity_heatmap(
    tokens: Sequence[str],
    sim: Any,
    tau: float,
    path: str | os.PathLike[str],
    *,
    title: str | None = None,
    note: str = "",
    formats: Sequence[str] = DEFAULT_FORMATS,
) -> list[Path]:
    """Cosine-similarity heatmap; cells with cos > tau (the token graph's edges) are outlined in black.

    Shapes: tokens (L,), sim (L, L) -> written file paths.
    """
    s = np.asarray(sim, dtype=float)
    if s.ndim != 2 or s.shape[0] != s.shape[1]:
        raise InputError(f"sim must be a square (L, L) matrix, got shape {s.shape}")
    labels, n = token_labels(tokens, s.shape[0]), s.shape[0]
    font, side = font_size(n), figure_side(n)
    fig = Figure(figsize=(side + 1.2, side), layout="constrained")
    ax = fig.add_subplot()
    im = ax.imshow(s, cmap="viridis", vmin=min(0.0, float(s.min())), vmax=1.0, interpolation="nearest")
    ax.add_collection(
        LineCollection(list(_outline(s > tau)), colors="black", linewidths=1.4 if n <= 20 else 0.9)
    )
    token_ticks(ax, labels, font, y=True)
    ax.set_xlim(-0.5, n - 0.5)
    ax.set_ylim(n - 0.5, -0.5)
    bar = fig.colorbar(im, ax=ax, shrink=0.8)
    bar.ax.axhline(tau, color="black", linewidth=2.5)
    bar.set_label(f"cosine similarity (black line: τ = {tau:g})")
    ax.set_title(title or f"Token similarity: outlined cells have cos > τ = {tau:g} (graph edges)")
    caption(
        fig,
        f"Rows and columns: tokens in sentence order; diagonal = self-similarity (self-loops). {note}",
        side,
    )
    return save_figure(fig, path, formats)


# ----------------------------------------------------------------------------------------------- graph
def _edge_paths(pos: np.ndarray, pairs: np.ndarray) -> list[PathPatch]:
    """Quadratic Bezier arcs bending towards the centre (a chord diagram); pairs (E, 2)."""
    codes = [MplPath.MOVETO, MplPath.CURVE3, MplPath.CURVE3]
    patches = []
    for i, j in pairs:
        a, b = pos[i], pos[j]
        patches.append(PathPatch(MplPath([a, 0.55 * (a + b) / 2, b], codes), fill=False))
    return patches


def _undirected(edge_index: Any, n: int) -> np.ndarray:
    """Unique undirected non-self-loop pairs (i < j) of a (2, E) edge_index. Shapes: -> (E', 2)."""
    ei = np.asarray(edge_index, dtype=np.int64).reshape(2, -1)
    if ei.size and (ei.min() < 0 or ei.max() >= n):
        raise InputError(f"edge_index refers to token {int(ei.max())} but only {n} tokens were given")
    ei = ei[:, ei[0] != ei[1]]
    return np.unique(np.sort(ei.T, axis=1), axis=0) if ei.size else np.zeros((0, 2), dtype=np.int64)


def _node_labels(ax: Any, labels: list[str], angle: np.ndarray, font: float, side: float) -> float:
    """Put token labels just outside the circle (horizontal up to 16 tokens, radial beyond); return the axis
    half-width that keeps the longest label inside the axes."""
    gap_pt, ext_pt = 16.0, max(len(t) for t in labels) * font * 0.62
    frac = min(0.6, 2 * (gap_pt + ext_pt) / (side * 72 * 0.85))
    lim = 1.0 / (1.0 - frac)
    radius = 1.0 + gap_pt * 2 * lim / (side * 72 * 0.85)
    for k, a in enumerate(angle):
        x, y, deg = radius * np.cos(a), radius * np.sin(a), float(np.degrees(a)) % 360
        if len(labels) <= 16:
            ha = "left" if np.cos(a) > 0.3 else "right" if np.cos(a) < -0.3 else "center"
            va = "bottom" if np.sin(a) > 0.3 else "top" if np.sin(a) < -0.3 else "center"
            ax.text(x, y, labels[k], fontsize=font, ha=ha, va=va)
        else:
            left = 90 < deg < 270
            ax.text(x, y, labels[k], fontsize=font, va="center", ha="right" if left else "left",
                    rotation=deg - 180 if left else deg, rotation_mode="anchor")  # fmt: skip
    return lim


def plot_token_graph(
    tokens: Sequence[str],
    edge_index: Any,
    weights: Any | None,
    path: str | os.PathLike[str],
    *,
    title: str | None = None,
    note: str = "",
    weight_label: str = "readout weight π",
    formats: Sequence[str] = DEFAULT_FORMATS,
) -> list[Path]:
    """Token graph on a circle (tokens clockwise from the top in sentence order); node size/colour = weights.

    Self-loops are not drawn (the caption says so). ``weights`` None draws uniform grey nodes.
    Shapes: tokens (L,), edge_index (2, E) token indices, weights (L,) or None -> written file paths.
    """
    n = len(tokens)
    labels, pairs = token_labels(tokens, n), _undirected(edge_index, n)
    font, side = font_size(n) + 1.0, figure_side(n, 6.0, 11.0)
    angle = np.pi / 2 - 2 * np.pi * np.arange(n) / n
    pos = np.stack([np.cos(angle), np.sin(angle)], axis=1)
    fig = Figure(figsize=(side + 1.5, side), layout="constrained")
    ax = fig.add_subplot()
    alpha = float(np.clip(40.0 / max(1, len(pairs)), 0.12, 0.7))
    ax.add_collection(
        PatchCollection(_edge_paths(pos, pairs), match_original=False, facecolor="none",
                        edgecolor="tab:blue", alpha=alpha, linewidth=1.2, zorder=1)
    )  # fmt: skip
    if weights is None:
        ax.scatter(pos[:, 0], pos[:, 1], s=120, c="0.6", edgecolors="black", linewidths=0.6, zorder=2)
    else:
        w = np.asarray(weights, dtype=float).reshape(-1)
        if w.shape != (n,):
            raise InputError(f"weights must have one value per token ({n}), got shape {w.shape}")
        size = 40 + 560 * w / max(float(w.max()), 1e-12)
        dots = ax.scatter(pos[:, 0], pos[:, 1], s=size, c=w, cmap="plasma", edgecolors="black",
                          linewidths=0.6, zorder=2)  # fmt: skip
        fig.colorbar(dots, ax=ax, shrink=0.7).set_label(weight_label)
    lim = _node_labels(ax, labels, angle, font, side)
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(title or f"Token graph: {n} token(s), {len(pairs)} edge(s)")
    caption(fig, f"Tokens clockwise from the top in sentence order; self-loops not drawn. {note}", side)
    return save_figure(fig, path, formats)


# ----------------------------------------------------------------------------------------------- weights
def plot_readout_weights(
    tokens: Sequence[str],
    weights: Any,
    path: str | os.PathLike[str],
    title: str = "Readout weights π per token",
    *,
    ylabel: str = "readout weight π",
    note: str = "",
    formats: Sequence[str] = DEFAULT_FORMATS,
) -> list[Path]:
    """Bar chart of one weight per token, the 3 largest highlighted, the uniform 1/L (mean pooling) level dashed.

    Shapes: tokens (L,), weights (L,) -> written file paths.
    """
    w = np.asarray(weights, dtype=float).reshape(-1)
    labels, n = token_labels(tokens, w.shape[0]), w.shape[0]
    font, width = font_size(n), figure_side(n, 6.0, 14.0)
    fig = Figure(figsize=(width, 4.2), layout="constrained")
    ax = fig.add_subplot()
    top = np.argsort(-w, kind="stable")[: min(3, n)]
    colours = np.array(["tab:blue"] * n, dtype=object)
    colours[top] = "tab:orange"
    ax.bar(range(n), w, color=list(colours), edgecolor="black", linewidth=0.4)
    ax.axhline(1.0 / n, color="0.3", linestyle="--", linewidth=1)
    for k in top:
        ax.annotate(f"{w[k]:.3g}", (k, w[k]), xytext=(0, 2), textcoords="offset points", ha="center",
                    va="bottom", fontsize=font)  # fmt: skip
    token_ticks(ax, labels, font)
    ax.set_xlim(-0.6, n - 0.4)
    ax.set_ylim(0, float(w.max()) * 1.15 + 1e-12)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    text = f"Dashed: uniform weight 1/L = {1.0 / n:.3g} (mean pooling); orange: the 3 largest. {note}"
    caption(fig, text, width)
    return save_figure(fig, path, formats)


# ----------------------------------------------------------------------------------------------- results
def _ratio_stats(runs: Mapping[float, Sequence[float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Sorted ratios, mean and sample std of accuracy (0 for one seed), and the largest seed count."""
    ratios = np.array(sorted(float(r) for r in runs), dtype=float)
    accs = [np.asarray(runs[r], dtype=float).reshape(-1) for r in sorted(runs, key=float)]
    if any(a.size == 0 for a in accs):
        raise InputError("every ratio needs at least one accuracy value, got an empty list")
    mean, std = (np.array(col) for col in zip(*(mean_std(a) for a in accs), strict=True))
    return ratios, mean, std, max(a.size for a in accs)


def percent_scale(results: Mapping[str, Mapping[float, Sequence[float]]]) -> float:
    """100 when every accuracy is a fraction (all values <= 1), else 1 (already percent). Judged on the raw
    per-seed values: a mean near 1 plus its std may exceed 1 and must not flip the unit."""
    values = [float(v) for runs in results.values() for accs in runs.values() for v in np.ravel(accs)]
    return 100.0 if max(values) <= 1.0 else 1.0


def plot_ratio_curves(
    results: Mapping[str, Mapping[float, Sequence[float]]],
    path_stem: str | os.PathLike[str],
    title: str = "Stress test: accuracy vs distractor ratio",
    *,
    formats: Sequence[str] = DEFAULT_FORMATS,
) -> list[Path]:
    """Accuracy vs distractor ratio, one line per pooler (mean ± std over seeds), GLOT highlighted (paper Fig. 3).

    ``results[pooler][ratio]`` lists one accuracy per seed, as fractions in [0, 1] or in percent (if every value
    is <= 1 they are read as fractions). Shapes: none -> written file paths.
    """
    if not results:
        raise InputError("results is empty; expected {pooler: {ratio: [accuracy per seed]}}")
    stats = {name: _ratio_stats(runs) for name, runs in results.items()}
    scale = percent_scale(results)
    fig = Figure(figsize=(7.5, 4.8), layout="constrained")
    ax = fig.add_subplot()
    palette = [colormaps["tab10"](k) for k in range(10)]
    others = iter(c for k, c in enumerate(palette) if k != 3)
    for name, (ratios, mean, std, seeds) in stats.items():
        glot = name.lower().startswith("glot")
        colour = palette[3] if glot else next(others, "0.4")
        label = f"{DISPLAY_NAMES.get(name.lower(), name)} (n={seeds})"
        m, s = mean * scale, std * scale
        ax.errorbar(ratios, m, yerr=s, color=colour, marker="o", capsize=3, label=label,
                    linewidth=2.8 if glot else 1.5, markersize=7 if glot else 5, zorder=3 if glot else 2)  # fmt: skip
        ax.fill_between(ratios, m - s, m + s, color=colour, alpha=0.15, linewidth=0)
    ax.axhline(50.0, color="0.4", linestyle=":", linewidth=1.2, label="chance (50%)")
    all_ratios = sorted({float(r) for runs in results.values() for r in runs})
    ax.set_xticks(all_ratios)
    ax.set_xticklabels([f"{r:g}" for r in all_ratios])
    ax.set_ylim(min(40.0, ax.get_ylim()[0]), 102.0)
    ax.set_xlabel("distractor ratio (noise words / max_length)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    if max(seeds for *_, seeds in stats.values()) > 1:
        caption(fig, "Lines: mean over seeds (n); error bars and bands: ± 1 sample std.", 7.5)
    else:  # one seed has no spread: say so instead of promising error bars
        caption(fig, "One seed per point (n=1): no spread is shown; --seeds 0,1,2 adds ± 1 sample std.", 7.5)
    return save_figure(fig, path_stem, formats)
