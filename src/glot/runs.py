"""Deprecated import path: ``glot.runs`` moved to ``glot.training.checkpoint`` (0.2); this alias goes away in 0.3."""

from glot._moved import alias

alias(__name__, "glot.training.checkpoint")
