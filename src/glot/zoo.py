"""Deprecated import path: ``glot.zoo`` moved to ``glot.backbones.zoo`` (0.2); this alias goes away in 0.3."""

from glot._moved import alias

alias(__name__, "glot.backbones.zoo")
