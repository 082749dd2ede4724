"""glot-pooling: GLOT sentence representations from frozen language models via token graphs.

Implements Mantri et al., "Towards Improved Sentence Representations using Token Graphs", ICLR 2026
(arXiv 2603.03389).
"""

from __future__ import annotations

__version__ = "0.1.0"

from .backbone import PROMPT_EOL, FrozenBackbone
from .cache import CachedStates, PackedBatch, build_or_load, cache_key
from .config import GNNConfig, GraphConfig, PoolerConfig, ReadoutConfig
from .encoder import Encoder
from .graph import TokenGraph, build_token_graph
from .packing import pack, unpack
from .poolers import POOLERS, Pooler, build_pooler, load_pooler

__all__ = [
    "CachedStates",
    "PackedBatch",
    "build_or_load",
    "cache_key",
    "Encoder",
    "FrozenBackbone",
    "PROMPT_EOL",
    "GNNConfig",
    "GraphConfig",
    "POOLERS",
    "Pooler",
    "PoolerConfig",
    "ReadoutConfig",
    "TokenGraph",
    "build_pooler",
    "build_token_graph",
    "load_pooler",
    "pack",
    "unpack",
    "__version__",
]
