"""Old import paths of modules that moved in 0.2 (issue 11): each old file is a shim calling :func:`alias`."""

from __future__ import annotations

import importlib
import sys
import warnings


def alias(old: str, new: str) -> None:
    """Make ``import old`` return the module ``new`` itself (same object, so patches and isinstance agree),
    with a DeprecationWarning naming the new path."""
    warnings.warn(
        f"{old} moved to {new}; the old import path goes away in glot-pooling 0.3",
        DeprecationWarning,
        stacklevel=3,
    )
    sys.modules[old] = importlib.import_module(new)
