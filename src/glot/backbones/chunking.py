"""Texts longer than the model: windows of ``max_length`` tokens, one forward each, stitched into one document.

``long="truncate"`` (the paper, and the default) cuts a text to its first ``max_length`` tokens. ``long="chunk"``
embeds every token instead: the text's content tokens (without special tokens) are cut into windows that each
fill the model's ``max_length`` once the tokenizer's own special tokens are put around them (``[CLS] ... [SEP]``,
``<bos> ...``, EOS for decoders), consecutive windows sharing ``overlap`` tokens of context. Every window is
one ordinary forward. The windows' token states are then concatenated back into ONE token sequence per text:
the overlap is split in the middle (the first half kept from the earlier window, the second half from the
later one, so each token appears once and keeps context on both sides) and the special tokens between two
windows are dropped. A text of ``n`` content tokens thus comes back as exactly the ``P + n + S`` rows (``P``
leading and ``S`` trailing special tokens) that an untruncated forward would give, and the pooler builds one
graph per document. A text that fits in one window is tokenized exactly as under ``"truncate"``.

``benchmarks/bench_long_task.py`` measured this against averaging one pooled vector per window and against
truncation, on ~400-token posts whose label is the majority sentiment of their tweets (docs/benchmarks.md,
"Long posts"): both chunked strategies beat truncation by 9 to 15 points, and are level with each other
within the noise (the sign flips between runs); one sequence per document gives the pooler, and GLOT's graph,
the whole text, and every consumer of token states (cache, training, Encoder) works on it unchanged.

Shapes: a text of n content tokens -> ceil((n - C) / (C - overlap)) + 1 windows of <= max_length tokens
(C = max_length - specials) -> (P + n + S, D) stitched states.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import torch
from torch import Tensor

from glot.backbones.longtext import DEFAULT_OVERLAP, LONG_MODES, check_long
from glot.backbones.tokenize import Features, TokenPlan
from glot.errors import InputError
from glot.pooling.packing import pack

if TYPE_CHECKING:
    from transformers import BatchEncoding

__all__ = [
    "DEFAULT_OVERLAP",
    "LONG_MODES",
    "ChunkPlan",
    "Windows",
    "check_long",
    "iter_windows",
    "kept",
    "stitch",
    "windows",
]


def windows(n: int, size: int, overlap: int) -> list[tuple[int, int]]:
    """``[start, end)`` windows over ``n`` content tokens: ``size`` each (the last may be shorter), consecutive
    ones sharing ``overlap`` tokens; every window adds at least one new token. Needs ``0 <= overlap < size``."""
    assert 0 <= overlap < size and n >= 0, (n, size, overlap)
    if n <= size:
        return [(0, n)]
    stride = size - overlap
    count = 1 + -(-(n - size) // stride)
    return [(k * stride, min(k * stride + size, n)) for k in range(count)]


def kept(spans: list[tuple[int, int]], overlap: int) -> list[tuple[int, int]]:
    """The content tokens each window contributes, ``[lo, hi)`` in document positions: the overlap is split
    in the middle (earlier window keeps ``overlap // 2``, the later one the rest). They tile ``[0, n)``."""
    left, right = overlap - overlap // 2, overlap // 2
    last = len(spans) - 1
    return [(lo + (left if k else 0), hi - (right if k < last else 0)) for k, (lo, hi) in enumerate(spans)]


class Windows(NamedTuple):
    """Token windows of a batch of texts. ``features`` has one row per window, ``docs[i]`` lists text i's window
    rows in order and ``keep[w]`` the ``[lo, hi)`` slice of window w's token rows that goes into its text."""

    features: Features
    docs: list[list[int]]
    keep: list[tuple[int, int]]
    long: int  # texts that needed more than one window

    def text_ids(self, i: int) -> list[int]:
        """The token ids behind text i's stitched states, in order. Shapes: -> P + n + S ids."""
        ids = self.features["input_ids"]
        return [t for w in self.docs[i] for t in ids[w][self.keep[w][0] : self.keep[w][1]]]


def _special_frame(plan: TokenPlan) -> tuple[list[int], list[int]]:
    """The special tokens the tokenizer puts before and after a single text (probed on a one-word text)."""
    tok = plan.tokenizer
    full = list(tok("a", verbose=False)["input_ids"])
    bare = list(tok("a", add_special_tokens=False, verbose=False)["input_ids"])
    for p in range(len(full) - len(bare) + 1):
        if bare and full[p : p + len(bare)] == bare:
            return full[:p], full[p + len(bare) :]
    raise InputError(
        f"cannot tell where tokenizer {type(tok).__name__} puts its special tokens; use long='truncate'"
    )


class ChunkPlan:
    """Texts -> windows of at most ``max_length`` tokens (see the module docstring).

    Shapes: texts (B,) -> Windows with sum over texts of their window counts rows.
    """

    def __init__(self, plan: TokenPlan, overlap: int | None = None) -> None:
        if plan.prompt is not None:
            raise InputError("long='chunk' cannot be combined with a prompt template; use long='truncate'")
        self.plan = plan
        self.prefix, self.suffix = _special_frame(plan)
        eos = plan.eos_id
        self.tail = list(self.suffix)
        if plan.append_eos and eos is not None and (not self.tail or self.tail[-1] != eos):
            self.tail.append(eos)
        self.size = plan.max_length - len(self.prefix) - len(self.tail)
        if self.size < 1:
            raise InputError(
                f"max_length={plan.max_length} leaves no room for text between the tokenizer's "
                f"{len(self.prefix) + len(self.tail)} special tokens; pass a larger max_length"
            )
        if overlap is None:
            overlap = min(DEFAULT_OVERLAP, self.size // 4)
        if overlap >= self.size:
            raise InputError(
                f"chunk_overlap={overlap} must be smaller than the {self.size} text tokens a window holds at "
                f"max_length={plan.max_length}; pass a smaller chunk_overlap"
            )
        self.overlap: int = overlap

    def encode(self, texts: list[str]) -> Windows:
        """Window rows for every text (texts that fit are tokenized exactly as without chunking)."""
        plan = self.plan
        tok = plan.tokenizer
        full = tok(texts, truncation=False, padding=False, verbose=False)["input_ids"]
        extra = [1 if plan.append_eos and plan.eos_id is not None and ids[-1:] != [plan.eos_id] else 0
                 for ids in full]  # fmt: skip
        over = [i for i, ids in enumerate(full) if len(ids) + extra[i] > plan.max_length]
        fits = [i for i in range(len(texts)) if i not in set(over)]
        rows: Features = {k: [] for k in plan.keys}
        slot: dict[int, list[int]] = {}
        keep: list[tuple[int, int]] = []
        short = plan.encode([texts[i] for i in fits])
        for j, i in enumerate(fits):
            slot[i] = [len(rows["input_ids"])]
            keep.append((0, len(short["input_ids"][j])))
            for k in rows:
                rows[k].append(short[k][j])
        bare = tok([texts[i] for i in over], add_special_tokens=False, verbose=False)["input_ids"]
        for i, content in zip(over, bare, strict=True):
            slot[i] = self._add_windows(list(content), rows, keep)
        return Windows(rows, [slot[i] for i in range(len(texts))], keep, len(over))

    def _add_windows(self, content: list[int], rows: Features, keep: list[tuple[int, int]]) -> list[int]:
        """Append the windows of one over-long text to ``rows``/``keep``; return their row numbers."""
        spans = windows(len(content), self.size, self.overlap)
        mine, head, tail = [], len(self.prefix), len(self.tail)
        last = len(spans) - 1
        for k, ((lo, hi), (a, b)) in enumerate(zip(spans, kept(spans, self.overlap), strict=True)):
            ids = [*self.prefix, *content[lo:hi], *self.tail]
            mine.append(len(rows["input_ids"]))
            rows["input_ids"].append(ids)
            rows["attention_mask"].append([1] * len(ids))
            if "token_type_ids" in rows:
                rows["token_type_ids"].append([0] * len(ids))
            start = 0 if k == 0 else head + a - lo
            stop = len(ids) if k == last else head + b - lo
            keep.append((start, stop))
        assert sum(s1 - s0 for s0, s1 in keep[-len(spans) :]) == head + len(content) + tail
        return mine


def stitch(
    x: Tensor, ptr: Tensor, docs: list[list[int]], keep: list[tuple[int, int]]
) -> tuple[Tensor, Tensor]:
    """Concatenate each text's kept window rows into one token sequence.

    ``docs`` index the windows of this batch (rows of ``ptr``); ``keep`` is indexed alike.
    Shapes: x (N_windows_tokens, D), ptr (W + 1,) -> x (N, D), ptr (len(docs) + 1,).
    """
    starts = ptr.tolist()
    parts, lengths = [], []
    for rows in docs:
        pieces = [x[starts[w] + keep[w][0] : starts[w] + keep[w][1]] for w in rows]
        parts += pieces
        lengths.append(sum(len(p) for p in pieces))
    out_ptr = torch.zeros(len(docs) + 1, dtype=torch.long)
    out_ptr[1:] = torch.cumsum(torch.tensor(lengths, dtype=torch.long), 0)
    return (torch.cat(parts) if parts else x[:0]), out_ptr


def iter_windows(
    win: Windows,
    batch_size: int,
    pad: Callable[[list[int]], BatchEncoding],
    run: Callable[[BatchEncoding], tuple[Tensor, Tensor]],
) -> Iterator[tuple[np.ndarray, Tensor, Tensor]]:
    """Run the windows and yield ``(text indices, x, ptr)`` per batch of texts, stitched (longest texts first).

    A batch holds whole texts and about ``batch_size`` windows (a text with more windows gets a batch of its
    own, run ``batch_size`` windows per forward). Shapes: per batch indices (B,), x (N, D), ptr (B + 1,).
    """
    sizes = np.array([sum(len(win.features["input_ids"][w]) for w in rows) for rows in win.docs])
    order = np.argsort(-sizes, kind="stable").tolist()
    group: list[int] = []
    for n, i in enumerate(order):
        group.append(i)
        count = sum(len(win.docs[j]) for j in group)
        if count < batch_size and n + 1 < len(order):
            continue
        rows = [w for j in group for w in win.docs[j]]
        xs, ptrs, offset = [], [torch.zeros(1, dtype=torch.long)], 0
        for s in range(0, len(rows), batch_size):
            xb, pb = pack(*run(pad(rows[s : s + batch_size])))
            xs.append(xb)
            ptrs.append(pb[1:] + offset)
            offset += int(pb[-1])
        x, ptr = torch.cat(xs), torch.cat(ptrs)
        local = {w: k for k, w in enumerate(rows)}
        docs = [[local[w] for w in win.docs[j]] for j in group]
        keep = [win.keep[w] for w in rows]
        yield (np.asarray(group, dtype=np.int64), *stitch(x, ptr, docs, keep))
        group = []
