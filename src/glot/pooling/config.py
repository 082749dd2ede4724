"""Configuration dataclasses for poolers, with JSON round-trip and validation.

Defaults are the paper's GLUE settings (Mantri et al., ICLR 2026, arXiv 2603.03389, Sec. 5 / README of the
reference code): GATConv, K = 2 layers, width P = 256, jumping knowledge ``cat``, threshold tau = 0.8.

Every option is declared ONCE, as a field of a section (:class:`GraphConfig`, :class:`GNNConfig`,
:class:`ReadoutConfig`) with its help text as field metadata; the ``glot train`` / ``glot compare`` flags are
generated from these fields (:func:`option_fields`) and each pooler class names the fields it takes
(``glot.pooling.poolers``, ``glot.pooling.zoo_poolers``). :class:`PoolerSections` is a pooler's settings without name and input width (what
a training config holds); :class:`PoolerConfig` adds both and is what a saved pooler stores.
"""

from __future__ import annotations

import copy
import typing
import warnings
from dataclasses import Field, asdict, dataclass, field, fields
from typing import Any

from glot.errors import InputError

CONV_NAMES = ("gat", "gatv2", "gcn", "gin", "gine", "mlp")
NORMALIZE_NAMES = ("none", "standardize", "layernorm")
#: Target edge density of ``tau="auto"``: the share of a sentence's ordered token pairs (i != j) joined by an
#: edge, measured on the training states (see glot.pooling.normalize). MiniLM's states at the paper's stress
#: tau = 0.6 have 3.4% (docs/results.md).
DEFAULT_EDGE_DENSITY = 0.05
JK_NAMES = ("cat", "max", "mean", "none")

#: Upper bounds on sizes read from (possibly untrusted) configs, so that a bad value fails at once instead of
#: hanging in a 10**6-layer constructor or asking for terabytes. Far above every published setting.
MAX_DIM = 65536  # input_dim, hidden_dim, readout_hidden (widest HF models today: 16-25K)
MAX_LAYERS = 64  # num_layers (paper: 2 or 4)
MAX_HEADS = 64  # heads
MAX_KNN = 4096  # knn


def _fail(field_name: str, value: Any, expected: str) -> None:
    raise InputError(f"{field_name}={value!r} is invalid: expected {expected}")


def _check_int(field_name: str, value: Any, lo: int, hi: int, hint: str = "") -> None:
    """``value`` must be a real int (not bool, float or str) in [lo, hi]."""
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        _fail(field_name, value, f"an integer in [{lo}, {hi}]{hint}")


def _check_bool(field_name: str, value: Any) -> None:
    """``value`` must be True or False itself (JSON true/false), never a string such as "false"."""
    if not isinstance(value, bool):
        _fail(field_name, value, "true or false (a boolean, not a string or number)")


def _check_choice(field_name: str, value: Any, choices: tuple[str, ...]) -> None:
    if not isinstance(value, str) or value not in choices:
        _fail(field_name, value, f"one of {', '.join(choices)}")


def parse_tau(text: str) -> float | str:
    """A ``--tau`` value: ``auto`` or a number (the CLI flag's type)."""
    return "auto" if text.strip().lower() == "auto" else float(text)


def _option(default: Any, help: str, **extra: Any) -> Any:
    """A pooler option: its default and its help text (+ e.g. ``choices``), kept as field metadata."""
    return field(default=default, metadata={"help": help, **extra})


@dataclass
class GraphConfig:
    """Token graph: edge (i, j) iff cos(x_i, x_j) > tau (paper Eq. 1), plus options beyond the paper.

    ``tau="auto"`` (beyond the paper) picks tau from the training states so that ``edge_density`` of the token
    pairs get an edge (:func:`glot.pooling.normalize.fit_pooler`, run by ``glot train`` / ``glot compare``);
    the fitted pooler stores the number it chose. An explicit tau keeps the paper's behaviour.
    """

    tau: float | str = _option(
        0.8,
        "graph threshold: edge iff cos > tau (paper 0.1-0.8; stress test 0.6), or auto: chosen on the training "
        "states for --edge-density",
        type=parse_tau,
    )
    edge_density: float = _option(
        DEFAULT_EDGE_DENSITY,
        "tau=auto: target share of token pairs joined by an edge, measured on train states",
    )
    knn: int | None = _option(None, "keep only each token's k most similar neighbours above tau; default all")
    weighted: bool = _option(False, "pass each edge's cosine to the GNN as edge weight / attribute")
    self_loops: bool = _option(True, "keep each token's edge to itself (cos = 1 > tau), as the reference")
    rank: int = _option(
        32, "learned-graph: rank of the learned projection whose cosine (> tau) makes the edges"
    )

    def threshold(self) -> float:
        """tau as a number; ``"auto"`` must have been fitted (replaced by a number) before a graph is built."""
        if isinstance(self.tau, str):
            raise InputError(
                f"tau={self.tau!r} is chosen from training states and was never fitted: call "
                "glot.pooling.normalize.fit_pooler(pooler, x, ptr) first (glot train does), or pass a number"
            )
        return float(self.tau)

    def validate(self) -> None:
        tau = self.tau
        if tau != "auto" and (
            isinstance(tau, bool) or not isinstance(tau, (int, float)) or not -1.0 <= tau <= 1.0
        ):
            _fail("tau", tau, "a finite cosine threshold in [-1, 1] (paper uses 0.1-0.8) or 'auto'")
        density = self.edge_density
        if isinstance(density, bool) or not isinstance(density, (int, float)) or not 0.0 < density < 1.0:
            _fail("edge_density", density, f"a share of token pairs in (0, 1), e.g. {DEFAULT_EDGE_DENSITY}")
        if self.knn is not None:
            _check_int("knn", self.knn, 1, MAX_KNN, " or None (all neighbours above tau)")
        _check_bool("weighted", self.weighted)
        _check_bool("self_loops", self.self_loops)
        _check_int("rank", self.rank, 1, MAX_DIM, " (rank of the learned-graph projection)")


@dataclass
class GNNConfig:
    """Token GNN: K layers of width P with ReLU after each, then jumping knowledge."""

    conv: str = _option("gat", "GNN layer (mlp = no graph, the paper's ablation)", choices=CONV_NAMES)
    num_layers: int = _option(2, "GNN / MLP layers K (paper 2 or 4; 0 = readout over the raw states)")
    hidden_dim: int = _option(256, "GNN / MLP width P (paper 64-256)")
    heads: int = _option(1, "attention heads of GAT/GATv2")
    jk: str = _option("cat", "jumping knowledge over the layers' outputs", choices=JK_NAMES)
    mix_layers: int = _option(
        1,
        "hidden layers stacked in each token state (width = mix_layers x D): a learned softmax mix; 1 = none",
    )

    def validate(self) -> None:
        _check_choice("conv", self.conv, CONV_NAMES)
        _check_int("num_layers", self.num_layers, 0, MAX_LAYERS, " (K; paper: 2 or 4)")
        _check_int("hidden_dim", self.hidden_dim, 1, MAX_DIM, " (P; paper: 64, 128 or 256)")
        _check_int("heads", self.heads, 1, MAX_HEADS, " (attention heads of GAT/GATv2)")
        _check_choice("jk", self.jk, JK_NAMES)
        _check_int("mix_layers", self.mix_layers, 1, MAX_LAYERS, " (stacked hidden layers per token state)")


@dataclass
class ReadoutConfig:
    """Attention readout m_i = v^T tanh(W u_i + b); None = max(128, in_dim // 2) as the reference code."""

    readout_hidden: int | None = _option(
        None, "width of the attention readout's scorer; default max(128, its input width // 2)"
    )

    def validate(self) -> None:
        if self.readout_hidden is not None:
            _check_int("readout_hidden", self.readout_hidden, 1, MAX_DIM, " or None (auto)")


@dataclass
class InputConfig:
    """Normalisation of the frozen states before graph and GNN (beyond the paper; see glot.pooling.normalize)."""

    normalize: str = _option(
        "none",
        "normalise the token states first: standardize = per-dimension (x - mean) / std with statistics of the "
        "training states, saved with the pooler; layernorm = per token, parameter-free; none = the paper",
        choices=NORMALIZE_NAMES,
    )

    def validate(self) -> None:
        _check_choice("normalize", self.normalize, NORMALIZE_NAMES)


_SECTIONS: dict[str, type] = {
    "input": InputConfig, "graph": GraphConfig, "gnn": GNNConfig, "readout": ReadoutConfig,
}  # fmt: skip
#: A saved config without this section predates it: its pooler normalised nothing (the paper's behaviour).
_LEGACY_SECTIONS: dict[str, dict[str, Any]] = {"input": {"normalize": "none"}}
SECTION_NAMES = tuple(_SECTIONS)
#: The registered poolers' names, in registry order, for texts that must not import torch (the CLI's --help);
#: tests/test_poolers.py checks it equals ``glot.POOLERS``.
POOLER_NAMES = ("cls", "eos", "mean", "max", "adapool", "mlp", "glot", "transformer", "pma", "learned-graph")
#: option name -> the section holding it (names are unique across sections)
OPTION_SECTION: dict[str, str] = {f.name: sec for sec, cls in _SECTIONS.items() for f in fields(cls)}


def option_fields() -> list[tuple[Field[Any], Any]]:
    """Every pooler option as (dataclass field, its type), in section order: the source of the CLI flags."""
    out: list[tuple[Field[Any], Any]] = []
    for sec_cls in _SECTIONS.values():
        hints = typing.get_type_hints(sec_cls)
        out.extend((f, hints[f.name]) for f in fields(sec_cls))
    return out


def _sections_from_dict(data: dict[str, Any], where: str) -> dict[str, Any]:
    """Pop the three sections out of ``data`` as dataclasses; unknown keys inside a section warn."""
    sections = {}
    for sec, sec_cls in _SECTIONS.items():
        raw = data.pop(sec, None) if sec in data else _LEGACY_SECTIONS.get(sec)
        raw = raw or {}
        if not isinstance(raw, dict):
            raise InputError(f"{where} section {sec!r} must be a JSON object, got {raw!r}")
        raw = dict(raw)
        known = {f.name for f in fields(sec_cls)}
        for key in sorted(set(raw) - known):
            warnings.warn(f"ignoring unknown key {sec}.{key} in {where}", UserWarning, stacklevel=3)
            raw.pop(key)
        sections[sec] = sec_cls(**raw)
    return sections


@dataclass
class PoolerSections:
    """A pooler's settings without its name and input width: the graph, GNN and readout sections.

    Which fields a given pooler reads, and its defaults, are declared on its class (``glot.pooling.poolers``, ``glot.pooling.zoo_poolers``);
    ``Pooler.settings(**options)`` gives the full sections of one pooler.
    """

    graph: GraphConfig = field(default_factory=GraphConfig)
    gnn: GNNConfig = field(default_factory=GNNConfig)
    readout: ReadoutConfig = field(default_factory=ReadoutConfig)
    input: InputConfig = field(default_factory=InputConfig)

    def validate(self) -> None:
        """Check every field's type and bounds (the one validator for built, trained and loaded poolers)."""
        for sec, sec_cls in _SECTIONS.items():
            if not isinstance(getattr(self, sec), sec_cls):
                _fail(sec, getattr(self, sec), f"a {sec_cls.__name__}")
        self.input.validate()
        self.graph.validate()
        self.gnn.validate()
        self.readout.validate()
        tau = self.graph.tau
        if self.graph.weighted and self.gnn.conv == "gcn" and isinstance(tau, (int, float)) and tau < 0:
            _fail(
                "tau",
                self.graph.tau,
                "tau >= 0 with conv='gcn' and weighted=True: GCN divides by the sum of the edge weights "
                "(cosines > tau), which negative cosines can make <= 0 (NaN); raise tau or drop weighted",
            )

    def options(self) -> dict[str, Any]:
        """Every option as one flat dict, e.g. ``{"tau": 0.8, "knn": None, ..., "readout_hidden": None}``."""
        return {name: getattr(getattr(self, sec), name) for name, sec in OPTION_SECTION.items()}

    def with_options(self, **options: Any) -> PoolerSections:
        """A copy with some options (flat keywords such as ``tau=0.6``) changed; an unknown name raises."""
        unknown = sorted(set(options) - set(OPTION_SECTION))
        if unknown:
            raise InputError(
                f"unknown pooler option(s) {unknown}; the options are: {', '.join(OPTION_SECTION)}"
            )
        out = copy.deepcopy(self)
        for key, value in options.items():
            setattr(getattr(out, OPTION_SECTION[key]), key, value)
        return out

    def config(self, name: str, input_dim: int) -> PoolerConfig:
        """The full :class:`PoolerConfig` of pooler ``name`` on states of width ``input_dim`` (a copy)."""
        parts = copy.deepcopy(self)
        return PoolerConfig(
            name=name, input_dim=input_dim, graph=parts.graph, gnn=parts.gnn, readout=parts.readout,
            input=parts.input,
        )  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PoolerSections:
        """Inverse of :meth:`to_dict` (values are checked by :meth:`validate`, not here)."""
        if not isinstance(data, dict):
            raise InputError(f"pooler sections must be a JSON object, got {type(data).__name__}")
        data = dict(data)
        sections = _sections_from_dict(data, "pooler options")
        for key in sorted(data):
            warnings.warn(f"ignoring unknown key {key!r} in pooler options", UserWarning, stacklevel=2)
        return cls(**sections)


@dataclass
class PoolerConfig:
    """Everything needed to rebuild a pooler: its registry name, input width and the three sections."""

    name: str
    input_dim: int
    graph: GraphConfig = field(default_factory=GraphConfig)
    gnn: GNNConfig = field(default_factory=GNNConfig)
    readout: ReadoutConfig = field(default_factory=ReadoutConfig)
    input: InputConfig = field(default_factory=InputConfig)

    @property
    def sections(self) -> PoolerSections:
        """The input, graph, GNN and readout sections (shared with this config, not copied)."""
        return PoolerSections(graph=self.graph, gnn=self.gnn, readout=self.readout, input=self.input)

    def validate(self) -> None:
        """Check every field's type and bounds (the one validator for built and loaded poolers alike)."""
        if not isinstance(self.name, str):
            _fail("name", self.name, "a pooler name (a string such as 'glot')")
        _check_int("input_dim", self.input_dim, 1, MAX_DIM, ", the backbone's hidden width (384 for MiniLM)")
        self.sections.validate()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PoolerConfig:
        """Inverse of :meth:`to_dict`. Unknown keys warn (forward compatibility), bad values raise."""
        if not isinstance(data, dict):
            raise InputError(f"a pooler config must be a JSON object, got {type(data).__name__}")
        data = dict(data)
        for key in ("name", "input_dim"):
            if key not in data:
                raise InputError(f"pooler config is missing {key!r}; got keys {sorted(data)}")
        sections = _sections_from_dict(data, "pooler config")
        name, input_dim = data.pop("name"), data.pop("input_dim")
        for key in sorted(data):
            warnings.warn(f"ignoring unknown key {key!r} in pooler config", UserWarning, stacklevel=2)
        cfg = cls(name=name, input_dim=input_dim, **sections)
        cfg.validate()
        return cfg
