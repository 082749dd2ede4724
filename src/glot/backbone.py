"""Deprecated import path: ``glot.backbone`` moved to ``glot.backbones.frozen`` (0.2); this alias goes away in 0.3."""

from glot._moved import alias

alias(__name__, "glot.backbones.frozen")
