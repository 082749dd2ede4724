"""Deprecated import path: ``glot.card`` moved to ``glot.export.card`` (0.2); this alias goes away in 0.3."""

from glot._moved import alias

alias(__name__, "glot.export.card")
