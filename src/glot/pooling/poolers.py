"""The paper's poolers: cls, eos, mean, max, adapool, mlp, glot — and the lookup, build and load of every
registered pooler (the heads beyond the paper, transformer / pma / learned-graph, are registered from
``glot.pooling.zoo_poolers`` at the end of this module).

GLOT (Mantri et al., ICLR 2026, arXiv 2603.03389) = token graph -> token GNN -> attention readout; AdaPool
(Brothers, ICML 2025) is the same readout on raw states, i.e. GLOT with K = 0; ``mlp`` is the paper's no-graph
ablation (per-token MLP + readout). The contract, the registry and the shared readout shell: ``glot.pooling.base``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor

from glot.errors import InputError
from glot.io import load_weights, read_json
from glot.pooling.base import (
    CONFIG_NAME,
    POOLERS,
    ROBUST_DEFAULTS,
    WEIGHTS_NAME,
    Pooler,
    ReadoutPooler,
    register_pooler,
)
from glot.pooling.config import OPTION_SECTION, PoolerConfig
from glot.pooling.readout import first_token, last_token, max_readout, mean_readout

__all__ = [
    "CONFIG_NAME", "POOLERS", "ROBUST_DEFAULTS", "WEIGHTS_NAME", "AdaPooler", "CLSPooler", "EOSPooler",
    "GLOTPooler", "LearnedGraphPooler", "MLPPooler", "MaxPooler", "MeanPooler", "PMAPooler", "Pooler",
    "ReadoutPooler", "TransformerPooler", "build_pooler", "from_config", "load_pooler", "pooler_class",
    "register_pooler",
]  # fmt: skip


def pooler_class(name: str) -> type[Pooler]:
    """The registered pooler class called ``name``; a one-line InputError listing the names otherwise."""
    if not isinstance(name, str) or name not in POOLERS:
        raise InputError(f"unknown pooler {name!r}; valid names: {', '.join(sorted(POOLERS))}")
    return POOLERS[name]


@register_pooler
class CLSPooler(Pooler):
    """First real token (BERT's [CLS])."""

    name = "cls"

    def _pool(self, x: Tensor, ptr: Tensor) -> Tensor:
        return first_token(x, ptr)

    def token_weights(self, x: Tensor, ptr: Tensor) -> Tensor:
        w = x.new_zeros(x.shape[0])
        w[ptr[:-1]] = 1.0
        return w


@register_pooler
class EOSPooler(Pooler):
    """Last real token (decoders' EOS pooling); correct for left and right padding."""

    name = "eos"

    def _pool(self, x: Tensor, ptr: Tensor) -> Tensor:
        return last_token(x, ptr)

    def token_weights(self, x: Tensor, ptr: Tensor) -> Tensor:
        w = x.new_zeros(x.shape[0])
        w[ptr[1:] - 1] = 1.0
        return w


@register_pooler
class MeanPooler(Pooler):
    """Mean over real tokens."""

    name = "mean"

    def _pool(self, x: Tensor, ptr: Tensor) -> Tensor:
        return mean_readout(x, ptr)

    def token_weights(self, x: Tensor, ptr: Tensor) -> Tensor:
        lengths = (ptr[1:] - ptr[:-1]).to(x.dtype)
        return torch.repeat_interleave(1.0 / lengths, ptr[1:] - ptr[:-1])


@register_pooler
class MaxPooler(Pooler):
    """Element-wise max over real tokens."""

    name = "max"

    def _pool(self, x: Tensor, ptr: Tensor) -> Tensor:
        return max_readout(x, ptr)


@register_pooler
class AdaPooler(ReadoutPooler):
    """AdaPool: attention readout over the raw states (scorer Linear(D, 128) -> tanh -> Linear(128, 1))."""

    name = "adapool"
    options = ("normalize", "readout_hidden")
    defaults = {"num_layers": 0, "readout_hidden": 128, **ROBUST_DEFAULTS}


@register_pooler
class MLPPooler(ReadoutPooler):
    """The paper's no-graph ablation: per-token MLP (K Linear+ReLU layers, same JK) then attention readout."""

    name = "mlp"
    options = ("normalize", "num_layers", "hidden_dim", "jk", "readout_hidden")
    defaults = {"conv": "mlp", **ROBUST_DEFAULTS}


@register_pooler
class GLOTPooler(ReadoutPooler):
    """GLOT: token graph (cos > tau) -> K-layer token GNN with jumping knowledge -> attention readout."""

    name = "glot"
    uses_graph = True
    prebuilt_graph = True
    options = tuple(o for o in OPTION_SECTION if o != "rank")  # tau, knn, weighted, conv, num_layers, ...
    #: the section defaults are GLOT's (the paper's GLUE settings), plus the standardised inputs
    defaults: ClassVar[Mapping[str, Any]] = dict(ROBUST_DEFAULTS)


def build_pooler(name: str, input_dim: int, **options: Any) -> Pooler:
    """Build a pooler by registry name. Shapes: input_dim = D, the backbone's hidden width.

    ``glot`` options: tau, knn, weighted, self_loops, conv, num_layers, hidden_dim, heads, jk, readout_hidden.
    Defaults are the paper's GLUE settings (GAT, K = 2, P = 256, JK cat, tau = 0.8). Each pooler's own
    options and defaults: ``POOLERS[name].options`` / ``POOLERS[name].settings()``.
    """
    return from_config(pooler_class(name).settings(**options).config(name, input_dim))


def from_config(config: PoolerConfig) -> Pooler:
    """Rebuild a pooler (fresh weights) from its config."""
    config.validate()
    return pooler_class(config.name)(config)


def load_pooler(directory: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> Pooler:
    """Restore a pooler written by ``save_pretrained``: JSON config + safetensors, no unpickling."""
    path = Path(directory)
    meta = read_json(path / CONFIG_NAME)
    if not isinstance(meta, dict) or "pooler" not in meta:
        raise InputError(f"{path / CONFIG_NAME} has no 'pooler' section; it was not written by glot")
    try:
        pooler = from_config(PoolerConfig.from_dict(meta["pooler"]))
    except InputError as err:  # name the file: the config is the user's (or an attacker's) edit
        raise InputError(f"{path / CONFIG_NAME}: {err}") from err
    load_weights(pooler, path / WEIGHTS_NAME)  # damaged file, wrong shapes or keys: one InputError naming it
    if isinstance(meta.get("input_fit"), dict):  # kept, so that a re-save (export) still says what was fitted
        pooler.input_fit = meta["input_fit"]
    return pooler.to(map_location)


# the heads beyond the paper register after the paper's (so the registry, `--poolers all` and every table list
# the paper first); zoo_poolers imports glot.pooling.base, never this module
from glot.pooling.zoo_poolers import LearnedGraphPooler, PMAPooler, TransformerPooler  # noqa: E402
