"""Shared CLI helpers: one-line errors, rich result tables, --json output, common arguments."""

from __future__ import annotations

import argparse
import errno
import logging
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from glot.io import atomic_write_json


class _Console(Console):
    """stdout for results: under ``--quiet`` only tables (the results) print, every other line is dropped."""

    def print(self, *objects: Any, **kwargs: Any) -> None:
        from glot.progress import verbosity

        if verbosity() == "quiet" and not any(isinstance(o, Table) for o in objects):
            return
        super().print(*objects, **kwargs)


def _piped_width() -> int:
    """Columns for piped output: $COLUMNS when set (a CI log, `COLUMNS=80 glot models | cat`), else 120."""
    raw = os.environ.get("COLUMNS", "")
    return int(raw) if raw.isdigit() and int(raw) >= 40 else 120


# Piped output (logs, CI, `| tee`) gets 120 columns instead of rich's 80, so result tables stay unsquashed.
console = _Console(stderr=False, width=None if sys.stdout.isatty() else _piped_width())


def warn(message: str) -> None:
    """A warning line on stderr, ``glot: warning: ...`` (through logging: --quiet drops it)."""
    logging.getLogger("glot.cli").warning("%s", message)


def truncation_message(
    truncated: int | None, total: int, max_length: int | None, limit: int | None = None
) -> str | None:
    """The one warning for texts a backbone cut (None when none were): cache, train and eval say it alike."""
    if not truncated:
        return None
    upto = f" (up to {limit} for this model)" if limit and limit > (max_length or 0) else ""
    return (
        f"{truncated} of {total} texts were cut to {max_length} tokens by the backbone; "
        f"pass --max-length N{upto} to keep more of each text, or --long chunk to embed every token"
    )


def note(text: str) -> None:
    """A plain informational line on stdout (dropped by --quiet; never re-wrapped, so commands stay copyable)."""
    console.print(text, markup=False, highlight=False, soft_wrap=True)


class CLIError(Exception):
    """A user-caused problem; printed as one line ``glot: error: ...`` with exit code 2."""


def error(message: str, code: int = 2) -> int:
    print(f"glot: error: {message}", file=sys.stderr)
    return code


#: the fix for each file-system error a user's path can cause
_OS_FIXES: dict[int, str] = {
    errno.ENOENT: "check the path",
    errno.ENOTDIR: "a part of the path is a file, not a folder; choose another path",
    errno.EISDIR: "it is a folder where a file was expected; give a file path",
    errno.EEXIST: "a file is in the way where a folder is needed; choose another path",
    errno.EACCES: "fix its permissions or choose a path you can read and write",
    errno.EPERM: "fix its permissions or choose a path you can read and write",
    errno.EROFS: "it is on a read-only file system; choose a writable folder",
    errno.ENOSPC: "the disk is full; free space or choose a folder on another disk",
    errno.EDQUOT: "the disk quota is exhausted; free space or choose a folder on another disk",
}

# a temp file beside its target stands for the target: ".<name>.<random>.tmp" (glot.io), ".<name>.tmp.<ext>"
_TEMP_NAME = re.compile(r"^\.(?P<name>.+?)\.(?:[^./]+\.tmp|tmp\.[^./]+)$")


#: OSErrors that are about a path the user gave (also when raised by glot with a message naming it)
USER_OS_ERRORS = (FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError, PermissionError)


def os_error_message(err: OSError) -> str | None:
    """One line for a file-system error on a user's path (the path, the problem, the fix), else None."""
    if err.errno is None:  # raised by glot with its own message, which names the file
        return str(err) if isinstance(err, USER_OS_ERRORS) else None
    fix = _OS_FIXES.get(err.errno)
    if fix is None:
        return None
    if err.filename is None and err.filename2 is None:  # e.g. a write that found the disk full
        return f"{err.strerror or err}; {fix}"
    path = Path(str(err.filename2 if err.filename2 is not None else err.filename))
    match = _TEMP_NAME.match(path.name)
    shown = path.with_name(match["name"]) if match else path
    return f"{shown}: {err.strerror or err}; {fix}"


def print_table(
    title: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    caption: str | None = None,
    left: int = 1,
    wrap: Sequence[int] | None = None,
) -> None:
    """Print a readable table (rich) to stdout: the first ``left`` columns left-aligned, the rest right-aligned;
    ``caption`` (e.g. a legend) below it. A cell too wide for the terminal wraps (folds), it is never cut. With
    ``wrap`` only those columns (e.g. model ids, licences) may wrap. A number (``72.5``, ``50.0 ± 3.6``,
    ``4,418``) stays on one line; a table too wide for the terminal gets the compact frame (no inner rules),
    which leaves the room to the cells, and only when even that cannot hold the numbers whole do they fold."""
    cells = [[_fmt(v) for v in row] for row in rows]
    numeric = {i for i in range(len(columns)) if cells and all(_NUMBER.fullmatch(r[i]) for r in cells)}
    keep = numeric | (set() if wrap is None else set(range(len(columns))) - set(wrap))

    def build(compact: bool, one_line: set[int], blank: bool = False) -> Table:
        table = Table(title=None if blank else title, caption=None if blank else caption,
                      caption_justify="left", show_lines=False)  # fmt: skip
        if compact:
            table.box, table.show_edge, table.collapse_padding = box.SIMPLE_HEAD, False, True
        for i, col in enumerate(columns):
            justify: Literal["left", "right"] = "left" if i < left else "right"
            table.add_column(
                "" if blank else str(col), justify=justify, overflow="fold", no_wrap=i in one_line
            )
        for row in cells:
            table.add_row(*(["" for _ in row] if blank else row))
        return table

    def needed(compact: bool, one_line: set[int]) -> int:
        """Width at which every ``one_line`` column holds its widest cell and no other word is split."""
        frame = _measure(build(compact, one_line, blank=True)).maximum
        widths = [max([cell_len(str(col)) if i in one_line else _measure(str(col)).minimum]
                      + [cell_len(r[i]) if i in one_line else _measure(r[i]).minimum for r in cells])
                  for i, col in enumerate(columns)]  # fmt: skip
        return frame + sum(widths)

    compact = wrap is not None or _measure(build(False, keep)).maximum > console.width
    if needed(compact, keep) > console.width:  # even the numbers cannot all stay whole: every cell folds
        keep = set()
    console.print(build(compact, keep))


def _measure(renderable: Any) -> Measurement:
    """Natural (unconstrained) minimum / maximum width of a table or text on the results console."""
    return Measurement.get(console, console.options.update_width(10_000), renderable)


#: a table cell that is a number: 72.5, -3, 4,418, 0.41%, 50.0 ± 3.6, or a dash / nothing for a missing one
_NUMBER = re.compile(r"[-+]?[\d.,]+%?(?: ± [\d.,]+%?)?|-|")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def markdown_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """The same table as GitHub markdown (for docs and --markdown outputs)."""
    lines = ["| " + " | ".join(map(str, columns)) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def add_output_arguments(parser: argparse.ArgumentParser) -> None:
    """--quiet / --verbose (and --no-progress where the command has no such option yet), for every command."""
    g = parser.add_argument_group("output")
    level = g.add_mutually_exclusive_group()
    level.add_argument(
        "-q",
        "--quiet",
        dest="verbosity",
        action="store_const",
        const="quiet",
        help="print only the result table(s) and errors: no notes, warnings or progress bars",
    )
    level.add_argument("-v", "--verbose", dest="verbosity", action="store_const", const="verbose",
                       help="also library warnings, transformers' logs and progress bars even when piped")  # fmt: skip
    parser.set_defaults(verbosity="normal")
    if "--no-progress" not in parser._option_string_actions:
        g.add_argument("--no-progress", action="store_true", help="no progress bars")


def add_json_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", metavar="PATH", type=Path, help="also write the results as JSON to PATH")


def maybe_write_json(path: Path | None, data: Any) -> None:
    """Write ``--json`` (atomically; a missing folder is created). A path that cannot be written -> CLIError."""
    if path is not None:
        try:
            atomic_write_json(path, data)
        except OSError as err:  # a full disk reports no file name; a refused temp file is not the user's name
            fix = _OS_FIXES.get(err.errno) if err.errno is not None else None
            if fix is None:
                raise
            raise CLIError(f"--json {path}: {err.strerror or err}; {fix}") from err
        note(f"wrote {path}")
