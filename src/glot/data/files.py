"""User tasks from local CSV or JSONL files.

Columns (names configurable): ``text``, optional ``text_pair``, and ``label`` (classes) or ``score`` (STS).
Kind is inferred: label without pair -> "single", label with pair -> "pair", score -> "sts" (needs a pair).
Splits come from separate files (``train=``, ``eval=``), from a ``split`` column in one file (train / eval,
validation, dev, val / test), or the eval split is carved from train (seeded). Integer labels (also "0", "1"
in CSV) are class ids as given; other labels are strings mapped to ids in sorted order (``label_names``).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from glot.data.base import Split, Task
from glot.errors import InputError

__all__ = ["load_file_task", "read_rows"]

_SPLIT_ALIASES = {"train": "train", "eval": "eval", "validation": "eval", "valid": "eval", "val": "eval"}
_SPLIT_ALIASES |= {"dev": "eval", "test": "test"}
Row = dict[str, Any]


def read_rows(path: str | Path) -> list[Row]:
    """Rows of a .csv (header line, UTF-8) or .jsonl (one JSON object per line) file as dicts."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with open(path, encoding="utf-8", newline="") as handle:
            return list(csv.DictReader(handle))
    if suffix not in (".jsonl", ".json"):
        raise InputError(f"{path}: unsupported file type {suffix!r}; use .csv or .jsonl")
    rows: list[Row] = []
    with open(path, encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise InputError(f"{path}:{lineno}: not valid JSON ({err.msg})") from err
            if not isinstance(row, dict):
                raise InputError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
            rows.append(row)
    return rows


def _column(rows: list[Row], column: str, where: str) -> list[Any]:
    """Values of ``column`` in every row; ValueError naming the first row that lacks it."""
    for i, row in enumerate(rows):
        if row.get(column) is None:
            raise InputError(f"{where}: row {i} has no value in column {column!r}; columns: {sorted(row)}")
    return [row[column] for row in rows]


def _is_int(value: Any) -> bool:
    """True for ints and for strings holding a non-negative integer (CSV cells)."""
    if isinstance(value, bool):
        return False
    return isinstance(value, (int, np.integer)) or (isinstance(value, str) and value.strip().isdigit())


def _label_map(values: list[Any]) -> dict[Any, int] | None:
    """None if all labels are integer ids; otherwise a sorted string -> id mapping."""
    if all(_is_int(v) for v in values):
        return None
    return {name: i for i, name in enumerate(sorted({str(v) for v in values}))}


def _split_rows(rows: list[Row], split_column: str, where: str) -> dict[str, list[Row]]:
    """Group rows by their ``split_column`` value (train / eval / test, with common aliases)."""
    groups: dict[str, list[Row]] = {}
    for i, row in enumerate(rows):
        value = str(row.get(split_column, "")).strip().lower()
        if value not in _SPLIT_ALIASES:
            raise InputError(
                f"{where}: row {i} has {split_column}={row.get(split_column)!r}; use one of {sorted(_SPLIT_ALIASES)}"
            )
        groups.setdefault(_SPLIT_ALIASES[value], []).append(row)
    return groups


def _carve(rows: list[Row], eval_fraction: float, seed: int) -> dict[str, list[Row]]:
    """A seeded random train/eval partition of ``rows``."""
    if not 0.0 < eval_fraction < 1.0:
        raise InputError(f"eval_fraction must lie in (0, 1) to carve an eval split, got {eval_fraction}")
    order = np.random.default_rng(seed).permutation(len(rows))
    n_eval = max(1, int(round(eval_fraction * len(rows))))
    if n_eval >= len(rows):
        raise InputError(f"cannot carve an eval split from {len(rows)} row(s); add rows or pass eval=")
    return {"train": [rows[i] for i in order[n_eval:]], "eval": [rows[i] for i in order[:n_eval]]}


def _gather(
    path: str | Path | None, train: str | Path | None, eval: str | Path | None, options: dict[str, Any]
) -> dict[str, list[Row]]:
    """Rows per split from the given files (see module docstring for the three layouts)."""
    if path is not None and train is not None:
        raise InputError("pass either path= (one file) or train= (and eval=), not both")
    if path is None and train is None:
        raise InputError("a file task needs path= (one file) or train= (and optionally eval=)")
    rows = read_rows(path if path is not None else train)  # type: ignore[arg-type]
    where = str(path if path is not None else train)
    if not rows:
        raise InputError(f"{where} holds no rows")
    if eval is not None:
        if path is not None:
            raise InputError("eval= goes with train=, not with path=")
        return {"train": rows, "eval": read_rows(eval)}
    if options["split_column"] in rows[0]:
        groups = _split_rows(rows, options["split_column"], where)
        if "train" in groups and "eval" in groups:
            return groups
        raise InputError(
            f"{where}: the split column must mark both train and eval rows, found {sorted(groups)}"
        )
    return _carve(rows, options["eval_fraction"], options["seed"])


def _to_split(
    rows: list[Row], kind: str, columns: dict[str, str], mapping: dict[Any, int] | None, where: str
) -> Split:
    """Rows of one split -> a ``Split`` (scores as float32, classes as int64 ids)."""
    raw = _column(rows, columns["target"], where)
    if kind == "sts":
        labels = np.asarray([float(v) for v in raw], dtype=np.float32)
    else:
        labels = np.asarray([mapping[str(v)] if mapping else int(v) for v in raw], dtype=np.int64)
    pair = [str(v) for v in _column(rows, columns["pair"], where)] if kind != "single" else None
    texts = [str(v) for v in _column(rows, columns["text"], where)]
    return Split(texts=texts, texts_pair=pair, labels=labels)


def _infer_kind(first: Row, label_column: str, score_column: str, pair_column: str) -> str:
    """Kind from the columns of the first row: score -> sts, label with pair -> pair, else single."""
    if label_column not in first and score_column in first:
        return "sts"
    return "pair" if pair_column in first else "single"


def load_file_task(
    path: str | Path | None = None,
    *,
    train: str | Path | None = None,
    eval: str | Path | None = None,
    text_column: str = "text",
    text_pair_column: str = "text_pair",
    label_column: str = "label",
    score_column: str = "score",
    split_column: str = "split",
    eval_fraction: float = 0.1,
    seed: int = 0,
    kind: str | None = None,
    metric: str | None = None,
    name: str | None = None,
    max_length: int = 128,
) -> Task:
    """Build a ``Task`` from CSV/JSONL file(s); see the module docstring for layouts and inference rules.

    ``kind`` ("single", "pair", "sts") and ``metric`` override the inferred ones (default metric:
    accuracy for classes, spearman for scores).
    """
    groups = _gather(
        path, train, eval, {"split_column": split_column, "eval_fraction": eval_fraction, "seed": seed}
    )
    source = str(path if path is not None else train)
    first = groups["train"][0]
    kind = kind or _infer_kind(first, label_column, score_column, text_pair_column)
    if kind not in ("single", "pair", "sts"):
        raise InputError(f"kind for a file task must be 'single', 'pair' or 'sts', got {kind!r}")
    if kind != "single" and text_pair_column not in first:
        raise InputError(
            f"a {kind} task needs a second text column {text_pair_column!r}; set text_pair_column="
        )
    columns = {"text": text_column, "pair": text_pair_column}
    columns["target"] = score_column if kind == "sts" else label_column
    if columns["target"] not in first:
        raise InputError(
            f"no {columns['target']!r} column in {source}; columns: {sorted(first)} (set label_column=)"
        )
    all_targets = [v for rows in groups.values() for v in _column(rows, columns["target"], source)]
    mapping = None if kind == "sts" else _label_map(all_targets)
    num_labels = 1
    if kind != "sts":
        num_labels = len(mapping) if mapping else max(int(v) for v in all_targets) + 1
        if num_labels < 2:
            raise InputError(f"{source}: a classification task needs >= 2 classes, found {num_labels}")
    splits = {k: _to_split(rows, kind, columns, mapping, f"{source} ({k})") for k, rows in groups.items()}
    return Task(
        name=name or Path(source).stem,
        kind=kind,
        metric=metric or ("spearman" if kind == "sts" else "accuracy"),
        num_labels=num_labels,
        splits=splits,
        label_names=list(mapping) if mapping else None,
        max_length=max_length,
        info={"path": source, "eval": None if eval is None else str(eval)},
    )
