"""Deprecated import path: ``glot.backbone_ref`` moved to ``glot.backbones.reference`` (0.2); this alias goes away in 0.3."""

from glot._moved import alias

alias(__name__, "glot.backbones.reference")
