"""glot-pooling: GLOT sentence representations from frozen language models via token graphs.

Implements Mantri et al., "Towards Improved Sentence Representations using Token Graphs", ICLR 2026
(arXiv 2603.03389).

The public names below are loaded lazily (PEP 562): ``import glot`` costs almost nothing, and torch, PyG or
transformers are imported only when a name that needs them is first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: public name -> module that defines it (relative to this package)
_EXPORTS: dict[str, str] = {
    "PROMPT_EOL": ".backbone",
    "FrozenBackbone": ".backbone",
    "CachedStates": ".cache",
    "PackedBatch": ".cache",
    "build_or_load": ".cache",
    "cache_key": ".cache",
    "GNNConfig": ".config",
    "GraphConfig": ".config",
    "PoolerConfig": ".config",
    "ReadoutConfig": ".config",
    "Encoder": ".encoder",
    "GlotError": ".errors",
    "InputError": ".errors",
    "TokenGraph": ".graph",
    "build_token_graph": ".graph",
    "pack": ".packing",
    "unpack": ".packing",
    "POOLERS": ".poolers",
    "Pooler": ".poolers",
    "build_pooler": ".poolers",
    "load_pooler": ".poolers",
    "TrainConfig": ".trainconfig",
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
    "__version__",
]


def __getattr__(name: str) -> Any:
    """Import the module that defines ``name`` on first use (PEP 562) and cache the attribute."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'glot' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:  # static type checkers see the eager imports
    from .backbone import PROMPT_EOL, FrozenBackbone
    from .cache import CachedStates, PackedBatch, build_or_load, cache_key
    from .config import GNNConfig, GraphConfig, PoolerConfig, ReadoutConfig
    from .encoder import Encoder
    from .errors import GlotError, InputError
    from .graph import TokenGraph, build_token_graph
    from .packing import pack, unpack
    from .poolers import POOLERS, Pooler, build_pooler, load_pooler
    from .trainconfig import TrainConfig
