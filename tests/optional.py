"""Optional test dependencies: skip when a package is NOT INSTALLED, fail when it is installed but broken.

``pytest.importorskip`` skips on any ImportError, so a broken install (or a bug in our own module) would turn
into a silent skip; ``require`` only skips when the package cannot be found at all.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

import pytest


def require(module: str, install: str) -> ModuleType:
    """Import ``module`` (errors propagate), or skip the test / test module when it is not installed."""
    if importlib.util.find_spec(module.split(".")[0]) is None:
        pytest.skip(f"{module} is not installed ({install})", allow_module_level=True)
    return importlib.import_module(module)
