"""Deprecated import path: ``glot.metrics`` moved to ``glot.training.metrics`` (0.2); this alias goes away in 0.3."""

from glot._moved import alias

alias(__name__, "glot.training.metrics")
