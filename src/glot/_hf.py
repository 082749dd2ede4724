"""Deprecated import path: ``glot._hf`` moved to ``glot.backbones.introspect`` (0.2); this alias goes away in 0.3."""

from glot._moved import alias

alias(__name__, "glot.backbones.introspect")
