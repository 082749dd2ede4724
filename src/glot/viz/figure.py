"""What every glot picture shares: token labels, sizes that grow with the token count, captions, saving.

Every picture draws on a private :class:`matplotlib.figure.Figure` (never pyplot, never ``matplotlib.use``: no
global state changes) and is written once per requested format, atomically (temp file in the target folder +
rename). Figure and font sizes scale with the token count, so 40-token sentences stay readable.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from glot.errors import InputError
from glot.io import atomic_open

FORMATS = ("png", "svg", "pdf")
DEFAULT_FORMATS = ("png", "svg")
DPI = 130
#: How pooler names are written in titles and legends.
DISPLAY_NAMES = {"glot": "GLOT", "adapool": "AdaPool", "cls": "CLS", "eos": "EOS", "mean": "Mean", "max": "Max",
                 "mlp": "MLP (no graph)"}  # fmt: skip


def clean_token(token: str, max_chars: int = 14) -> str:
    """Readable label for a (sub)word token: ``##ing`` -> ``·ing`` (word continuation), ``Ġ``/``▁`` (space
    markers) removed, ``$`` escaped (it would start mathtext), long tokens shortened with an ellipsis."""
    text = "·" + token[2:] if token.startswith("##") and len(token) > 2 else token
    text = text.replace("Ġ", " ").replace("▁", " ").replace("Ċ", "\\n").replace("ĉ", "\\t").strip()
    if len(text) == 1 and not text.isalnum():
        text = f"'{text}'"  # a lone comma or period is hard to spot as a label
    text = text or "␣"
    if len(text) > max_chars:
        text = text[: max_chars - 1] + "…"
    return text.replace("$", r"\$")  # a bare $ would switch matplotlib to mathtext


def token_labels(tokens: Sequence[str], n: int) -> list[str]:
    if len(tokens) != n:
        raise InputError(f"got {len(tokens)} tokens but the data has {n} rows; pass one token per row")
    if n == 0:
        raise InputError("nothing to draw: the sentence has no tokens")
    return [clean_token(str(t)) for t in tokens]


def font_size(n: int) -> float:
    """Tick-label font size (pt): 10.5 for short sentences down to 7.5 at >= 36 tokens."""
    return float(np.clip(12.0 - n / 8.0, 7.5, 10.5))


def figure_side(n: int, lo: float = 5.0, hi: float = 13.0) -> float:
    """Figure side (inches) growing with the token count."""
    return float(np.clip(2.5 + 0.25 * n, lo, hi))


def token_ticks(ax: Any, labels: list[str], font: float, y: bool = False) -> None:
    """Token tick labels on x (and y); beyond 60 tokens only every k-th is labelled so none overlap."""
    n, step = len(labels), -(-len(labels) // 60)
    ticks, names = list(range(0, n, step)), labels[::step]
    ax.set_xticks(ticks)
    if n <= 15:
        ax.set_xticklabels(names, rotation=45, ha="right", rotation_mode="anchor", fontsize=font)
    else:
        ax.set_xticklabels(names, rotation=90, fontsize=font)
    if y:
        ax.set_yticks(ticks)
        ax.set_yticklabels(names, fontsize=font)


def caption(fig: Figure, text: str, width_in: float) -> None:
    fig.supxlabel(textwrap.fill(text, width=max(40, int(width_in * 14))), fontsize=8, color="0.3")


def save_figure(fig: Figure, path: str | os.PathLike[str], formats: Sequence[str]) -> list[Path]:
    """Write ``fig`` once per format next to ``path`` (suffix replaced), each atomically; return the paths."""
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise InputError(f"formats must be a non-empty subset of {FORMATS}, got {list(formats)}")
    base = Path(path)
    if base.suffix.lower().lstrip(".") in FORMATS:
        base = base.with_suffix("")
    base.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    written = []
    for fmt in dict.fromkeys(formats):
        target = base.with_name(f"{base.name}.{fmt}")
        with atomic_open(target, "wb") as fh:
            fig.savefig(fh, format=fmt, dpi=DPI)
        written.append(target)
    return written
