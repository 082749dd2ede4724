"""MS MARCO (query, passage) pairs from a local JSONL file in sentence-transformers' training format.

PAPER.md: the contrastive objective for MTEB trains on MS MARCO (query, first positive) pairs with in-batch
negatives; hard negatives are unused in the reference code but kept here when every line has one.

Accepted lines (``.jsonl`` or ``.jsonl.gz``; blank lines are skipped):
- a list ``[query, positive, negative, ...]``;
- a dict with ``query`` or ``anchor``, ``pos`` or ``positive`` (a string or a list: the first is used) and
  optionally ``neg`` or ``negative`` (a string or a list: the first is used).
"""

from __future__ import annotations

import gzip
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from glot.data.base import Split, Task, check_common, take_subsets
from glot.errors import InputError

__all__ = ["load_msmarco", "parse_line"]

_KEYS = {"query": ("query", "anchor"), "positive": ("pos", "positive"), "negative": ("neg", "negative")}


def _first_text(value: Any, field: str, where: str) -> str:
    """A string, or the first string of a non-empty list; otherwise a ValueError naming ``where``."""
    if isinstance(value, list):
        if not value:
            raise InputError(f"{where}: {field} is an empty list; give at least one text")
        value = value[0]
    if not isinstance(value, str):
        raise InputError(
            f"{where}: {field} must be a string (or list of strings), got {type(value).__name__}"
        )
    return value


def _lookup(record: dict[str, Any], field: str) -> Any:
    """The value of the first present key among ``_KEYS[field]``, or None."""
    for key in _KEYS[field]:
        if key in record:
            return record[key]
    return None


def parse_line(line: str, where: str) -> tuple[str, str, str | None]:
    """Parse one JSONL line into (query, positive, first negative or None); ``where`` prefixes errors."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as err:
        raise InputError(f"{where}: not valid JSON ({err.msg})") from err
    if isinstance(record, list):
        if len(record) < 2:
            raise InputError(
                f"{where}: a list line needs [query, positive, negative...], got {len(record)} item(s)"
            )
        texts = [_first_text(v, f"item {i}", where) for i, v in enumerate(record[:3])]
        return texts[0], texts[1], texts[2] if len(texts) > 2 else None
    if not isinstance(record, dict):
        raise InputError(f"{where}: expected a JSON list or object, got {type(record).__name__}")
    query, positive = _lookup(record, "query"), _lookup(record, "positive")
    if query is None or positive is None:
        raise InputError(
            f"{where}: an object line needs 'query' (or 'anchor') and 'pos' (or 'positive'), "
            f"got keys {sorted(record)}"
        )
    negative = _lookup(record, "negative")
    neg = None if negative is None or negative == [] else _first_text(negative, "negative", where)
    return _first_text(query, "query", where), _first_text(positive, "positive", where), neg


def _read(path: Path, limit: int | None) -> list[tuple[str, str, str | None]]:
    """All (query, positive, negative) triples of the file, up to ``limit`` of them."""
    if not path.is_file():
        raise FileNotFoundError(f"MS MARCO file not found: {path}; pass path= to a local .jsonl(.gz) file")
    opener = gzip.open if path.suffix == ".gz" else open
    rows: list[tuple[str, str, str | None]] = []
    with opener(path, "rt", encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, start=1):
            if limit is not None and len(rows) >= limit:
                break
            if line.strip():
                rows.append(parse_line(line, f"{path}:{lineno}"))
    if not rows:
        raise InputError(f"{path} holds no examples")
    return rows


def _to_split(rows: list[tuple[str, str, str | None]], keep_negatives: bool) -> Split:
    """Triples -> a contrastive ``Split`` (no labels)."""
    return Split(
        texts=[q for q, _, _ in rows],
        texts_pair=[p for _, p, _ in rows],
        negatives=[n or "" for _, _, n in rows] if keep_negatives else None,
        labels=None,
    )


def load_msmarco(
    path: str | Path,
    *,
    n_train: int | None = None,
    n_eval: int | None = None,
    seed: int = 0,
    max_length: int | None = 128,
    eval_size: int | float = 0,
    limit: int | None = None,
) -> Task:
    """Load (query, positive[, negative]) triples as a contrastive task (metric: in-batch MRR).

    ``limit`` reads only the first N lines' examples (for huge files). ``eval_size`` carves a seeded held-out
    "eval" split: a count (int) or a fraction (float in (0, 1)); 0 (default, as the paper, which evaluates on
    MTEB) keeps no eval split. ``n_train`` / ``n_eval`` then draw seeded subsets of the train / eval splits
    (``n_eval`` needs ``eval_size``). Hard negatives are kept only when every example has one.
    """
    check_common(n_train, n_eval, seed, max_length)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise InputError(f"limit must be an integer >= 1 (examples read) or None, got {limit!r}")
    if isinstance(eval_size, bool) or not isinstance(eval_size, (int, float)):
        raise InputError(f"eval_size must be a count (int) or a fraction (float), got {eval_size!r}")
    if n_eval is not None and not eval_size:
        raise InputError(
            f"n_eval={n_eval} needs an eval split: carve one with eval_size= (a count or fraction)"
        )
    rows = _read(Path(path), limit)
    n_carve = int(round(eval_size * len(rows))) if isinstance(eval_size, float) else int(eval_size)
    if not 0 <= n_carve < len(rows):
        raise InputError(
            f"eval_size={eval_size} gives {n_carve} eval examples; need 0 <= n < {len(rows)} examples"
        )
    with_neg = sum(n is not None for _, _, n in rows)
    keep_negatives = with_neg == len(rows)
    if 0 < with_neg < len(rows):
        warnings.warn(
            f"{path}: only {with_neg} of {len(rows)} examples have a hard negative; negatives are dropped",
            stacklevel=2,
        )
    order = np.random.default_rng(seed).permutation(len(rows))
    eval_idx, train_idx = set(order[:n_carve].tolist()), order[n_carve:]
    splits = {"train": _to_split([rows[i] for i in sorted(train_idx.tolist())], keep_negatives)}
    if n_carve:
        splits["eval"] = _to_split([rows[i] for i in sorted(eval_idx)], keep_negatives)
    return Task(
        name="msmarco",
        kind="contrastive",
        metric="mrr",
        num_labels=1,
        splits=take_subsets(splits, n_train, n_eval, seed),
        max_length=max_length,
        info={"path": str(path), "eval_size": eval_size, "seed": seed, "hard_negatives": keep_negatives},
    )
