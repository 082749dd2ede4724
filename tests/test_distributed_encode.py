"""``glot encode`` streams its input and writes sharded output: 2 torchrun ranks (gloo, CPU) give the same
rows as one process, the single-file .npy output equals the folder's rows, and the input is embedded and
written chunk by chunk (a part is on disk while the rest of the input has not been written yet)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from glot.cli import main
from glot.export.sharded import iter_chunks, load

sys.path.insert(0, str(Path(__file__).parent))
from tiny_models import WORDS, make_tiny_bert  # noqa: E402
from torchrun import child_env, failure, glot  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("dist-encode")
    rng = np.random.default_rng(0)
    lines = [" ".join(rng.choice(WORDS, size=int(rng.integers(1, 30)))) for _ in range(90)]
    lines[5] = "   "  # blank lines are skipped, as before
    (root / "texts.txt").write_text("\n".join(lines) + "\n")
    return {"root": root, "texts": root / "texts.txt", "model": make_tiny_bert(root / "bert")}


def _args(s: dict[str, Path], out: Path) -> list[str]:
    return ["encode", str(s["texts"]), "--model", str(s["model"]), "--pooler", "mean", "-o", str(out),
            "--shard-rows", "16", "--batch-size", "8", "--no-progress"]  # fmt: skip


def test_two_ranks_write_the_same_rows_as_one_process(setup: dict[str, Path]) -> None:
    one, two, flat = setup["root"] / "one", setup["root"] / "two", setup["root"] / "flat.npy"
    assert main(_args(setup, one)) == 0
    assert main(_args(setup, flat)) == 0
    proc = glot(2, *_args(setup, two), "--json", str(setup["root"] / "two.json"))
    assert proc.returncode == 0, failure(proc.stderr)
    assert json.loads((setup["root"] / "two.json").read_text())["ranks"] == 2
    a, b = load(one), load(two)
    assert a.shape == (89, 32)  # 90 lines, one blank
    assert np.array_equal(a, b)  # row for row
    assert np.array_equal(a, np.load(flat))  # the one-file output has the same rows
    ia, ib = (json.loads((d / "index.json").read_text()) for d in (one, two))
    assert len(ia["shards"]) == 6  # 89 rows in parts of 16
    assert [r["sha256"] for r in ia["shards"]] == [r["sha256"] for r in ib["shards"]]


def test_input_is_streamed_part_by_part(setup: dict[str, Path]) -> None:
    out = setup["root"] / "streamed"
    argv = [sys.executable, "-m", "glot", *_args(setup, out)]
    argv[argv.index(str(setup["texts"]))] = "-"  # read stdin
    proc = subprocess.Popen(argv, env=child_env(), stdin=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdin is not None
    lines = [t for chunk in iter_chunks(setup["texts"], 16) for t in chunk]
    proc.stdin.write("".join(t + "\n" for t in lines[:16]))
    proc.stdin.flush()
    deadline = time.monotonic() + 120
    while not (out / "part-00000.npy").exists():  # written before the rest of the input exists
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "the first part was not written from the first 16 lines"
        time.sleep(0.05)
    assert not (out / "index.json").exists()
    proc.stdin.write("".join(t + "\n" for t in lines[16:]))
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, failure(err)
    reference = setup["root"] / "reference"
    assert main(_args(setup, reference)) == 0  # the same file read from disk in this process
    assert load(out).shape == (89, 32) and np.array_equal(load(out), load(reference))


def test_another_input_is_refused_then_overwrite_removes_the_stale_parts(
    setup: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "emb"
    assert main(_args(setup, out)) == 0
    short = tmp_path / "short.txt"
    short.write_text("the cat sat\na dog\n")
    args = _args(setup, out)
    args[1] = str(short)
    capsys.readouterr()
    assert main(args) == 2  # parts of another input: never mixed, the folder is left as it was
    err = capsys.readouterr().err.strip()
    assert "another input, model or options (differs in: input)" in err and "--overwrite" in err
    assert len(err.splitlines()) == 1 and load(out).shape == (89, 32)
    assert main([*args, "--overwrite"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["index.json", "part-00000.npy"]
    assert load(out).shape == (2, 32)
