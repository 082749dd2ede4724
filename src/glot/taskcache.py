"""Deprecated import path: ``glot.taskcache`` moved to ``glot.cache.task`` (0.2); this alias goes away in 0.3."""

from glot._moved import alias

alias(__name__, "glot.cache.task")
