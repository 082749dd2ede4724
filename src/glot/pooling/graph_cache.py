"""Token graphs computed once: every cached sentence's graph, built in one pass and reused by every batch.

A sentence's token graph depends only on its frozen states and the :class:`~glot.pooling.config.GraphConfig`,
so training over a hidden-state cache need not rebuild it every step of every epoch. :class:`SentenceGraphs`
builds the graphs of all items of a state store once (longest first, so buckets pad little) and keeps them in
memory as ragged LOCAL edge lists (int16 indices when every sentence has < 32768 tokens, else int32; plus
float32 cosines when the graph is weighted: 4 or 8 bytes per edge). :meth:`SentenceGraphs.batch` assembles a
packed batch's graph from them: the same edges, in the same order, with the same weights, bit for bit, as
:func:`~glot.pooling.graph.build_token_graph` on that batch (its length buckets have per-sentence widths, so a
sentence's cosines do not depend on its batch), wrapped in a :class:`BatchGraph` that names the ``ptr`` and the
config it was built for; a pooler handed a graph for another batch or config fails an internal assert.

:func:`shared_graphs` keeps one :class:`SentenceGraphs` per (state store, graph config) for the life of the store
object: the seeds and poolers of one ``glot compare`` share it, and a changed tau / kNN / weighting / self-loop
setting is another key, so a stale graph is never reused. Inference builds graphs on the fly as before.
"""

from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from glot.pooling.config import GraphConfig
from glot.pooling.graph import TokenGraph, build_token_graph

#: tokens per construction chunk when building every item's graph (bounds the packed states held at once)
CHUNK_TOKENS = 1 << 16


class BatchGraph(NamedTuple):
    """A packed batch's token graph plus what it was built for. Shapes: edges in packed coordinates, ptr (B + 1,)."""

    edges: TokenGraph
    ptr: Tensor
    config: GraphConfig

    def padded(self, ptr: Tensor) -> BatchGraph:
        """This graph for the batch with one-token sentences appended (``ptr`` extends this graph's ptr;
        :func:`glot.pooling.packing.pad_singletons`): the same edges, as the appended tokens have none
        (GATConv adds every token's self-loop itself; their outputs are dropped)."""
        assert torch.equal(ptr[: self.ptr.numel()].cpu(), self.ptr.cpu()), "not a padding of this batch"
        return self._replace(ptr=ptr)

    def check(self, ptr: Tensor, config: GraphConfig) -> None:
        """Internal invariant: this graph belongs to the batch ``ptr`` and to ``config`` (else a library bug)."""
        assert self.config == config, f"graph built for {self.config}, the pooler uses {config}"
        assert torch.equal(self.ptr.cpu(), ptr.cpu()), "the batch's graph was built for another ptr"


class SentenceGraphs:
    """Every item's token graph as ragged local edges. Shapes: src/dst (E,) local indices, offsets (n + 1,)."""

    def __init__(
        self, config: GraphConfig, lengths: np.ndarray, src: np.ndarray, dst: np.ndarray,
        offsets: np.ndarray, weight: np.ndarray | None,
    ) -> None:  # fmt: skip
        self.config, self.lengths = dataclasses.replace(config), lengths  # a copy: later edits are seen
        self.src, self.dst, self.offsets, self.weight = src, dst, offsets, weight

    @classmethod
    def build(
        cls,
        packed: Callable[[np.ndarray], tuple[Tensor, Tensor]],
        lengths: np.ndarray,
        config: GraphConfig,
        chunk_tokens: int = CHUNK_TOKENS,
    ) -> SentenceGraphs:
        """Build the graph of items 0..n-1, ``packed(ids) -> (x, ptr)`` giving their states.

        Shapes: lengths (n,) tokens per item.
        """
        config.validate()
        lengths = np.asarray(lengths, dtype=np.int64)
        order = np.argsort(-lengths, kind="stable")
        dtype = np.int16 if lengths.size == 0 or lengths.max() < (1 << 15) else np.int32
        items, srcs, dsts, weights = [np.zeros(0, np.int64)], [np.zeros(0, dtype)], [np.zeros(0, dtype)], []
        for ids in _chunks(order, lengths, chunk_tokens):
            x, ptr = packed(ids)
            graph = build_token_graph(x, ptr, config)  # on the states' device; the edges are kept on the CPU
            src, dst = graph.edge_index.cpu().numpy()
            ptr_np = ptr.cpu().numpy()
            sentence = np.searchsorted(ptr_np, dst, side="right") - 1  # position of dst's sentence
            start = ptr_np[sentence]
            items.append(ids[sentence])
            srcs.append((src - start).astype(dtype))
            dsts.append((dst - start).astype(dtype))
            if graph.edge_weight is not None:
                weights.append(graph.edge_weight.cpu().numpy())
        item = np.concatenate(items)
        keep = np.argsort(item, kind="stable")  # by item; within an item the builder's (dst, src) order
        offsets = np.zeros(lengths.size + 1, dtype=np.int64)
        offsets[1:] = np.cumsum(np.bincount(item, minlength=lengths.size))
        weight = np.concatenate([np.zeros(0, np.float32), *weights])[keep] if config.weighted else None
        return cls(config, lengths, np.concatenate(srcs)[keep], np.concatenate(dsts)[keep], offsets, weight)

    @property
    def nbytes(self) -> int:
        """Memory held by the edges (indices, offsets, weights)."""
        extra = 0 if self.weight is None else self.weight.nbytes
        return self.src.nbytes + self.dst.nbytes + self.offsets.nbytes + extra

    @property
    def num_edges(self) -> int:
        return int(self.src.size)

    def batch(self, ids: np.ndarray, ptr: Tensor) -> BatchGraph:
        """The graph of the packed batch of items ``ids`` (in that order): what build_token_graph returns.

        Shapes: ids (B,), ptr (B + 1,) -> edges (2, E) in packed coordinates, edge_weight (E,) or None.
        """
        ids = np.asarray(ids, dtype=np.int64)
        ptr_np = ptr.cpu().numpy()
        assert np.array_equal(np.diff(ptr_np), self.lengths[ids]), "ptr does not match these items' lengths"
        lengths = torch.from_numpy(self.lengths[ids])
        order = torch.argsort(lengths, descending=True, stable=True).numpy()  # build_token_graph's order
        first, last = self.offsets[ids[order]], self.offsets[ids[order] + 1]
        counts = last - first
        total = int(counts.sum())
        run_start = np.repeat(np.cumsum(counts) - counts, counts)
        idx = np.repeat(first, counts) + (np.arange(total) - run_start)
        base = np.repeat(ptr_np[:-1][order], counts)
        edge_index = torch.from_numpy(np.stack([self.src[idx] + base, self.dst[idx] + base]).astype(np.int64))
        weight = None if self.weight is None else torch.from_numpy(self.weight[idx])
        return BatchGraph(TokenGraph(edge_index, weight), ptr.cpu(), self.config)


def _chunks(order: np.ndarray, lengths: np.ndarray, chunk_tokens: int) -> list[np.ndarray]:
    """Consecutive runs of ``order`` of at most ``chunk_tokens`` tokens each (at least one item per run)."""
    chunks, start, total = [], 0, 0
    for pos, i in enumerate(order.tolist()):
        if pos > start and total + lengths[i] > chunk_tokens:
            chunks.append(order[start:pos])
            start, total = pos, 0
        total += int(lengths[i])
    if start < order.size:
        chunks.append(order[start:])
    return chunks


_SHARED: weakref.WeakKeyDictionary[Any, dict[tuple[Any, ...], SentenceGraphs]] = weakref.WeakKeyDictionary()


def shared_graphs(
    states: Any, config: GraphConfig, transform: Any = None, device: torch.device | None = None
) -> SentenceGraphs:
    """The graphs of every item of ``states`` (a store with ``packed(ids)`` and ``lengths``) for ``config``,
    built on first use and kept while ``states`` lives. ``transform``: the pooler's input normalisation
    (:class:`glot.pooling.normalize.InputNorm`), applied to the states before the graph is built, as the
    pooler does; its fitted statistics are part of the key, so graphs of other statistics are never reused.
    ``device``: where the graphs are computed (the pooler's; default where ``states`` hands them out); the
    edges are kept on the CPU either way."""
    per_config = _SHARED.setdefault(states, {})
    key = (dataclasses.astuple(config), None if transform is None else transform.fingerprint())
    if key not in per_config:
        packed = states.packed
        if transform is not None or device is not None:

            def packed(ids: np.ndarray) -> tuple[Tensor, Tensor]:
                x, ptr = states.packed(ids)
                x, ptr = (x, ptr) if device is None else (x.to(device), ptr.to(device))
                with torch.no_grad():
                    return (x if transform is None else transform(x)), ptr

        per_config[key] = SentenceGraphs.build(packed, np.asarray(states.lengths), config)
    return per_config[key]


#: Whether training over a cache uses graphs built once (False: every step builds its batch's graph, as before)
ENABLED = True


def training_graphs(pooler: Any) -> GraphConfig | None:
    """The graph config for which a cached training run builds graphs once: the pooler's, None when its graph
    is not a function of the states alone (no graph, K = 0, a learned graph or a learned layer mix) or when
    :data:`ENABLED` is False."""
    if not ENABLED or not getattr(pooler, "prebuilt_graph", False) or pooler.config.gnn.num_layers == 0:
        return None
    if pooler.config.gnn.mix_layers > 1:  # the graph is built on the learned layer mix: per batch
        return None
    config: GraphConfig = pooler.config.graph
    return config
