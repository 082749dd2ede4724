"""Errors a user can cause (a bad value, file or config): the CLI prints them as one line, exit code 2.

Everything else that escapes the library is a bug of ours and keeps its traceback. ``InputError`` is a
``ValueError`` and ``InputTypeError`` a ``TypeError``, so callers that catch the builtin types keep working.
"""

from __future__ import annotations

__all__ = ["GlotError", "InputError", "InputTypeError"]


class GlotError(Exception):
    """Base of every user-caused error raised by glot (what was received, what was expected, the fix)."""


class InputError(GlotError, ValueError):
    """A value, file or config given by the user is not acceptable."""


class InputTypeError(GlotError, TypeError):
    """An argument given by the user has the wrong type."""
