"""Explain one sentence: run a backbone and a pooler on it and draw its heatmap, token graph and weights.

GLOT: Mantri et al., ICLR 2026, arXiv 2603.03389. Poolers without a token graph get one drawn at
:data:`DEFAULT_TAU` for reference; poolers without readout weights (max) get the share of dimensions each
token wins instead.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from glot.errors import InputError
from glot.viz.figure import DEFAULT_FORMATS, DISPLAY_NAMES
from glot.viz.plots import plot_readout_weights, plot_similarity_heatmap, plot_token_graph

# torch and glot.pooling (PyG) are imported inside the functions that run a model: `import glot.viz` (the result
# plots of `glot compare`, matplotlib + numpy only) does not pay for them.

DEFAULT_TAU = 0.6  # tau used to draw a graph for poolers that have none (paper's stress-test setting)


@dataclass
class Explanation:
    """What :func:`explain` draws for one sentence. Shapes: tokens (L,), sim (L, L), edge_index (2, E),
    weights (L,)."""

    tokens: list[str]
    sim: np.ndarray
    edge_index: np.ndarray
    weights: np.ndarray
    tau: float
    pooler: str
    weight_label: str = "readout weight π"
    notes: list[str] = field(default_factory=list)


def _token_strings(backbone: Any, text: str) -> list[str]:
    """Readable strings of the real tokens the backbone embeds for ``text`` (decoded one id at a time)."""
    if hasattr(backbone, "token_ids"):  # FrozenBackbone: also right for long texts under long="chunk"
        ids = backbone.token_ids([text])[0]
    else:
        enc = backbone.tokenize([text])
        ids = enc["input_ids"][0][enc["attention_mask"][0].bool()].tolist()
    raw = backbone.tokenizer.convert_ids_to_tokens(ids)
    out = []
    for i, tok in zip(ids, raw, strict=True):
        piece = backbone.tokenizer.decode([i])
        out.append(tok if (not piece.strip() or "\ufffd" in piece or tok.startswith("##")) else piece)
    return out


def _graph_for(pooler: Any, x: Any, ptr: Any, tau: float | None) -> tuple[Any, float, list[str]]:
    """The pooler's own token graph, or (no graph in the pooler) one at ``tau`` / 0.6 drawn for reference."""
    from glot.pooling.config import GraphConfig
    from glot.pooling.graph import build_token_graph

    cfg, name = getattr(pooler, "config", None), getattr(pooler, "name", type(pooler).__name__)
    if getattr(pooler, "uses_graph", False) and cfg is not None and cfg.gnn.num_layers > 0:
        if tau is not None and abs(tau - cfg.graph.tau) > 1e-12:
            raise InputError(f"this {name} pooler builds its graph at tau={cfg.graph.tau}; drop tau={tau}")
        return pooler.build_graph(x, ptr), float(cfg.graph.tau), []
    tau = DEFAULT_TAU if tau is None else float(tau)
    note = f"The {name} pooler uses no token graph: edges drawn at τ = {tau:g} for reference only."
    return build_token_graph(x, ptr, GraphConfig(tau=tau)), tau, [note]


def _weights_for(pooler: Any, x: Any, ptr: Any) -> tuple[Any, str, list[str]]:
    """Readout weights π; for max pooling (no π) the share of feature dimensions each token wins."""
    import torch

    weights = pooler.token_weights(x, ptr)
    if weights is not None:
        return weights, "readout weight π", []
    share = torch.bincount(x.argmax(dim=0), minlength=x.shape[0]).float() / x.shape[1]
    note = "Max pooling has no readout weights; shown instead: the share of dimensions each token wins."
    return share, "share of dimensions won (max)", [note]


def compute_explanation(backbone: Any, pooler: Any, text: str, tau: float | None = None) -> Explanation:
    """Run ``backbone`` on one sentence and get similarity, graph and token weights from ``pooler``.

    ``tau`` only applies to poolers without a token graph (default 0.6, drawn for reference); graph poolers
    are drawn at their own tau. Shapes: text -> see :class:`Explanation`.
    """
    import torch

    from glot.pooling.graph import cosine_similarity

    if not isinstance(text, str) or not text.strip():
        raise InputError(f"text must be a non-empty sentence, got {text!r}")
    tokens = _token_strings(backbone, text)
    x, ptr = backbone.embed_packed([text])
    if x.shape[0] != len(tokens):
        raise InputError(f"backbone returned {x.shape[0]} token states for {len(tokens)} tokens")
    param = next(pooler.parameters(), None)
    x = x.to(param.device if param is not None else "cpu")
    ptr = ptr.to(x.device)
    with torch.no_grad():
        graph, tau, graph_notes = _graph_for(pooler, x, ptr, tau)
        weights, label, weight_notes = _weights_for(pooler, x, ptr)
    return Explanation(
        tokens=tokens, sim=cosine_similarity(x).cpu().numpy(), edge_index=graph.edge_index.cpu().numpy(),
        weights=weights.float().cpu().numpy(), tau=tau, pooler=str(getattr(pooler, "name", "pooler")),
        weight_label=label, notes=graph_notes + weight_notes,
    )  # fmt: skip


def draw_explanation(
    expl: Explanation, out_dir: str | os.PathLike[str], formats: Sequence[str] = DEFAULT_FORMATS
) -> dict[str, list[Path]]:
    """Write the heatmap, graph and weight pictures of an :class:`Explanation` into ``out_dir``."""
    out = Path(out_dir)
    note = " ".join(expl.notes)
    name = DISPLAY_NAMES.get(expl.pooler, expl.pooler)
    return {
        "heatmap": plot_similarity_heatmap(
            expl.tokens, expl.sim, expl.tau, out / "heatmap", note=note, formats=formats
        ),
        "graph": plot_token_graph(
            expl.tokens, expl.edge_index, expl.weights, out / "graph", formats=formats, note=note,
            weight_label=expl.weight_label, title=f"{name} token graph at τ = {expl.tau:g}",
        ),
        "weights": plot_readout_weights(
            expl.tokens, expl.weights, out / "weights", f"{name}: {expl.weight_label} per token",
            ylabel=expl.weight_label, note=note, formats=formats,
        ),
    }  # fmt: skip


def explain(
    backbone: Any,
    pooler: Any,
    text: str,
    out_dir: str | os.PathLike[str],
    *,
    tau: float | None = None,
    formats: Sequence[str] = DEFAULT_FORMATS,
) -> dict[str, list[Path]]:
    """Draw similarity heatmap, token graph and token weights for one sentence into ``out_dir``.

    Returns {"heatmap": paths, "graph": paths, "weights": paths}. Shapes: text (one string) -> files.
    """
    return draw_explanation(compute_explanation(backbone, pooler, text, tau=tau), out_dir, formats)
