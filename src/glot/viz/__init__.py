"""Pictures (matplotlib): token similarity heatmap, token graph, readout weights, accuracy-vs-distractor curves.

Where things are: :mod:`glot.viz.figure` holds what every picture shares (token labels, sizes, atomic save),
:mod:`glot.viz.plots` the four pictures, and :mod:`glot.viz.explanation` runs a backbone and a pooler on one
sentence and draws its three token pictures (:func:`explain`). Every function writes each requested format
atomically and returns the written paths; none touches pyplot's global state.
"""

from __future__ import annotations

from glot.viz.explanation import (
    DEFAULT_TAU,
    Explanation,
    compute_explanation,
    draw_explanation,
    explain,
)
from glot.viz.figure import DEFAULT_FORMATS, DPI, FORMATS, clean_token
from glot.viz.plots import (
    plot_ratio_curves,
    plot_readout_weights,
    plot_similarity_heatmap,
    plot_token_graph,
)

__all__ = [
    "DEFAULT_FORMATS",
    "DEFAULT_TAU",
    "DPI",
    "FORMATS",
    "Explanation",
    "clean_token",
    "compute_explanation",
    "draw_explanation",
    "explain",
    "plot_ratio_curves",
    "plot_readout_weights",
    "plot_similarity_heatmap",
    "plot_token_graph",
]
