"""Bridges to the field's tools; each submodule imports its optional dependency only when imported itself.

- :mod:`glot.integrations.sentence_transformers`: ``GLOTPooling``, a sentence-transformers module, and
  ``run_to_sentence_transformer`` (needs ``pip install glot-pooling[st]``);
- :mod:`glot.integrations.mteb`: ``GLOTMTEBEncoder`` for MTEB evaluation (needs ``pip install glot-pooling[mteb]``).

:func:`require_extra` checks an optional dependency up front and names the extra that installs it.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["EXTRAS", "require_extra"]

#: optional dependency -> the extra of glot-pooling that installs it
EXTRAS = {"peft": "peft", "sentence_transformers": "st", "mteb": "mteb"}


def require_extra(module: str, purpose: str) -> ModuleType:
    """Import an optional dependency, or raise ONE ImportError line naming the extra that installs it.

    Call it before any expensive work (loading a backbone, reading a task) that the dependency is needed after.
    """
    try:
        return importlib.import_module(module)
    except ImportError:
        extra = EXTRAS.get(module, module)
        raise ImportError(
            f"{purpose} needs the optional dependency {module!r}, which is not installed; "
            f'install it with: pip install "glot-pooling[{extra}]"'
        ) from None
