"""Deprecated import path: ``glot.gnn`` moved to ``glot.pooling.gnn`` (0.2); this alias goes away in 0.3."""

from glot._moved import alias

alias(__name__, "glot.pooling.gnn")
