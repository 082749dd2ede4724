"""Deprecated import path: ``glot.trainconfig`` moved to ``glot.training.config`` (0.2); this alias goes away in 0.3."""

from glot._moved import alias

alias(__name__, "glot.training.config")
