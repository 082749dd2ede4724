"""What every pooler is: the :class:`Pooler` base class (one contract, save), the shared readout shell
:class:`ReadoutPooler` (optional token graph -> token GNN -> attention readout) and the registry.

Every pooler maps a sentence's real token states to one vector. ``pooler(hidden, attention_mask)`` takes padded
input and packs it once; ``pooler.forward_packed(x, ptr)`` is the native path.

Each pooler class declares, once, the config fields it takes (``options``) and its default config (``defaults``,
overrides of the section defaults of ``glot.pooling.config``); the registry, ``build_pooler``, the check of a
config against its pooler and the CLI's per-pooler options are all derived from these two class attributes.

The registered poolers live in ``glot.pooling.poolers`` (the paper's) and ``glot.pooling.zoo_poolers`` (beyond
the paper); importing ``glot.pooling.poolers`` registers all of them, in that order, and gives the lookup
(``pooler_class``), ``build_pooler`` and ``load_pooler``. This module imports neither.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from glot import __version__
from glot.errors import InputError
from glot.io import atomic_save_tensors, atomic_write_json
from glot.pooling.config import OPTION_SECTION, PoolerConfig, PoolerSections
from glot.pooling.gnn import TokenGNN, join_blocks
from glot.pooling.graph import TokenGraph, build_token_graph
from glot.pooling.graph_cache import BatchGraph
from glot.pooling.layermix import LayerMix, mixed_width
from glot.pooling.normalize import InputNorm
from glot.pooling.packing import check_packed, pack
from glot.pooling.readout import AttentionReadout

CONFIG_NAME = "pooler_config.json"
WEIGHTS_NAME = "model.safetensors"

#: Every learned pooler standardises the frozen states first (beyond the paper; glot.pooling.normalize):
#: measured on MiniLM tweets (validation) and needed on decoders, whose massive-activation dimensions otherwise
#: decide the graph and saturate the attention scores (docs/results.md 7b: pma without it stayed at 50% on
#: SmolLM2-135M). ``normalize="none"`` is the paper.
ROBUST_DEFAULTS: Mapping[str, Any] = {"normalize": "standardize"}


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

    def fixed_key(self) -> str | None:
        """For a pooler that is a fixed function of the states -- no parameters and no buffers, so nothing
        trains or is fitted (cls, eos, mean, max) -- a key of that function (its config), else None. A run over
        a cache pools each item once under it (:meth:`glot.training.sources.CacheSource.pooled`)."""
        if next(self.parameters(), None) is not None or next(self.buffers(), None) is not None:
            return None
        return json.dumps(self.config.to_dict(), sort_keys=True)

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


class ReadoutPooler(Pooler):
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
        return join_blocks(self.token_blocks(x, ptr, graph))

    def token_blocks(self, x: Tensor, ptr: Tensor, graph: BatchGraph | None = None) -> list[Tensor]:
        """:meth:`token_states` as column blocks, unconcatenated, the form the readout takes them in
        (:func:`glot.pooling.gnn.jumping_knowledge`). Shapes: (N, D) -> blocks whose concatenation is u."""
        x = self.normalizer(x)  # graph and GNN both see the normalised states
        if not self.uses_graph or self.config.gnn.num_layers == 0:
            return self.gnn.blocks(x)
        self._check_tau()
        if graph is not None:
            graph.check(ptr, self.config.graph)
        return self.gnn.on_graph(x, ptr, self.config.graph, None if graph is None else graph.edges)

    def _pool(self, x: Tensor, ptr: Tensor) -> Tensor:
        return self.readout(self.token_blocks(x, ptr), ptr)

    def _pool_on(self, x: Tensor, ptr: Tensor, graph: BatchGraph) -> Tensor:
        return self.readout(self.token_blocks(x, ptr, graph), ptr)

    def token_weights(self, x: Tensor, ptr: Tensor) -> Tensor:
        check_packed(x, ptr)
        param = next(self.parameters())
        x = self.mix(x.to(param.dtype))
        return self.readout.weights(self.token_blocks(x, ptr), ptr)
