"""Deprecated import path: ``glot.readout`` moved to ``glot.pooling.readout`` (0.2); this alias goes away in 0.3."""

from glot._moved import alias

alias(__name__, "glot.pooling.readout")
