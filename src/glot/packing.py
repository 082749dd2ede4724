"""Deprecated import path: ``glot.packing`` moved to ``glot.pooling.packing`` (0.2); this alias goes away in 0.3."""

from glot._moved import alias

alias(__name__, "glot.pooling.packing")
