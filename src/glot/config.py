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


def _fail(field_name: str, value: Any, expected: str) -> None:
    raise InputError(f"{field_name}={value!r} is invalid: expected {expected}")


@dataclass
class GraphConfig:
    """Token graph: edge (i, j) iff cos(x_i, x_j) > tau (paper Eq. 1), plus options beyond the paper."""

    tau: float = 0.8
    knn: int | None = None  # keep only each token's top-k neighbours above tau (None = all)
    weighted: bool = False  # pass the cosine as edge weight / attribute
    self_loops: bool = True  # the reference code keeps the diagonal (cos = 1 > tau)

    def validate(self) -> None:
        if (
            isinstance(self.tau, bool)
            or not isinstance(self.tau, (int, float))
            or not -1.0 <= self.tau <= 1.0
        ):
            _fail("tau", self.tau, "a cosine threshold in [-1, 1] (paper uses 0.1-0.8)")
        if self.knn is not None and (
            isinstance(self.knn, bool) or not isinstance(self.knn, int) or self.knn < 1
        ):
            _fail("knn", self.knn, "None or an integer >= 1")


@dataclass
class GNNConfig:
    """Token GNN: K layers of width P with ReLU after each, then jumping knowledge."""

    conv: str = "gat"
    num_layers: int = 2
    hidden_dim: int = 256
    heads: int = 1
    jk: str = "cat"

    def validate(self) -> None:
        if self.conv not in CONV_NAMES:
            _fail("conv", self.conv, f"one of {', '.join(CONV_NAMES)}")
        if isinstance(self.num_layers, bool) or not isinstance(self.num_layers, int) or self.num_layers < 0:
            _fail("num_layers", self.num_layers, "an integer K >= 0 (paper: 2 or 4)")
        if isinstance(self.hidden_dim, bool) or not isinstance(self.hidden_dim, int) or self.hidden_dim < 1:
            _fail("hidden_dim", self.hidden_dim, "an integer P >= 1 (paper: 64, 128 or 256)")
        if isinstance(self.heads, bool) or not isinstance(self.heads, int) or self.heads < 1:
            _fail("heads", self.heads, "an integer >= 1 (attention heads of GAT/GATv2)")
        if self.jk not in JK_NAMES:
            _fail("jk", self.jk, f"one of {', '.join(JK_NAMES)}")


@dataclass
class ReadoutConfig:
    """Attention readout m_i = v^T tanh(W u_i + b); None = max(128, in_dim // 2) as the reference code."""

    readout_hidden: int | None = None

    def validate(self) -> None:
        h = self.readout_hidden
        if h is not None and (isinstance(h, bool) or not isinstance(h, int) or h < 1):
            _fail("readout_hidden", h, "None (auto) or an integer >= 1")


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
        d = self.input_dim
        if isinstance(d, bool) or not isinstance(d, int) or d <= 0:
            _fail("input_dim", d, "the backbone's hidden width, an integer > 0 (e.g. 384 for MiniLM)")
        self.graph.validate()
        self.gnn.validate()
        self.readout.validate()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PoolerConfig:
        """Inverse of :meth:`to_dict`. Unknown keys warn (forward compatibility), bad values raise."""
        data = dict(data)
        for key in ("name", "input_dim"):
            if key not in data:
                raise InputError(f"pooler config is missing {key!r}; got keys {sorted(data)}")
        sections = {}
        for sec, sec_cls in _SECTIONS.items():
            raw = dict(data.pop(sec, None) or {})
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
