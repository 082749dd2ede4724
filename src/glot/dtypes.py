"""Deprecated import path: ``glot.dtypes`` moved to ``glot.backbones.dtypes`` (0.2); this alias goes away in 0.3."""

from glot._moved import alias

alias(__name__, "glot.backbones.dtypes")
