"""Deprecated import path: ``glot.train`` moved to ``glot.training.loop`` (0.2); this alias goes away in 0.3.

Unlike the other old paths this one stays a module of its own: ``glot.train`` is also the public training
function, so the module is callable (``glot.train(cached, config, out)``) and forwards every attribute.
"""

from __future__ import annotations

import sys
import types
import warnings
from typing import Any

from glot.training import loop as _loop

warnings.warn(
    "glot.train moved to glot.training.loop; the old import path goes away in glot-pooling 0.3",
    DeprecationWarning,
    stacklevel=2,
)


class _CallableModule(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return _loop.train(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(_loop, name)


sys.modules[__name__].__class__ = _CallableModule
