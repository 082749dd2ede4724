"""Deprecated import path: ``glot.finetune`` moved to ``glot.training.finetune`` (0.2); this alias goes away in 0.3."""

from glot._moved import alias

alias(__name__, "glot.training.finetune")
