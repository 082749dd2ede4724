"""The registered heads beyond the paper: thin shells over the modules of ``glot.pooling.zoo`` (see its
docstring for the designs and parameter counts): ``transformer``, ``pma`` and ``learned-graph``.

They register when ``glot.pooling.poolers`` is imported (it imports this module after registering the paper's
poolers); use ``glot.build_pooler`` / ``glot.load_pooler`` rather than importing this module on its own.
"""

from __future__ import annotations

from torch import Tensor, nn

from glot.pooling.base import ROBUST_DEFAULTS, Pooler, ReadoutPooler, register_pooler
from glot.pooling.config import PoolerConfig
from glot.pooling.graph import TokenGraph
from glot.pooling.graph_cache import BatchGraph
from glot.pooling.normalize import InputNorm
from glot.pooling.readout import AttentionReadout
from glot.pooling.zoo import PMAHead, TokenTransformer, check_heads, check_learned_graph, learned_graph


@register_pooler
class TransformerPooler(ReadoutPooler):
    """Dense self-attention over the tokens: Linear(D, P), K Transformer layers, JK, attention readout."""

    name = "transformer"
    options = ("normalize", "num_layers", "hidden_dim", "heads", "jk", "readout_hidden")
    #: parameter-matched to glot on MiniLM
    defaults = {"num_layers": 1, "hidden_dim": 200, "heads": 4, **ROBUST_DEFAULTS}

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

    def token_blocks(self, x: Tensor, ptr: Tensor, graph: BatchGraph | None = None) -> list[Tensor]:
        assert graph is None, "the transformer head uses no token graph"
        return self.encoder.blocks(self.normalizer(x), ptr)


@register_pooler
class PMAPooler(Pooler):
    """Set-Transformer pooling (PyG's SetTransformerAggregation): Linear(D, P), K SABs, PMA on one seed."""

    name = "pma"
    options = ("normalize", "num_layers", "hidden_dim", "heads")
    #: parameter-matched to glot on MiniLM
    defaults = {"num_layers": 1, "hidden_dim": 208, "heads": 4, **ROBUST_DEFAULTS}

    def __init__(self, config: PoolerConfig) -> None:
        super().__init__(config)
        g = config.gnn
        check_heads(self.name, g.hidden_dim, g.heads)
        self.normalizer = InputNorm(self.token_dim, config.input.normalize)
        self.head = PMAHead(self.token_dim, g.hidden_dim, g.num_layers, g.heads)

    @property
    def out_dim(self) -> int:
        return self.head.width

    def _pool(self, x: Tensor, ptr: Tensor) -> Tensor:
        return self.head(self.normalizer(x), ptr)


@register_pooler
class LearnedGraphPooler(ReadoutPooler):
    """GLOT on a learned graph: cos(Q x_i, Q x_j) > tau with rank-r Q, soft edge weights, GNN, readout."""

    name = "learned-graph"
    uses_graph = True
    options = (
        "normalize",
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
    #: the weights carry the projection's gradient: always on
    defaults = {"weighted": True, "tau": 0.5, **ROBUST_DEFAULTS}

    def __init__(self, config: PoolerConfig) -> None:
        check_learned_graph(config)
        super().__init__(config)
        self.edge_proj = nn.Linear(self.token_dim, config.graph.rank, bias=False)

    def build_graph(self, x: Tensor, ptr: Tensor) -> TokenGraph:
        return learned_graph(
            self.edge_proj(x), ptr, self.config.graph.threshold(), self.config.graph.self_loops
        )

    def token_blocks(self, x: Tensor, ptr: Tensor, graph: BatchGraph | None = None) -> list[Tensor]:
        assert graph is None, "a learned graph is built from the trained projection, never prebuilt"
        x = self.normalizer(x)
        learned = self.build_graph(x, ptr)
        return self.gnn.blocks(x, learned.edge_index, learned.edge_weight)
