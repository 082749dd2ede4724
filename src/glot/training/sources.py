"""Where a training batch's token states come from: the hidden-state cache, or a live backbone forward.

The training loop (:mod:`glot.training.loop`) asks a state source for ``packed(split, rows) -> (x, ptr)``: the
real-token states of every text column of ``rows`` of ``split`` ("train" or "eval"), column after column
(texts, then texts_pair, then negatives), packed for ONE pooler forward, and for ``graph(split, rows, ptr)`` the
batch's prebuilt token graph (or None: the pooler builds it). A :class:`CacheSource` built with the pooler's
graph config hands out graphs built once for the whole cache (:mod:`glot.pooling.graph_cache`). A frozen-head run reads them from the
cache (:class:`CacheSource`: the backbone ran once per unique text); a fine-tuning run computes them with a
backbone forward on the batch's texts (:class:`BackboneSource`), with gradients into the backbone while training.
For a fixed pooler (no parameters, no buffers: cls, eos, mean, max) a :class:`CacheSource` also keeps each item's
pooled vector the first time it is asked for (``pooled``), so later epochs and evaluations only look it up;
:func:`pool_rows` is the one place where a batch is pooled, for training and inference alike.

:func:`head_outputs` is the one batched inference over a source (validation, eval predictions, reloaded
fine-tuned models); :func:`predict` turns its outputs into what a metric scores.

Device: a source hands out every piece of a batch (states, ``ptr``, prebuilt graph, labels) on its ``device``,
the device the pooler + head train on (:func:`glot.distributed.device`); :func:`to_device` is the one copy of
the data path (pinned memory + ``non_blocking`` to CUDA). Predictions come back on the CPU.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

import numpy as np
import torch
from torch import Tensor

from glot.cache.task import COLUMNS, CachedTask
from glot.data import Split
from glot.pooling.graph import TokenGraph
from glot.pooling.graph_cache import BatchGraph, shared_graphs, training_graphs
from glot.pooling.poolers import Pooler
from glot.training.heads import TaskHead
from glot.training.metrics import compute

if TYPE_CHECKING:
    from glot.backbones.frozen import FrozenBackbone

__all__ = [
    "BackboneSource", "CacheSource", "StateSource", "head_outputs", "pool_rows", "predict", "score", "to_device",
]  # fmt: skip

#: Most memory a :class:`CacheSource` spends on one fixed pooler's vectors (one fp32 vector per cache item);
#: past it the pooler runs on every batch as before. 1 GiB: 700K MiniLM items, 65K items of a 4096-wide LLM.
MAX_POOLED_BYTES = 1 << 30


def to_device(tensor: Tensor, device: torch.device) -> Tensor:
    """``tensor`` on ``device``: host memory is pinned and copied ``non_blocking`` to CUDA (the copy overlaps
    the host's next work); a tensor already there is returned as is."""
    if tensor.device == device:
        return tensor
    if device.type == "cuda" and tensor.device.type == "cpu":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


def _graph_to(graph: BatchGraph | None, device: torch.device) -> BatchGraph | None:
    """A prebuilt batch graph with its edges on ``device`` (its ``ptr`` stays the CPU record it was built for)."""
    if graph is None:
        return None
    weight = None if graph.edges.edge_weight is None else to_device(graph.edges.edge_weight, device)
    edges = TokenGraph(to_device(graph.edges.edge_index, device), weight)
    return graph._replace(edges=edges)


def _labels(split: Split, rows: np.ndarray, device: torch.device) -> Tensor | None:
    """The labels of ``rows`` of ``split`` on ``device`` (None for a task without labels). Shapes: (B,)."""
    if split.labels is None:
        return None
    return to_device(torch.as_tensor(np.asarray(split.labels)[rows]), device)


class StateSource(Protocol):
    """Token states of a task's rows. Shapes: rows (B,) of a split with k text columns -> x (N, D), ptr (k B + 1,)."""

    device: torch.device  # where every piece of a batch is handed out (the pooler + head's device)

    def packed(self, split: str, rows: np.ndarray) -> tuple[Tensor, Tensor]:
        """Packed states of every text column of ``rows`` of ``split``, column after column."""
        ...

    def inference_order(self, split: str, rows: np.ndarray) -> np.ndarray:
        """Positions into ``rows`` in the order inference batches them (a permutation of 0..len(rows)-1)."""
        ...

    def graph(self, split: str, rows: np.ndarray, ptr: Tensor) -> BatchGraph | None:
        """The prebuilt token graph of that packed batch, or None (the pooler builds it on the fly)."""
        ...

    def pooled(self, pooler: Pooler, split: str, rows: np.ndarray) -> Tensor | None:
        """``pooler``'s vectors of ``rows`` (every text column) pooled once per item, or None (pool the batch)."""
        ...

    def labels(self, split: str, rows: np.ndarray) -> Tensor | None:
        """The labels of ``rows`` of ``split`` on the source's device (None without labels)."""
        ...

    def train(self, mode: bool = True) -> None:
        """Training mode (dropout on) of whatever computes the states; a no-op for fixed states."""
        ...


class CacheSource:
    """States read from the task's hidden-state cache (the frozen backbone ran once per unique text).

    ``graphs``: the pooler whose token graphs are built once for the cache (on its normalised states, for its
    graph config as it stands at first use, i.e. after ``tau="auto"`` is fitted; :mod:`glot.pooling.graph_cache`),
    so each batch carries its graph. None, or a pooler without a graph: the pooler builds graphs per batch.
    ``device``: where batches are handed out (the pooler + head's device; default the CPU, where the cache is).
    """

    def __init__(
        self, cached: CachedTask, graphs: Pooler | None = None, device: torch.device | str | None = None
    ) -> None:
        self.cached = cached
        self.graphs = graphs
        self.device = torch.device("cpu" if device is None else device)
        self._pooled: dict[str, tuple[Tensor, np.ndarray]] = {}  # fixed_key -> (vectors, pooled yet) per item

    def _ids(self, split: str, rows: np.ndarray) -> np.ndarray:
        return np.concatenate([self.cached.ids[split][c][rows] for c in self.cached.columns(split)])

    def packed(self, split: str, rows: np.ndarray) -> tuple[Tensor, Tensor]:
        """Shapes: rows (B,) -> x (N, D) float32, ptr (k B + 1,) int64 for the split's k text columns."""
        x, ptr = self.cached.states.packed(self._ids(split, rows))
        return to_device(x, self.device), to_device(ptr, self.device)

    def graph(self, split: str, rows: np.ndarray, ptr: Tensor) -> BatchGraph | None:
        """The batch's token graph from the graphs built once for the cache (None without ``graphs``)."""
        config = None if self.graphs is None else training_graphs(self.graphs)
        if config is None:
            return None
        normalizer = getattr(self.graphs, "normalizer", None)
        graphs = shared_graphs(self.cached.states, config, normalizer, device=self.device)
        return _graph_to(graphs.batch(self._ids(split, rows), ptr), self.device)

    def pooled(self, pooler: Pooler, split: str, rows: np.ndarray) -> Tensor | None:
        """The vectors of a fixed pooler (:meth:`~glot.pooling.base.Pooler.fixed_key`: cls, eos, mean, max),
        each cache item pooled the first time it is asked for and kept for the run: over a cache they never
        change, so every later epoch, validation and eval pass is a lookup (only the head trains). None for
        any other pooler, or when one vector per cache item would pass :data:`MAX_POOLED_BYTES`.

        Shapes: rows (B,) of a split with k text columns -> (k B, out_dim), as one packed forward gives them.
        """
        key = pooler.fixed_key()
        if key is None or len(self.cached.states) * pooler.out_dim * 4 > MAX_POOLED_BYTES:
            return None
        ids = self._ids(split, rows)
        if key not in self._pooled:
            vectors = torch.zeros(len(self.cached.states), pooler.out_dim, device=self.device)
            self._pooled[key] = vectors, np.zeros(len(self.cached.states), dtype=bool)
        vectors, done = self._pooled[key]
        todo = np.unique(ids[~done[ids]])
        if todo.size:
            x, ptr = self.cached.states.packed(todo)
            with torch.no_grad():
                z = pooler.forward_packed(to_device(x, self.device), to_device(ptr, self.device))
            vectors[torch.from_numpy(todo).to(self.device)] = z.float()
            done[todo] = True
        return vectors[torch.from_numpy(ids).to(self.device)]

    def labels(self, split: str, rows: np.ndarray) -> Tensor | None:
        return _labels(self.cached.task.splits[split], rows, self.device)

    def inference_order(self, split: str, rows: np.ndarray) -> np.ndarray:
        return np.arange(len(rows))

    def train(self, mode: bool = True) -> None:
        return None


class BackboneSource:
    """States from a forward of the (trainable) backbone on the batch's texts: with gradients when autograd is
    on (training), without under ``torch.no_grad()`` (inference). The forward is :class:`FrozenBackbone`'s own.
    ``frozen=True`` (online mode, :mod:`glot.training.online`): the backbone stays in eval mode, no gradients.
    Batches are handed out on the backbone's device, where the pooler + head train."""

    def __init__(
        self, backbone: FrozenBackbone, splits: Mapping[str, Split], *, frozen: bool = False
    ) -> None:
        self.backbone = backbone
        self.splits = splits
        self.frozen = frozen
        self.device = backbone.device

    def _texts(self, split: str, rows: np.ndarray) -> list[list[str]]:
        data = self.splits[split]
        columns = [getattr(data, c) for c in COLUMNS if getattr(data, c) is not None]
        return [[column[i] for i in rows.tolist()] for column in columns]

    def packed(self, split: str, rows: np.ndarray) -> tuple[Tensor, Tensor]:
        """Shapes: rows (B,) -> x (N, D) float32, ptr (k B + 1,) int64 for the split's k text columns."""
        texts = [t for column in self._texts(split, rows) for t in column]
        x, ptr = self.backbone.embed_packed(texts, grad=not self.frozen)
        return to_device(x, self.device), to_device(ptr, self.device)

    def inference_order(self, split: str, rows: np.ndarray) -> np.ndarray:
        """Longest rows first (characters over all columns), so each inference batch pads little."""
        lengths = [sum(len(t) for t in row) for row in zip(*self._texts(split, rows), strict=True)]
        return np.argsort([-n for n in lengths], kind="stable")

    def graph(self, split: str, rows: np.ndarray, ptr: Tensor) -> BatchGraph | None:
        return None  # the states change with the backbone: graphs are built per batch

    def pooled(self, pooler: Pooler, split: str, rows: np.ndarray) -> Tensor | None:
        return None  # likewise the pooled vectors

    def labels(self, split: str, rows: np.ndarray) -> Tensor | None:
        return _labels(self.splits[split], rows, self.device)

    def train(self, mode: bool = True) -> None:
        self.backbone.model.train(mode and not self.frozen)


def pool_rows(pooler: Pooler, source: StateSource, split: str, rows: np.ndarray) -> Tensor:
    """The pooled vectors of ``rows`` (every text column, column after column): the source's vectors pooled
    once where it keeps them (a fixed pooler over a cache), else one packed forward, on the batch's prebuilt
    graph where there is one. Training and inference both pool through here.

    Shapes: rows (B,) of a split with k text columns -> (k B, out_dim).
    """
    z = source.pooled(pooler, split, rows)
    if z is not None:
        return z
    x, ptr = source.packed(split, rows)
    return pooler.forward_packed(x, ptr, graph=source.graph(split, rows, ptr))


def head_outputs(
    pooler: Pooler, head: TaskHead, source: StateSource, split: str, rows: np.ndarray, batch: int
) -> Tensor:
    """Raw head outputs for ``rows`` of ``split`` in eval mode without gradients; every text column of a
    batch is pooled in ONE packed forward. Reads no labels.

    Shapes: rows (B,) -> the head's output for B rows (e.g. logits (B, C); (B, B) similarities for mrr).
    """
    pooler.eval()
    head.eval()
    source.train(False)
    order = source.inference_order(split, rows)
    with torch.no_grad():
        zs: list[tuple[Tensor, ...]] = []
        for start in range(0, len(rows), batch):
            chunk = rows[order[start : start + batch]]
            z = pool_rows(pooler, source, split, chunk)
            zs.append(torch.split(z, len(chunk)))
        inverse = torch.from_numpy(np.argsort(order))
        return head(*[torch.cat(parts)[inverse.to(parts[0].device)] for parts in zip(*zs, strict=True)])


def predict(
    pooler: Pooler,
    head: TaskHead,
    cached: CachedTask | StateSource,
    split: str,
    rows: np.ndarray,
    metric: str,
    batch: int,
) -> Tensor:
    """Predictions for ``rows`` (head.predict; the full similarity matrix for mrr). Reads no labels.

    Shapes: rows (B,) -> (B,) predictions, or (B, B) float similarities for mrr; on the CPU.
    """
    source = CacheSource(cached, device=model_device(head)) if isinstance(cached, CachedTask) else cached
    output = head_outputs(pooler, head, source, split, rows, batch)
    return output.float().cpu() if metric == "mrr" else torch.as_tensor(head.predict(output))


def model_device(*modules: torch.nn.Module) -> torch.device:
    """The device of the first parameter of ``modules`` (the CPU when none has one): where a reloaded model's
    batches go."""
    for module in modules:
        param = next(module.parameters(), None)
        if param is not None:
            return param.device
    return torch.device("cpu")


def score(metric: str, preds: Tensor, labels: np.ndarray | None) -> float:
    """``metric`` of :func:`predict`'s predictions against ``labels`` (unused for mrr)."""
    return float(compute(metric, preds.numpy(), None if metric == "mrr" else labels))
