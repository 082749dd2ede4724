"""`glot train` on a decoder, piped to a file: the log holds glot's table and footnote only, no transformers
warning, log line or progress bar (a real subprocess: its output is not a terminal)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import glot

sys.path.insert(0, str(Path(__file__).parent))
from tiny_models import make_tiny_llama  # noqa: E402

BAR_MARKS = ("\r", "it/s", "%|", "text/s", "Loading weights")


def test_piped_train_on_a_decoder_prints_no_library_output(tmp_path: Path) -> None:
    model = make_tiny_llama(tmp_path / "llama")
    data = tmp_path / "small.csv"
    with open(data, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows(("the cat sat on the mat" if i % 2 else "the dog is bad", i % 2) for i in range(24))
    env = dict(os.environ, PYTHONPATH=str(Path(glot.__file__).parents[1]), HF_HUB_OFFLINE="1", COLUMNS="80")
    argv = [str(Path(sys.executable).with_name("glot")), "train", "--task", str(data), "--model", str(model),
            "--pooler", "glot", "--epochs", "1", "--cache-dir", str(tmp_path / "c"), "--out", str(tmp_path / "r")]  # fmt: skip
    log = tmp_path / "log"
    with log.open("w") as out:
        assert subprocess.run(argv, env=env, stdout=out, stderr=subprocess.STDOUT).returncode == 0
    text = log.read_text()
    lines = text.splitlines()
    assert not [m for m in BAR_MARKS if m in text], text
    assert "small — glot" in lines[0] and lines[-1].startswith("* optimistic"), text
    # glot's own notes (e.g. the chosen tau), then the compact frame: header line(s), one rule, one row per seed
    notes = [line for line in lines[1:-1] if line.startswith("glot: ")]
    assert all("tau auto ->" in line for line in notes), text
    table = [line for line in lines[1:-1] if line not in notes]
    assert any("seed" in line and "val accuracy" in line for line in table), text
    assert sum(set(line.strip()) == {"─"} for line in table) == 1 and table[-1].startswith(" 0 "), text
    assert len(table) <= 5 and all(len(line) <= 80 for line in table), text  # nothing else was printed
