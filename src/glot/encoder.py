"""Deprecated import path: ``glot.encoder`` moved to ``glot.export.encoder`` (0.2); this alias goes away in 0.3."""

from glot._moved import alias

alias(__name__, "glot.export.encoder")
