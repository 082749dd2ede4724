"""Poolers: one contract, one registry — cls, eos, mean, max, adapool, mlp, glot (+ transformer, pma,
learned-graph: beyond the paper, glot.pooling.zoo).

Every pooler maps a sentence's real token states to one vector. ``pooler(hidden, attention_mask)`` takes padded
input and packs it once; ``pooler.forward_packed(x, ptr)`` is the native path. GLOT (Mantri et al., ICLR 2026,
arXiv 2603.03389) = token graph -> token GNN -> attention readout; AdaPool (Brothers, ICML 2025) is the same
readout on raw states, i.e. GLOT with K = 0; ``mlp`` is the paper's no-graph ablation (per-token MLP + readout).

Each pooler class declares, once, the config fields it takes (``options``) and its default config (``defaults``,
overrides of the section defaults of ``glot.pooling.config``); the registry, :func:`build_pooler`, the check of
a config against its pooler and the CLI's per-pooler options are all derived from these two class attributes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from glot import __version__
from glot.errors import InputError
from glot.io import atomic_save_tensors, atomic_write_json, load_weights, read_json
from glot.pooling.config import OPTION_SECTION, PoolerConfig, PoolerSections
from glot.pooling.gnn import TokenGNN
from glot.pooling.graph import TokenGraph, build_token_graph
from glot.pooling.graph_cache import BatchGraph
from glot.pooling.layermix import LayerMix, mixed_width
from glot.pooling.normalize import InputNorm
from glot.pooling.packing import check_packed, pack
from glot.pooling.readout import AttentionReadout, first_token, last_token, max_readout, mean_readout
from glot.pooling.zoo import PMAHead, TokenTransformer, check_heads, check_learned_graph, learned_graph

CONFIG_NAME = "pooler_config.json"
WEIGHTS_NAME = "model.safetensors"


class Pooler(nn.Module):
    """Base class. Shapes: forward (B, L, D) + (B, L) -> (B, out_dim); forward_packed (N, D) + (B + 1,)."""

    name: ClassVar[str] = ""
    #: the config fields this pooler reads: its build_pooler keyword options (and CLI flags)
    options: ClassVar[tuple[str, ...]] = ()
    #: its default config, as flat overrides of the section defaults (which are GLOT's); the poolers
    #: without a GNN keep num_layers = 0 so that their saved config says so
    defaults: ClassVar[Mapping[str, Any]] = {"num_layers": 0}
    #: what glot.pooling.normalize.fit_pooler measured on the training states (saved in pooler_config.json)
    input_fit: dict[str, Any] | None = None
    #: whether tau was chosen by tau="auto" (the config then holds the chosen number)
    tau_auto: bool = False

    def __init__(self, config: PoolerConfig) -> None:
        super().__init__()
        config.validate()
        type(self).check(config.sections)
        self.config = config
        self.input_dim = config.input_dim
        self.token_dim = mixed_width(config.input_dim, config.gnn.mix_layers)  # width after the layer mix
        self.layer_mix = LayerMix(config.gnn.mix_layers) if config.gnn.mix_layers > 1 else None

    @classmethod
    def settings(cls, **options: Any) -> PoolerSections:
        """This pooler's full settings: its defaults with ``options`` applied (only those it takes)."""
        unknown = sorted(set(options) - set(cls.options))
        if unknown:
            raise InputError(
                f"pooler {cls.name!r} does not take option(s) {unknown}; its options are: {cls._allowed()}"
            )
        return PoolerSections().with_options(**{**cls.defaults, **options})

    @classmethod
    def check(cls, sections: PoolerSections) -> None:
        """Refuse settings that change a field this pooler does not read (it would be silently ignored)."""
        defaults = cls.settings().options()
        bad = [
            f"{k}={v!r} (it uses {defaults[k]!r})"
            for k, v in sections.options().items()
            if k not in cls.options and v != defaults[k]
        ]
        if bad:
            raise InputError(
                f"pooler {cls.name!r} does not take {', '.join(bad)}; its options are: {cls._allowed()} "
                f"(start from POOLERS[{cls.name!r}].settings(), or use build_pooler)"
            )

    @classmethod
    def changed_options(cls, sections: PoolerSections) -> dict[str, Any]:
        """The options of ``sections`` that differ from this pooler's defaults, e.g. ``{"tau": 0.6}``."""
        defaults = cls.settings().options()
        return {k: v for k, v in sections.options().items() if k in cls.options and v != defaults[k]}

    @classmethod
    def _allowed(cls) -> str:
        return ", ".join(cls.options) if cls.options else "none"

    @property
    def out_dim(self) -> int:
        return self.token_dim

    def mix(self, x: Tensor) -> Tensor:
        """Stacked layers -> their learned mix (identity for one layer). Shapes: (N, n * D) -> (N, D)."""
        return x if self.layer_mix is None else self.layer_mix(x)

    def forward(self, hidden: Tensor, attention_mask: Tensor) -> Tensor:
        """Pool padded states; padding side does not matter. Shapes: (B, L, D), (B, L) -> (B, out_dim)."""
        x, ptr = pack(hidden, attention_mask)
        return self.forward_packed(x, ptr)

    def forward_packed(self, x: Tensor, ptr: Tensor, *, graph: BatchGraph | None = None) -> Tensor:
        """Pool packed states; ``graph``: the batch's prebuilt token graph (GLOT), else built on the fly.

        Shapes: x (N, D), ptr (B + 1,) -> (B, out_dim).
        """
        check_packed(x, ptr)
        if x.shape[1] != self.input_dim:
            raise InputError(
                f"token states have width D = {x.shape[1]}, but this {self.name!r} pooler was built for "
                f"input_dim = {self.input_dim}; build it with the backbone's hidden size"
            )
        param = next(self.parameters(), None)
        x = x.to(param.dtype if param is not None else torch.float32)
        x = self.mix(x)  # several stacked hidden layers -> one (mix_layers > 1), else x itself
        if graph is not None:  # a prebuilt graph (training over a cache: glot.pooling.graph_cache)
            return self._pool_on(x, ptr.to(x.device), graph)
        return self._pool(x, ptr.to(x.device))

    def _pool(self, x: Tensor, ptr: Tensor) -> Tensor:
        raise NotImplementedError

    def _pool_on(self, x: Tensor, ptr: Tensor, graph: BatchGraph) -> Tensor:
        raise AssertionError(f"pooler {self.name!r} uses no token graph, yet it was handed one")

    def token_weights(self, x: Tensor, ptr: Tensor) -> Tensor | None:
        """How much each token contributes to its sentence vector (N,), or None where undefined (max)."""
        return None

    def num_parameters(self, trainable_only: bool = True) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def save_pretrained(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``pooler_config.json`` + ``model.safetensors`` (pooler weights only), each atomically."""
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        atomic_save_tensors(path / WEIGHTS_NAME, self.state_dict())
        meta: dict[str, Any] = {"glot_version": __version__, "pooler": self.config.to_dict()}
        if self.input_fit:  # what fit_pooler measured (tau=auto, normalisation): for reading
            meta["input_fit"] = self.input_fit
        atomic_write_json(path / CONFIG_NAME, meta)
        return path


POOLERS: dict[str, type[Pooler]] = {}


def register_pooler(cls: type[Pooler]) -> type[Pooler]:
    """Class decorator: add a pooler to the registry under ``cls.name`` (its options must be config fields)."""
    if "mix_layers" not in cls.options:  # every pooler takes the layer mix (glot.pooling.layermix)
        cls.options = (*cls.options, "mix_layers")
    if not cls.name or cls.name in POOLERS:
        raise InputError(
            f"a pooler needs a new, non-empty name; got {cls.name!r} (taken: {', '.join(POOLERS)})"
        )
    unknown = sorted((set(cls.options) | set(cls.defaults)) - set(OPTION_SECTION))
    if unknown:
        raise InputError(
            f"pooler {cls.name!r} names option(s) {unknown} that are no config fields; "
            f"the fields are: {', '.join(OPTION_SECTION)}"
        )
    cls.settings().validate()
    POOLERS[cls.name] = cls
    return cls


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


#: The learned poolers standardise the frozen states first (beyond the paper; glot.pooling.normalize): measured
#: on MiniLM tweets (validation) and needed on decoders, whose massive-activation dimensions otherwise decide
#: the graph. ``normalize="none"`` is the paper.
ROBUST_DEFAULTS: Mapping[str, Any] = {"normalize": "standardize"}


class _ReadoutPooler(Pooler):
    """Shared shell: (optional graph) -> token GNN -> attention readout."""

    uses_graph: ClassVar[bool] = False
    #: whether its token graph depends only on the (normalised) input states and the graph config, so training
    #: over a cache may build it once (glot.pooling.graph_cache); a learned graph does not
    prebuilt_graph: ClassVar[bool] = False

    def __init__(self, config: PoolerConfig) -> None:
        super().__init__(config)
        self.normalizer = InputNorm(self.token_dim, config.input.normalize)  # before graph and GNN
        self.gnn = TokenGNN(self.token_dim, config.gnn, weighted=self.uses_graph and config.graph.weighted)
        self.readout = AttentionReadout(self.gnn.out_dim, config.readout.readout_hidden)

    @property
    def out_dim(self) -> int:
        return self.gnn.out_dim

    def build_graph(self, x: Tensor, ptr: Tensor) -> TokenGraph:
        """The token graph this pooler uses on states ``x`` (built on the normalised states; empty for poolers
        without one). Shapes: see graph.py."""
        return self._graph(self.normalizer(x), ptr)

    def _graph(self, xn: Tensor, ptr: Tensor) -> TokenGraph:
        if not self.uses_graph or self.config.gnn.num_layers == 0:
            return TokenGraph(xn.new_zeros(2, 0, dtype=torch.long), None)
        self._check_tau()
        return build_token_graph(xn, ptr, self.config.graph)

    def _check_tau(self) -> None:
        if self.config.graph.tau == "auto":  # one line, before any graph work (GraphConfig.threshold agrees)
            raise InputError(
                "this pooler's tau is 'auto' and was never fitted: glot train / compare choose it from the "
                "training states; in Python call glot.pooling.normalize.fit_pooler(pooler, x, ptr) on training "
                "states first, or build the pooler with a number, e.g. tau=0.8"
            )

    def token_states(self, x: Tensor, ptr: Tensor, graph: BatchGraph | None = None) -> Tensor:
        """Refined token states u_i of the normalised states (on ``graph`` when given, a graph built on the
        normalised states). Shapes: (N, D) -> (N, out_dim)."""
        x = self.normalizer(x)  # graph and GNN both see the normalised states
        if not self.uses_graph or self.config.gnn.num_layers == 0:
            return self.gnn(x)
        self._check_tau()
        if graph is not None:
            graph.check(ptr, self.config.graph)
        return self.gnn.on_graph(x, ptr, self.config.graph, None if graph is None else graph.edges)

    def _pool(self, x: Tensor, ptr: Tensor) -> Tensor:
        return self.readout(self.token_states(x, ptr), ptr)

    def _pool_on(self, x: Tensor, ptr: Tensor, graph: BatchGraph) -> Tensor:
        return self.readout(self.token_states(x, ptr, graph), ptr)

    def token_weights(self, x: Tensor, ptr: Tensor) -> Tensor:
        check_packed(x, ptr)
        param = next(self.parameters())
        x = self.mix(x.to(param.dtype))
        return self.readout.weights(self.token_states(x, ptr), ptr)


@register_pooler
class AdaPooler(_ReadoutPooler):
    """AdaPool: attention readout over the raw states (scorer Linear(D, 128) -> tanh -> Linear(128, 1))."""

    name = "adapool"
    options = ("normalize", "readout_hidden")
    defaults = {"num_layers": 0, "readout_hidden": 128, **ROBUST_DEFAULTS}


@register_pooler
class MLPPooler(_ReadoutPooler):
    """The paper's no-graph ablation: per-token MLP (K Linear+ReLU layers, same JK) then attention readout."""

    name = "mlp"
    options = ("normalize", "num_layers", "hidden_dim", "jk", "readout_hidden")
    defaults = {"conv": "mlp", **ROBUST_DEFAULTS}


@register_pooler
class GLOTPooler(_ReadoutPooler):
    """GLOT: token graph (cos > tau) -> K-layer token GNN with jumping knowledge -> attention readout."""

    name = "glot"
    uses_graph = True
    prebuilt_graph = True
    options = tuple(o for o in OPTION_SECTION if o != "rank")  # tau, knn, weighted, conv, num_layers, ...
    #: the section defaults are GLOT's (the paper's GLUE settings), plus the standardised inputs
    defaults: ClassVar[Mapping[str, Any]] = dict(ROBUST_DEFAULTS)


# ---- beyond the paper: thin shells over glot.pooling.zoo (see its docstring for the designs and sizes)
@register_pooler
class TransformerPooler(_ReadoutPooler):
    """Dense self-attention over the tokens: Linear(D, P), K Transformer layers, JK, attention readout."""

    name = "transformer"
    options = ("num_layers", "hidden_dim", "heads", "jk", "readout_hidden")
    defaults = {"num_layers": 1, "hidden_dim": 200, "heads": 4}  # parameter-matched to glot on MiniLM

    def __init__(self, config: PoolerConfig) -> None:
        Pooler.__init__(self, config)
        g = config.gnn
        check_heads(self.name, g.hidden_dim, g.heads)
        self.normalizer = InputNorm(self.token_dim, config.input.normalize)
        self.encoder = TokenTransformer(self.token_dim, g.hidden_dim, g.num_layers, g.heads, g.jk)
        self.readout = AttentionReadout(self.encoder.out_dim, config.readout.readout_hidden)

    @property
    def out_dim(self) -> int:
        return self.encoder.out_dim

    def token_states(self, x: Tensor, ptr: Tensor, graph: BatchGraph | None = None) -> Tensor:
        assert graph is None, "the transformer head uses no token graph"
        return self.encoder(self.normalizer(x), ptr)


@register_pooler
class PMAPooler(Pooler):
    """Set-Transformer pooling (PyG's SetTransformerAggregation): Linear(D, P), K SABs, PMA on one seed."""

    name = "pma"
    options = ("num_layers", "hidden_dim", "heads")
    defaults = {"num_layers": 1, "hidden_dim": 208, "heads": 4}  # parameter-matched to glot on MiniLM

    def __init__(self, config: PoolerConfig) -> None:
        super().__init__(config)
        g = config.gnn
        check_heads(self.name, g.hidden_dim, g.heads)
        self.head = PMAHead(self.token_dim, g.hidden_dim, g.num_layers, g.heads)

    @property
    def out_dim(self) -> int:
        return self.head.width

    def _pool(self, x: Tensor, ptr: Tensor) -> Tensor:
        return self.head(x, ptr)


@register_pooler
class LearnedGraphPooler(_ReadoutPooler):
    """GLOT on a learned graph: cos(Q x_i, Q x_j) > tau with rank-r Q, soft edge weights, GNN, readout."""

    name = "learned-graph"
    uses_graph = True
    options = (
        "tau",
        "rank",
        "self_loops",
        "conv",
        "num_layers",
        "hidden_dim",
        "heads",
        "jk",
        "readout_hidden",
    )
    defaults = {"weighted": True, "tau": 0.5}  # the weights carry the projection's gradient: always on

    def __init__(self, config: PoolerConfig) -> None:
        check_learned_graph(config)
        super().__init__(config)
        self.edge_proj = nn.Linear(self.token_dim, config.graph.rank, bias=False)

    def build_graph(self, x: Tensor, ptr: Tensor) -> TokenGraph:
        return learned_graph(
            self.edge_proj(x), ptr, self.config.graph.threshold(), self.config.graph.self_loops
        )

    def token_states(self, x: Tensor, ptr: Tensor, graph: BatchGraph | None = None) -> Tensor:
        assert graph is None, "a learned graph is built from the trained projection, never prebuilt"
        x = self.normalizer(x)
        learned = self.build_graph(x, ptr)
        return self.gnn(x, learned.edge_index, learned.edge_weight)


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
