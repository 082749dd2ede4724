"""Configuration dataclasses for poolers, with JSON round-trip and validation.

Defaults are the paper's GLUE settings (Mantri et al., ICLR 2026, arXiv 2603.03389, Sec. 5 / README of the
reference code): GATConv, K = 2 layers, width P = 256, jumping knowledge ``cat``, threshold tau = 0.8.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from glot.errors import InputError

CONV_NAMES = ("gat", "gatv2", "gcn", "gin", "gine", "mlp")
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


@dataclass
class GraphConfig:
    """Token graph: edge (i, j) iff cos(x_i, x_j) > tau (paper Eq. 1), plus options beyond the paper."""

    tau: float = 0.8
    knn: int | None = None  # keep only each token's top-k neighbours above tau (None = all)
    weighted: bool = False  # pass the cosine as edge weight / attribute
    self_loops: bool = True  # the reference code keeps the diagonal (cos = 1 > tau)

    def validate(self) -> None:
        tau = self.tau
        if isinstance(tau, bool) or not isinstance(tau, (int, float)) or not -1.0 <= tau <= 1.0:
            _fail("tau", tau, "a finite cosine threshold in [-1, 1] (paper uses 0.1-0.8)")
        if self.knn is not None:
            _check_int("knn", self.knn, 1, MAX_KNN, " or None (all neighbours above tau)")
        _check_bool("weighted", self.weighted)
        _check_bool("self_loops", self.self_loops)


@dataclass
class GNNConfig:
    """Token GNN: K layers of width P with ReLU after each, then jumping knowledge."""

    conv: str = "gat"
    num_layers: int = 2
    hidden_dim: int = 256
    heads: int = 1
    jk: str = "cat"

    def validate(self) -> None:
        _check_choice("conv", self.conv, CONV_NAMES)
        _check_int("num_layers", self.num_layers, 0, MAX_LAYERS, " (K; paper: 2 or 4)")
        _check_int("hidden_dim", self.hidden_dim, 1, MAX_DIM, " (P; paper: 64, 128 or 256)")
        _check_int("heads", self.heads, 1, MAX_HEADS, " (attention heads of GAT/GATv2)")
        _check_choice("jk", self.jk, JK_NAMES)


@dataclass
class ReadoutConfig:
    """Attention readout m_i = v^T tanh(W u_i + b); None = max(128, in_dim // 2) as the reference code."""

    readout_hidden: int | None = None

    def validate(self) -> None:
        if self.readout_hidden is not None:
            _check_int("readout_hidden", self.readout_hidden, 1, MAX_DIM, " or None (auto)")


_SECTIONS: dict[str, type] = {"graph": GraphConfig, "gnn": GNNConfig, "readout": ReadoutConfig}
OPTION_SECTION: dict[str, str] = {f.name: sec for sec, cls in _SECTIONS.items() for f in fields(cls)}


@dataclass
class PoolerConfig:
    """Everything needed to rebuild a pooler: its registry name, input width and the three sections."""

    name: str
    input_dim: int
    graph: GraphConfig = field(default_factory=GraphConfig)
    gnn: GNNConfig = field(default_factory=GNNConfig)
    readout: ReadoutConfig = field(default_factory=ReadoutConfig)

    def validate(self) -> None:
        """Check every field's type and bounds (the one validator for built and loaded poolers alike)."""
        if not isinstance(self.name, str):
            _fail("name", self.name, "a pooler name (a string such as 'glot')")
        _check_int("input_dim", self.input_dim, 1, MAX_DIM, ", the backbone's hidden width (384 for MiniLM)")
        for sec, sec_cls in _SECTIONS.items():
            if not isinstance(getattr(self, sec), sec_cls):
                _fail(sec, getattr(self, sec), f"a {sec_cls.__name__}")
        self.graph.validate()
        self.gnn.validate()
        self.readout.validate()
        if self.graph.weighted and self.gnn.conv == "gcn" and self.graph.tau < 0:
            _fail(
                "tau",
                self.graph.tau,
                "tau >= 0 with conv='gcn' and weighted=True: GCN divides by the sum of the edge weights "
                "(cosines > tau), which negative cosines can make <= 0 (NaN); raise tau or drop weighted",
            )

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
        sections = {}
        for sec, sec_cls in _SECTIONS.items():
            raw = data.pop(sec, None) or {}
            if not isinstance(raw, dict):
                raise InputError(f"pooler config section {sec!r} must be a JSON object, got {raw!r}")
            raw = dict(raw)
            known = {f.name for f in fields(sec_cls)}
            for key in sorted(set(raw) - known):
                warnings.warn(f"ignoring unknown key {sec}.{key} in pooler config", UserWarning, stacklevel=2)
                raw.pop(key)
            sections[sec] = sec_cls(**raw)
        name, input_dim = data.pop("name"), data.pop("input_dim")
        for key in sorted(data):
            warnings.warn(f"ignoring unknown key {key!r} in pooler config", UserWarning, stacklevel=2)
        cfg = cls(name=name, input_dim=input_dim, **sections)
        cfg.validate()
        return cfg
