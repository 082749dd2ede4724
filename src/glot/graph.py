"""Deprecated import path: ``glot.graph`` moved to ``glot.pooling.graph`` (0.2); this alias goes away in 0.3."""

from glot._moved import alias

alias(__name__, "glot.pooling.graph")
