"""Progress bars and output verbosity, decided in one place.

Bars: every bar of glot is made by :func:`tqdm` (a drop-in for ``tqdm.auto.tqdm``). It draws only when its stream
is a terminal or a notebook, so ``glot compare > log 2>&1``, CI logs and piped Python scripts carry no bar lines;
``progress=False`` arguments (``disable=True``) still switch a bar off. :func:`output` (entered once per command
by :func:`glot.cli.main`) sets the mode for a run: ``quiet`` (only results and errors), ``normal`` (glot's notes
and warnings, bars on a terminal, library warnings and transformers' own logs/bars silenced) or ``verbose``
(everything, bars even when piped). glot's informational lines go through :mod:`logging` (logger ``glot``), so
the level decides.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Iterator
from typing import IO, Any, Literal

Verbosity = Literal["quiet", "normal", "verbose"]
Bars = Literal["auto", "on", "off"]
VERBOSITIES: tuple[Verbosity, ...] = ("quiet", "normal", "verbose")
#: logging level of the ``glot`` logger per verbosity
LEVELS: dict[Verbosity, int] = {"quiet": logging.ERROR, "normal": logging.INFO, "verbose": logging.DEBUG}

_bars: Bars = "auto"
_verbosity: Verbosity = "normal"
log = logging.getLogger("glot")
_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _interactive(stream: IO[str] | None) -> bool:
    """A terminal, or a Jupyter kernel (where tqdm.auto draws a widget, not ``\\r`` lines)."""
    stream = sys.stderr if stream is None else stream
    try:
        if stream.isatty():
            return True
    except (AttributeError, ValueError):  # a closed or odd stream: no bars
        return False
    return "ipykernel" in sys.modules and type(stream).__module__.startswith("ipykernel")


def verbosity() -> Verbosity:
    """The verbosity of the running command (``normal`` outside the CLI)."""
    return _verbosity


def bars_enabled(stream: IO[str] | None = None) -> bool:
    """Whether a bar on ``stream`` (default stderr) draws under the current mode."""
    return _bars == "on" or (_bars == "auto" and _interactive(stream))


def tqdm(*args: Any, disable: bool | None = False, **kwargs: Any) -> Any:
    """``tqdm.auto.tqdm`` that draws only on a terminal (or with ``--verbose``); ``disable=True`` always hides it."""
    from tqdm.auto import tqdm as _tqdm

    return _tqdm(*args, disable=bool(disable) or not bars_enabled(kwargs.get("file")), **kwargs)


class _Format(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        prefix = "glot: " if record.levelno < logging.WARNING else f"glot: {record.levelname.lower()}: "
        return prefix + record.getMessage()


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: Any = None, line: str | None = None) -> None:  # fmt: skip
    """Python warnings as one log line: glot's own plainly, a library's with its category and origin."""
    if category.__module__.split(".")[0] == "glot" or os.path.abspath(filename).startswith(_PACKAGE):
        log.warning("%s", message)
    else:
        log.warning("%s from %s:%d: %s", category.__name__, filename, lineno, message)


@contextlib.contextmanager
def output(verbosity: Verbosity = "normal", progress: bool = True) -> Iterator[None]:
    """Apply a verbosity for the duration of a command: bars, glot's log level, warnings, transformers.

    ``progress=False`` (``--no-progress``) removes bars at any verbosity. Everything is restored on exit.
    """
    global _bars, _verbosity
    assert verbosity in VERBOSITIES, verbosity  # the CLI's choices
    old_bars, old_verbosity, old_level, old_propagate = _bars, _verbosity, log.level, log.propagate
    _verbosity = verbosity
    _bars = "off" if not progress or verbosity == "quiet" else ("on" if verbosity == "verbose" else "auto")
    handler = logging.StreamHandler(sys.stderr)  # the stderr of now (pytest's capture swaps it)
    handler.setFormatter(_Format())
    log.addHandler(handler)
    log.setLevel(LEVELS[verbosity])
    log.propagate = False
    try:
        with warnings.catch_warnings(), _libraries(verbosity == "verbose", bars_enabled()):
            if verbosity == "quiet":
                warnings.simplefilter("ignore")
            elif verbosity == "normal":  # glot's own warnings (truncation, cache) yes, libraries' no
                warnings.simplefilter("ignore")
                warnings.filterwarnings("default", module=r"glot(\.|$)")
            else:
                warnings.simplefilter("default")
            warnings.showwarning = _show_warning
            yield
    finally:
        log.removeHandler(handler)
        log.setLevel(old_level)
        log.propagate = old_propagate
        _bars, _verbosity = old_bars, old_verbosity


@contextlib.contextmanager
def library_bars() -> Iterator[None]:
    """transformers' own bars (e.g. "Loading weights") follow glot's rule inside the block: drawn only where a
    glot bar would draw (a terminal, or --verbose), so the Python API stays quiet when piped too."""
    from transformers.utils import logging as hf_logging

    if bars_enabled() or not hf_logging.is_progress_bar_enabled():
        yield
        return
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.enable_progress_bar()


@contextlib.contextmanager
def _libraries(verbose: bool, bars: bool) -> Iterator[None]:
    """transformers' logs (unless verbose) and its bars (e.g. "Loading weights", unless bars draw) silenced.

    transformers is configured directly when already imported; otherwise through the environment variables it
    reads at import, so commands that never load a model do not pay for importing it.
    """
    if "transformers" not in sys.modules:
        with _environment(verbose, bars):
            yield
        return
    from transformers.utils import logging as hf_logging

    level, was_enabled = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    if not verbose:
        hf_logging.set_verbosity_error()
    if not bars:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if was_enabled:
            hf_logging.enable_progress_bar()


@contextlib.contextmanager
def _environment(verbose: bool, bars: bool) -> Iterator[None]:
    """The same through the variables transformers / huggingface_hub read at import (restored after)."""
    env = {
        "TRANSFORMERS_VERBOSITY": None if verbose else "error",
        "HF_HUB_DISABLE_PROGRESS_BARS": None if bars else "1",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update({k: v for k, v in env.items() if v is not None and k not in os.environ})
    hub = sys.modules.get("huggingface_hub.utils")  # already imported: it read the variable before
    if hub is not None and not bars:
        hub.disable_progress_bars()
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
        if hub is not None and not bars:
            hub.enable_progress_bars()
        if "transformers" in sys.modules:  # imported meanwhile: undo what the variables we set did
            from transformers.utils import logging as hf_logging

            if saved["TRANSFORMERS_VERBOSITY"] is None and env["TRANSFORMERS_VERBOSITY"] is not None:
                hf_logging.set_verbosity(logging.WARNING)
            if (
                saved["HF_HUB_DISABLE_PROGRESS_BARS"] is None
                and env["HF_HUB_DISABLE_PROGRESS_BARS"] is not None
            ):
                hf_logging.enable_progress_bar()
