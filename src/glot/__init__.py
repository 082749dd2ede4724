"""glot-pooling: GLOT sentence representations from frozen language models via token graphs.

Implements Mantri et al., "Towards Improved Sentence Representations using Token Graphs", ICLR 2026
(arXiv 2603.03389).

The public names below are loaded lazily (PEP 562): ``import glot`` costs almost nothing, and torch, PyG or
transformers are imported only when a name that needs them is first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.5.0"

#: public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "PROMPT_EOL": "glot.backbones.frozen",
    "FrozenBackbone": "glot.backbones.frozen",
    "CachedStates": "glot.cache",
    "PackedBatch": "glot.cache",
    "build_or_load": "glot.cache",
    "cache_key": "glot.cache",
    "GNNConfig": "glot.pooling.config",
    "GraphConfig": "glot.pooling.config",
    "PoolerConfig": "glot.pooling.config",
    "ReadoutConfig": "glot.pooling.config",
    "Encoder": "glot.export.encoder",
    "GlotError": "glot.errors",
    "InputError": "glot.errors",
    "TokenGraph": "glot.pooling.graph",
    "build_token_graph": "glot.pooling.graph",
    "pack": "glot.pooling.packing",
    "unpack": "glot.pooling.packing",
    "POOLERS": "glot.pooling.poolers",
    "Pooler": "glot.pooling.poolers",
    "build_pooler": "glot.pooling.poolers",
    "load_pooler": "glot.pooling.poolers",
    "TrainConfig": "glot.training.config",
    "train": "glot.training.loop",
}

__all__ = [
    "PROMPT_EOL",
    "FrozenBackbone",
    "CachedStates",
    "PackedBatch",
    "build_or_load",
    "cache_key",
    "GNNConfig",
    "GraphConfig",
    "PoolerConfig",
    "ReadoutConfig",
    "Encoder",
    "GlotError",
    "InputError",
    "TokenGraph",
    "build_token_graph",
    "pack",
    "unpack",
    "POOLERS",
    "Pooler",
    "build_pooler",
    "load_pooler",
    "TrainConfig",
    "train",
    "__version__",
]


def __getattr__(name: str) -> Any:
    """Import the module that defines ``name`` on first use (PEP 562) and cache the attribute."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'glot' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:  # static type checkers see the eager imports
    from glot.backbones.frozen import PROMPT_EOL, FrozenBackbone
    from glot.cache import CachedStates, PackedBatch, build_or_load, cache_key
    from glot.errors import GlotError, InputError
    from glot.export.encoder import Encoder
    from glot.pooling.config import GNNConfig, GraphConfig, PoolerConfig, ReadoutConfig
    from glot.pooling.graph import TokenGraph, build_token_graph
    from glot.pooling.packing import pack, unpack
    from glot.pooling.poolers import POOLERS, Pooler, build_pooler, load_pooler
    from glot.training.config import TrainConfig
    from glot.training.loop import train
