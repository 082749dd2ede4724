"""The long-text settings of a frozen backbone (no torch import: the CLI's parsers read them for --help).

The windows themselves are built and stitched in :mod:`glot.backbones.chunking`.
"""

from __future__ import annotations

from glot.errors import InputError, InputTypeError

#: How a frozen backbone treats texts longer than ``max_length`` tokens.
LONG_MODES = ("truncate", "chunk")
#: Tokens two consecutive windows share (context for the tokens at each seam) unless told otherwise: this
#: many, or a quarter of a window's text tokens when windows are short (max_length < 4 * 32 + specials).
DEFAULT_OVERLAP = 32


def check_long(long: str, overlap: int | None) -> tuple[str, int | None]:
    """Validate a long-text mode and window overlap (``InputError`` / ``InputTypeError`` in one line);
    ``overlap`` None = the default (see :data:`DEFAULT_OVERLAP`)."""
    if long not in LONG_MODES:
        raise InputError(f"long must be one of {', '.join(LONG_MODES)}, got {long!r}")
    if overlap is None:
        return long, None
    if isinstance(overlap, bool) or not isinstance(overlap, int):
        raise InputTypeError(f"chunk_overlap must be an int number of tokens, got {overlap!r}")
    if overlap < 0:
        raise InputError(f"chunk_overlap must be >= 0 tokens, got {overlap}")
    return long, overlap
