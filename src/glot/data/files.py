"""User tasks from local CSV or JSONL files.

Columns (names configurable): ``text``, optional ``text_pair``, and ``label`` (classes) or ``score`` (STS).
Kind is inferred: label without pair -> "single", label with pair -> "pair", score -> "sts" (needs a pair).

Where the eval split comes from, in this order:
1. a second file: ``eval=`` (with ``path=`` or ``train=``), e.g. ``--task train.csv --task-option eval=dev.csv``;
2. a ``split`` column in the one file: ``train`` rows train; ``eval`` (or ``validation``, ``valid``, ``val``,
   ``dev``) rows evaluate; when there are no such rows, ``test`` rows are the eval split;
3. otherwise ``eval_fraction`` of the training rows is carved off (seeded by ``seed``).

``n_train`` / ``n_eval`` then take seeded, class-stratified subsets of those splits. Integer labels (also "0",
"1" in CSV) are class ids as given; other labels are strings mapped to ids in sorted order (``label_names``). A
blank label or a negative id (GLUE-style -1 "unlabeled") is an error naming the file and line. Scores must be
finite numbers; ``score_scale`` (the score meaning "identical") defaults to the largest |score| of the training
rows (:func:`glot.data.base.infer_score_scale`), e.g. 5 for STS-B-style 0-5 files and 1 for 0-1 files.
"""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from glot.data.base import Split, Task, check_common, infer_score_scale, take_subsets
from glot.errors import InputError

__all__ = ["load_file_task", "read_rows"]

_SPLIT_ALIASES = {"train": "train", "eval": "eval", "validation": "eval", "valid": "eval", "val": "eval"}
_SPLIT_ALIASES |= {"dev": "eval", "test": "test"}
_NEGATIVE_INT = re.compile(r"-\d+")
Row = dict[str, Any]
Located = tuple[str, Row]  # ("file.csv:7", row): where the row starts, for error messages


def read_rows(path: str | Path) -> list[Row]:
    """Rows of a .csv (header line, UTF-8) or .jsonl (one JSON object per line) file as dicts."""
    return [row for _, row in _read_located(Path(path))]


def _read_csv(path: Path) -> list[Located]:
    rows: list[Located] = []
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            return rows
        while True:
            start = reader.line_num + 1
            fields = next(reader, None)
            if fields is None:
                return rows
            if not fields:  # a blank line
                continue
            if len(fields) > len(header):
                raise InputError(
                    f"{path}:{start}: {len(fields)} fields but the header has {len(header)} "
                    f"({', '.join(header)}); quote cells that contain commas"
                )
            rows.append((f"{path}:{start}", dict(zip(header, fields, strict=False))))


def _read_located(path: Path) -> list[Located]:
    """Rows of a .csv / .jsonl file with the line each starts on."""
    if not path.is_file():
        raise FileNotFoundError(f"data file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _read_csv(path)
    if suffix not in (".jsonl", ".json"):
        raise InputError(f"{path}: unsupported file type {suffix!r}; use .csv or .jsonl")
    rows: list[Located] = []
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
            rows.append((f"{path}:{lineno}", row))
    return rows


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _texts(rows: list[Located], column: str) -> list[str]:
    """Values of text ``column`` in every row; InputError naming the first row that lacks one."""
    for where, row in rows:
        if row.get(column) is None:
            raise InputError(f"{where}: no value in column {column!r}; columns: {sorted(row)}")
    return [str(row[column]) for _, row in rows]


def _score(where: str, column: str, value: Any) -> float:
    """One STS score: a finite number (CSV text or JSON number)."""
    if _blank(value) or isinstance(value, bool):
        raise InputError(f"{where}: no score in column {column!r} (got {value!r}); every row needs a number")
    try:
        score = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{where}: score {value!r} in column {column!r} is not a number") from None
    if not math.isfinite(score):
        raise InputError(f"{where}: score {value!r} in column {column!r} is not finite; drop or fix the row")
    return score


def _class_label(where: str, column: str, value: Any) -> int | str:
    """One class label: a non-negative int id (int, or a digit string in CSV) or a string name."""
    if _blank(value):
        raise InputError(f"{where}: blank label in column {column!r}; every row needs a label (drop the row)")
    if isinstance(value, bool):
        return str(value)
    number = isinstance(value, (int, float, np.integer, np.floating))
    if (number and value < 0) or (isinstance(value, str) and _NEGATIVE_INT.fullmatch(value.strip())):
        raise InputError(
            f"{where}: label {value!r} in column {column!r}: unlabeled rows (-1) cannot be used; drop them"
        )
    if isinstance(value, (int, np.integer)) or (isinstance(value, str) and value.strip().isdigit()):
        return int(value)
    return str(value)


def _split_rows(rows: list[Located], split_column: str) -> dict[str, list[Located]]:
    """Group rows by their ``split_column`` value (train / eval / test, with common aliases)."""
    groups: dict[str, list[Located]] = {}
    for where, row in rows:
        value = str(row.get(split_column, "")).strip().lower()
        if value not in _SPLIT_ALIASES:
            raise InputError(
                f"{where}: {split_column}={row.get(split_column)!r}; use one of {sorted(_SPLIT_ALIASES)}"
            )
        groups.setdefault(_SPLIT_ALIASES[value], []).append((where, row))
    return groups


def _carve(rows: list[Located], eval_fraction: float, seed: int) -> dict[str, list[Located]]:
    """A seeded random train/eval partition of ``rows``."""
    if isinstance(eval_fraction, bool) or not isinstance(eval_fraction, (int, float)):
        raise InputError(f"eval_fraction must be a number in (0, 1), got {eval_fraction!r}")
    if not 0.0 < eval_fraction < 1.0:
        raise InputError(f"eval_fraction must lie in (0, 1) to carve an eval split, got {eval_fraction}")
    order = np.random.default_rng(seed).permutation(len(rows))
    n_eval = max(1, int(round(eval_fraction * len(rows))))
    if n_eval >= len(rows):
        raise InputError(f"cannot carve an eval split from {len(rows)} row(s); add rows or pass eval=")
    return {"train": [rows[i] for i in order[n_eval:]], "eval": [rows[i] for i in order[:n_eval]]}


def _gather(main: Path, eval: Path | None, options: dict[str, Any]) -> tuple[dict[str, list[Located]], str]:
    """Rows per split and where the eval split came from (see the module docstring for the layouts)."""
    rows = _read_located(main)
    if not rows:
        raise InputError(f"{main} holds no rows")
    column = options["split_column"]
    groups = _split_rows(rows, column) if column in rows[0][1] else {"train": rows}
    if eval is not None:
        if set(groups) != {"train"}:
            raise InputError(
                f"{main} marks {sorted(set(groups) - {'train'})} rows in its {column!r} column and eval= "
                "names a file too; give the eval rows one way only"
            )
        groups["eval"] = _read_located(eval)
        if not groups["eval"]:
            raise InputError(f"{eval} (eval=) holds no rows")
        return groups, f"file {eval}"
    if "eval" not in groups and "test" in groups:
        groups["eval"] = groups.pop("test")
        return _need_train(groups, main, column), f"{column}=test rows"
    if "eval" in groups:
        return _need_train(groups, main, column), f"{column}=eval rows"
    carved = f"carved from train (eval_fraction={options['eval_fraction']}, seed={options['seed']})"
    return _carve(groups["train"], options["eval_fraction"], options["seed"]), carved


def _need_train(groups: dict[str, list[Located]], main: Path, column: str) -> dict[str, list[Located]]:
    if "train" not in groups:
        raise InputError(f"{main}: the {column!r} column marks no train rows, found {sorted(groups)}")
    return groups


def _targets(
    groups: dict[str, list[Located]], kind: str, column: str
) -> tuple[dict[str, np.ndarray], list[str] | None, int]:
    """Labels per split (float32 scores or int64 class ids), the class names (string labels) and the number
    of classes (1 for scores)."""
    if kind == "sts":
        scores = {k: np.asarray([_score(w, column, r.get(column)) for w, r in rows], dtype=np.float32)
                  for k, rows in groups.items()}  # fmt: skip
        return scores, None, 1
    raw = {k: [_class_label(w, column, r.get(column)) for w, r in rows] for k, rows in groups.items()}
    values = [v for labels in raw.values() for v in labels]
    if all(isinstance(v, int) for v in values):
        ids = {k: np.asarray(v, dtype=np.int64) for k, v in raw.items()}
        return ids, None, max(int(v) for v in values) + 1
    names = sorted({str(v) for v in values})
    index = {name: i for i, name in enumerate(names)}
    return (
        {k: np.asarray([index[str(v)] for v in vs], dtype=np.int64) for k, vs in raw.items()},
        names,
        len(names),
    )


def _kind_and_target(first: Row, kind: str | None, columns: dict[str, str], main: Path) -> tuple[str, str]:
    """The task kind (given, or from the first row's columns: score -> sts, label with pair -> pair, else
    single) and the column holding its targets; InputError when a needed column is missing."""
    if kind is None:
        kind = "sts" if columns["label"] not in first and columns["score"] in first else "single"
        kind = "pair" if kind == "single" and columns["pair"] in first else kind
    if kind not in ("single", "pair", "sts"):
        raise InputError(f"kind for a file task must be 'single', 'pair' or 'sts', got {kind!r}")
    if kind != "single" and columns["pair"] not in first:
        raise InputError(
            f"a {kind} task needs a second text column {columns['pair']!r}; set text_pair_column="
        )
    target = columns["score"] if kind == "sts" else columns["label"]
    if target not in first:
        option = "score_column" if kind == "sts" else "label_column"
        raise InputError(f"no {target!r} column in {main}; columns: {sorted(first)} (set {option}=)")
    return kind, target


def _main_file(path: str | Path | None, train: str | Path | None) -> Path:
    if path is not None and train is not None:
        raise InputError("pass either path= (one file) or train= (the same thing), not both")
    if path is None and train is None:
        raise InputError("a file task needs path= (or train=) naming a .csv/.jsonl file, optionally eval=")
    return Path(path if path is not None else train)  # type: ignore[arg-type]


def load_file_task(
    path: str | Path | None = None,
    *,
    n_train: int | None = None,
    n_eval: int | None = None,
    seed: int = 0,
    max_length: int | None = None,
    train: str | Path | None = None,
    eval: str | Path | None = None,
    text_column: str = "text",
    text_pair_column: str = "text_pair",
    label_column: str = "label",
    score_column: str = "score",
    split_column: str = "split",
    eval_fraction: float = 0.1,
    score_scale: float | None = None,
    kind: str | None = None,
    metric: str | None = None,
    name: str | None = None,
) -> Task:
    """Build a ``Task`` from CSV/JSONL file(s); see the module docstring for layouts and inference rules.

    ``path`` (or ``train``) is the training file, ``eval`` an optional eval file. ``kind`` ("single", "pair",
    "sts") and ``metric`` override the inferred ones (default metric: accuracy for classes, spearman for
    scores). ``max_length`` None (default) truncates at the backbone's own limit.
    """
    check_common(n_train, n_eval, seed, max_length)
    main = _main_file(path, train)
    options = {"split_column": split_column, "eval_fraction": eval_fraction, "seed": seed}
    groups, eval_from = _gather(main, None if eval is None else Path(eval), options)
    columns = {"text": text_column, "pair": text_pair_column, "label": label_column, "score": score_column}
    kind, target = _kind_and_target(groups["train"][0][1], kind, columns, main)
    labels, label_names, num_labels = _targets(groups, kind, target)
    if kind != "sts" and num_labels < 2:
        raise InputError(f"{main}: a classification task needs >= 2 classes, found {num_labels}")
    pair = kind != "single"
    splits = {
        k: Split(_texts(rows, text_column), labels[k], _texts(rows, text_pair_column) if pair else None)
        for k, rows in groups.items()
    }
    info: dict[str, Any] = {
        "path": str(main),
        "eval": None if eval is None else str(eval),
        "eval_from": eval_from,
    }
    if kind == "sts":
        info["score_scale"] = (
            infer_score_scale(labels["train"], str(main)) if score_scale is None else score_scale
        )
    return Task(
        name=name or main.stem, kind=kind, metric=metric or ("spearman" if kind == "sts" else "accuracy"),
        num_labels=num_labels, splits=take_subsets(splits, n_train, n_eval, seed), label_names=label_names,
        max_length=max_length, info=info,
    )  # fmt: skip
