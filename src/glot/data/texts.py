"""The one check of a batch of texts, used wherever texts enter glot: model input (``FrozenBackbone``,
``Encoder.encode``), the hidden-state cache and a task split's text fields. The rules are stated once here;
callers choose the two that differ with ``ordered`` and ``allow_empty``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import cast

from glot.errors import InputError, InputTypeError

__all__ = ["TextsError", "check_texts"]


class TextsError(InputError, InputTypeError):
    """A batch of texts that is not a list of str: a wrong type and a wrong value at once, so callers catching
    either ``TypeError`` or ``ValueError`` (what the text checks raised before they were one) keep working."""


def check_texts(
    texts: object, name: str = "texts", *, ordered: bool = False, allow_empty: bool = True
) -> list[str]:
    """The one check of a batch of texts (model input, cache input, a split's fields); returns it as a list.

    Rules: a bare string is refused (wrap it in a list); every item must be a ``str`` (the error names the first
    bad index and its type); ``ordered=True`` also refuses unordered iterables (a set or generator gives no
    stable item order, which the cache and row-aligned splits need); ``allow_empty=False`` refuses no texts.
    ``name`` is how the texts are called in the message (e.g. ``"Split.texts"``). Raises :class:`TextsError`.
    """
    if isinstance(texts, (str, bytes)):
        raise TextsError(f"{name} must be a list of str, got a single string; wrap it in a list: [text]")
    if ordered and not isinstance(texts, Sequence):
        raise TextsError(
            f"{name} must be a list of str (an ordered sequence), got {type(texts).__name__}; pass list(...)"
        )
    try:
        items = list(cast("Iterable[object]", texts))
    except TypeError:
        raise TextsError(f"{name} must be a list of str, got {type(texts).__name__}") from None
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise TextsError(
                f"{name}[{i}] must be a str, got {type(item).__name__} ({item!r:.60}); drop or fill "
                "missing texts first"
            )
    if not allow_empty and not items:
        raise TextsError(f"{name} is empty; pass at least one text")
    return cast("list[str]", items)
