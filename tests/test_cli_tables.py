"""Result tables fit the terminal: numbers (``50.0 ± 3.6``) stay on one line, a table too wide for the full frame
gets the compact one, and when even that cannot hold them nothing is cut (cells fold)."""

from __future__ import annotations

import re
import sys
from io import StringIO
from pathlib import Path

import pytest

from glot.cli import common, main

sys.path.insert(0, str(Path(__file__).parent))
from tiny_models import make_tiny_bert  # noqa: E402

COLUMNS = ["pooler", "acc % @ 0.2", "acc % @ 0.5", "acc % @ 0.8", "acc % @ 0.9", "params", "train s"]
ROWS = [
    ["adapool", "64.6 ± 25.3", "43.8 ± 10.8", "50.0 ± 0.0", "52.1 ± 3.6", "4,418", 0.1],
    ["glot", "100.0 ± 0.0", "50.0 ± 0.0", "50.0 ± 0.0", "50.0 ± 0.0", "57,442", 12.3],
]


def _console(monkeypatch: pytest.MonkeyPatch, width: int) -> StringIO:
    out = StringIO()
    monkeypatch.setattr(common, "console", common._Console(file=out, width=width, color_system=None))
    return out


@pytest.mark.parametrize("width", [80, 100, 140])
def test_numbers_stay_whole_and_the_table_fits(monkeypatch: pytest.MonkeyPatch, width: int) -> None:
    out = _console(monkeypatch, width)
    common.print_table(
        "Stress test on minilm — eval accuracy at best-on-validation epoch (3 seeds)", COLUMNS, ROWS
    )
    lines = out.getvalue().splitlines()
    assert max(len(line) for line in lines) <= width
    body = [line for line in lines if "adapool" in line or "glot" in line]
    assert len(body) == 2  # one line per row: nothing wrapped
    for row, line in zip(ROWS, body, strict=True):
        assert [c.strip() for c in re.split(r"\s{2,}|│", line) if c.strip()] == [str(v) for v in row]


def test_a_table_that_cannot_fit_folds_and_cuts_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    out = _console(monkeypatch, 50)
    common.print_table("narrow", COLUMNS, ROWS)
    text = out.getvalue()
    assert max(len(line) for line in text.splitlines()) <= 50
    digits = "".join(ch for row in [COLUMNS, *ROWS] for v in row for ch in str(v) if ch.isdigit())
    assert sorted(ch for ch in text if ch.isdigit()) == sorted(
        digits
    )  # every digit is printed (title has none)


def test_compare_table_at_80_columns_keeps_every_number_whole(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    tiny = make_tiny_bert(tmp_path / "bert")
    out = _console(monkeypatch, 80)
    argv = ["compare", "--model", str(tiny), "--task-option", "seq_len=16", "--n-train", "24", "--n-eval", "12",
            "--max-length", "12", "--poolers", "mean,max,adapool", "--ratios", "0.2,0.5,0.8,0.9", "--seeds", "0,1",
            "--epochs", "1", "--cache-dir", str(tmp_path / "c"), "--out", str(tmp_path / "o"), "--quiet"]  # fmt: skip
    assert main(argv) == 0
    lines = out.getvalue().splitlines()
    assert max(len(line) for line in lines) <= 80
    rows = [line for line in lines if line.strip().startswith(("mean", "max", "adapool"))]
    assert len(rows) == 3 and all(len(re.findall(r"\d+\.\d ± \d+\.\d", row)) == 4 for row in rows), lines
