"""IMDB movie-review sentiment from the Hugging Face Hub (``load_dataset("stanfordnlp/imdb")``).

PAPER.md: single-sentence classification, accuracy, backbone max_length 512 (reviews are long). Train =
the 25,000 training reviews, "eval" = the 25,000 test reviews; the "unsupervised" split is not used.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from glot.data.base import Split, Task, check_common, take_subsets
from glot.errors import InputError

__all__ = ["hub_loader", "load_imdb"]


def hub_loader() -> Any:
    """Load IMDB from the Hub: ``datasets.load_dataset("stanfordnlp/imdb")``."""
    from glot.data.hub import load_hub_dataset

    return load_hub_dataset("stanfordnlp/imdb", task="imdb")


def _to_split(dataset: Any, where: str) -> Split:
    """Convert one IMDB split (columns text, label) to a ``Split``."""
    missing = [c for c in ("text", "label") if c not in dataset.column_names]
    if missing:
        raise InputError(f"{where} lacks column(s) {missing}; it has {dataset.column_names}")
    cols = dataset[:]
    return Split(texts=list(cols["text"]), labels=np.asarray(cols["label"], dtype=np.int64))


def load_imdb(
    *,
    n_train: int | None = None,
    n_eval: int | None = None,
    seed: int = 0,
    max_length: int | None = 512,
    loader: Callable[[], Mapping[str, Any]] | None = None,
) -> Task:
    """Load IMDB as a binary single-sentence task (0 = negative, 1 = positive).

    The Hub files are sorted by label, so ``n_train``/``n_eval`` take seeded, class-stratified random
    subsets (of train / test) rather than the first N rows (which would hold one class only).
    """
    check_common(n_train, n_eval, seed, max_length)
    data = (loader or hub_loader)()
    missing = [s for s in ("train", "test") if s not in data]
    if missing:
        raise InputError(f"IMDB data lacks split(s) {missing}; it has {sorted(data)}")
    splits = {"train": _to_split(data["train"], "IMDB train"), "eval": _to_split(data["test"], "IMDB test")}
    return Task(
        name="imdb",
        kind="single",
        metric="accuracy",
        num_labels=2,
        splits=take_subsets(splits, n_train, n_eval, seed),
        label_names=["neg", "pos"],
        max_length=max_length,
        info={"source": "stanfordnlp/imdb", "n_train": n_train, "n_eval": n_eval, "seed": seed},
    )
