"""Deprecated import path: ``glot.tokens`` moved to ``glot.backbones.tokenize`` (0.2); this alias goes away in 0.3."""

from glot._moved import alias

alias(__name__, "glot.backbones.tokenize")
