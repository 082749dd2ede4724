"""GLUE tasks from the Hugging Face Hub (``datasets.load_dataset("nyu-mll/glue", config)``).

Facts from PAPER.md: metrics are MCC for CoLA, Spearman for STS-B, F1 for MRPC and QQP, accuracy otherwise;
results are reported on the GLUE validation split (MNLI: matched and mismatched); QQP, QNLI and MNLI train on
the first 20,000 training examples (as the reference code); max_length 128. STS-B scores lie in [0, 5]:
``task.info["score_scale"] = 5``.

``loader`` (a function ``config -> DatasetDict``) replaces the Hub call, e.g. with in-memory datasets in tests.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from glot.data.base import Split, Task, check_common, take_subsets
from glot.errors import InputError

__all__ = ["GLUE_TASKS", "PAPER_TRAIN_LIMIT", "GlueSpec", "hub_loader", "load_glue"]

PAPER_TRAIN_LIMIT = 20_000


@dataclass(frozen=True)
class GlueSpec:
    """How one GLUE config maps onto a ``Task``: text columns, label space, metric and eval splits."""

    columns: tuple[str, ...]
    metric: str
    label_names: tuple[str, ...] | None
    eval_splits: tuple[tuple[str, str], ...] = (("eval", "validation"),)
    paper_subset: bool = False

    @property
    def kind(self) -> str:
        if self.label_names is None:
            return "sts"
        return "pair" if len(self.columns) == 2 else "single"


GLUE_TASKS: dict[str, GlueSpec] = {
    "cola": GlueSpec(("sentence",), "mcc", ("unacceptable", "acceptable")),
    "sst2": GlueSpec(("sentence",), "accuracy", ("negative", "positive")),
    "stsb": GlueSpec(("sentence1", "sentence2"), "spearman", None),
    "mrpc": GlueSpec(("sentence1", "sentence2"), "f1", ("not_equivalent", "equivalent")),
    "qqp": GlueSpec(("question1", "question2"), "f1", ("not_duplicate", "duplicate"), paper_subset=True),
    "mnli": GlueSpec(
        ("premise", "hypothesis"),
        "accuracy",
        ("entailment", "neutral", "contradiction"),
        eval_splits=(("eval", "validation_matched"), ("eval_mismatched", "validation_mismatched")),
        paper_subset=True,
    ),
    "qnli": GlueSpec(
        ("question", "sentence"), "accuracy", ("entailment", "not_entailment"), paper_subset=True
    ),
    "rte": GlueSpec(("sentence1", "sentence2"), "accuracy", ("entailment", "not_entailment")),
    "wnli": GlueSpec(("sentence1", "sentence2"), "accuracy", ("not_entailment", "entailment")),
}


def hub_loader(config: str) -> Any:
    """Load one GLUE config from the Hub: ``datasets.load_dataset("nyu-mll/glue", config)``."""
    from glot.data.hub import load_hub_dataset

    return load_hub_dataset("nyu-mll/glue", config, task=config)


def _to_split(dataset: Any, spec: GlueSpec, first: int | None, where: str) -> Split:
    """The first ``first`` rows (all if None) of one GLUE split (a ``datasets.Dataset``) as a ``Split``."""
    missing = [c for c in (*spec.columns, "label") if c not in dataset.column_names]
    if missing:
        raise InputError(f"{where} lacks column(s) {missing}; it has {dataset.column_names}")
    cols = dict(dataset[: len(dataset) if first is None else min(first, len(dataset))])
    dtype = np.float32 if spec.kind == "sts" else np.int64
    return Split(
        texts=cols[spec.columns[0]],
        texts_pair=cols[spec.columns[1]] if len(spec.columns) == 2 else None,
        labels=np.asarray(cols["label"], dtype=dtype),
    )


def _label_names(dataset: Any, spec: GlueSpec) -> list[str] | None:
    """Class names from the dataset's ClassLabel feature if it has one, else the known GLUE names."""
    feature = getattr(dataset, "features", {}).get("label")
    names = getattr(feature, "names", None)
    if spec.label_names is not None and names and len(names) == len(spec.label_names):
        return list(names)
    return None if spec.label_names is None else list(spec.label_names)


def load_glue(
    name: str,
    *,
    n_train: int | None = None,
    n_eval: int | None = None,
    seed: int = 0,
    max_length: int | None = 128,
    paper_subsets: bool = True,
    loader: Callable[[str], Mapping[str, Any]] | None = None,
) -> Task:
    """Load GLUE task ``name`` ("cola", "sst2", "stsb", "mrpc", "qqp", "mnli", "qnli", "rte", "wnli").

    Train split = GLUE train; "eval" = GLUE validation (MNLI: "eval" = validation_matched and
    "eval_mismatched" = validation_mismatched). With ``paper_subsets`` (default) QQP/QNLI/MNLI first keep the
    paper's first 20,000 training rows; ``n_train`` then draws a seeded, class-stratified subset of THAT pool
    (of all of train for the other tasks or with ``paper_subsets=False``). ``n_eval`` draws such a subset of
    each evaluation split (quick runs only; published numbers use all of them).
    """
    if name not in GLUE_TASKS:
        raise InputError(f"unknown GLUE task {name!r}; valid: {', '.join(GLUE_TASKS)}")
    check_common(n_train, n_eval, seed, max_length)
    if not isinstance(paper_subsets, bool):
        raise InputError(f"paper_subsets must be true or false, got {paper_subsets!r}")
    spec = GLUE_TASKS[name]
    pool = PAPER_TRAIN_LIMIT if paper_subsets and spec.paper_subset else None
    data = (loader or hub_loader)(name)
    wanted = ["train", *(hf for _, hf in spec.eval_splits)]
    missing = [s for s in wanted if s not in data]
    if missing:
        raise InputError(f"GLUE {name!r} data lacks split(s) {missing}; it has {sorted(data)}")
    splits = {"train": _to_split(data["train"], spec, pool, f"GLUE {name} train")}
    for ours, hf in spec.eval_splits:
        splits[ours] = _to_split(data[hf], spec, None, f"GLUE {name} {hf}")
    info: dict[str, Any] = {"source": "nyu-mll/glue", "paper_train_pool": pool}
    info |= {"n_train": n_train, "n_eval": n_eval, "seed": seed}
    if spec.kind == "sts":
        info["score_scale"] = 5.0
    return Task(
        name=name,
        kind=spec.kind,
        metric=spec.metric,
        num_labels=1 if spec.label_names is None else len(spec.label_names),
        splits=take_subsets(splits, n_train, n_eval, seed),
        label_names=_label_names(data["train"], spec),
        max_length=max_length,
        info=info,
    )
