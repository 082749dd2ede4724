"""The one place tasks fetch data from the Hugging Face Hub (``datasets.load_dataset``).

An unreachable Hub (offline machine, ``HF_DATASETS_OFFLINE=1``, no network) is an environment problem a user
can fix, so it becomes one :class:`~glot.errors.InputError` line naming the dataset and the offline route
instead of a traceback from inside ``datasets``.
"""

from __future__ import annotations

from typing import Any

from glot.errors import InputError

__all__ = ["load_hub_dataset"]


def load_hub_dataset(path: str, config: str | None = None, *, task: str) -> Any:
    """``datasets.load_dataset(path, config)``; an unreachable Hub raises one InputError for ``task``."""
    import datasets

    try:
        return datasets.load_dataset(path, config) if config else datasets.load_dataset(path)
    except ConnectionError as err:
        name = f"{path}/{config}" if config else path
        raise InputError(
            f"task {task!r} loads its data from the Hugging Face Hub ({name}), which cannot be reached "
            f"({err}); connect to the Hub, or export the data to a CSV/JSONL with the same columns and pass "
            "--task FILE.csv (columns text[, text_pair], label or score)"
        ) from None
