"""`glot train` data-parallel over 2 CPU processes (torchrun, gloo): the same numbers as one process with the
same global batch (odd batch sizes, so the ranks' parts differ; in-batch negatives of a contrastive task), one
rank writing the run folder, and a run whose rank was SIGKILLed resumed to the same numbers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from glot.cli import main

sys.path.insert(0, str(Path(__file__).parent))
from tiny_models import WORDS, make_tiny_bert  # noqa: E402
from torchrun import child_env, failure  # noqa: E402

TIMEOUT = 180  # seconds a torchrun launch may take before the test kills it (a hang is a failure, not a wait)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_bert(tmp_path_factory.mktemp("models") / "bert")


def _torchrun(argv: list[str], nproc: int = 2) -> subprocess.Popen[bytes]:
    """`torchrun --standalone --nproc_per_node N -m glot ...` running this checkout's code, in its own session
    (so a test can SIGKILL the launcher and every rank at once)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    return subprocess.Popen(
        [*cmd, "-m", "glot", *argv], env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip


def _ranks(launcher: int) -> list[int]:
    """The worker processes torchrun started (its children; they run in sessions of their own)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # a process that just ended
            continue
        if int(fields[1]) == launcher:
            found.append(int(stat.parent.name))
    return sorted(found)


def _finish(proc: subprocess.Popen[bytes]) -> tuple[int, str]:
    try:
        out, _ = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"torchrun did not finish in {TIMEOUT} s:\n{out.decode()[-3000:]}")
    return proc.returncode, out.decode()


def _without_times(metrics: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in metrics.items() if k != "train_seconds"}
    out["history"] = [{k: v for k, v in h.items() if k != "seconds"} for h in metrics["history"]]
    return out


def _assert_same_run(one: dict[str, Any], two: dict[str, Any], rel: float = 1e-5) -> None:
    """Same run key, same epochs; losses and metrics equal up to float summation order."""
    assert one["run_key"] == two["run_key"] and one["best_val_epoch"] == two["best_val_epoch"]
    assert len(one["history"]) == len(two["history"])
    for a, b in zip(one["history"], two["history"], strict=True):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=rel)
        assert b["val"] == pytest.approx(a["val"], rel=rel, abs=1e-6)
        assert b["eval"] == pytest.approx(a["eval"], rel=rel, abs=1e-6)
    assert two["eval"] == pytest.approx(one["eval"], rel=rel, abs=1e-6)


def _msmarco(path: Path, n: int = 120) -> Path:
    """(query, positive) pairs of tiny-vocabulary words; the positive shares the query's first word."""
    rng = np.random.default_rng(3)
    vocab = [w for w in WORDS if w.isalpha()]
    with open(path, "w", encoding="utf-8") as handle:
        for _ in range(n):
            query = list(rng.choice(vocab, size=int(rng.integers(3, 7))))
            positive = query[:1] + list(rng.choice(vocab, size=int(rng.integers(2, 6))))
            handle.write(json.dumps([" ".join(query), " ".join(positive)]) + "\n")
    return path


@pytest.mark.parametrize(
    "pooler",
    [["glot", "--tau", "0.5", "--hidden-dim", "8"], ["mean", "--head-option", "learnable=true"]],
    ids=["glot", "mean-pooled-once"],
)
def test_two_processes_match_one_process_with_the_same_global_batch(
    tiny: Path, tmp_path: Path, pooler: list[str]
) -> None:
    # a contrastive task: in-batch negatives, so a batch's loss is no sum over its rows; batch 9 of 81 train
    # rows: every batch splits 5 + 4 rows over the ranks (unequal parts). mean: a fixed pooler, whose vectors
    # each rank keeps after pooling them once (CacheSource.pooled), for both text columns
    task = ["--task", "msmarco", "--task-option", f"path={_msmarco(tmp_path / 'pairs.jsonl')}",
            "--task-option", "eval_size=30"]  # fmt: skip
    cache = ["--cache-dir", str(tmp_path / "cache"), "--cache-dtype", "float32", "--no-progress"]
    # --head-dtype fp32 explicitly: in the torchrun children (no conftest) "auto" may mean bf16
    argv = ["train", "--model", str(tiny), *task, "--max-length", "24", *cache, "--pooler", *pooler,
            "--epochs", "2", "--batch-size", "9", "--lr", "1e-2", "--head-dtype", "fp32"]  # fmt: skip
    assert main([*argv, "--out", str(tmp_path / "one"), "--json", str(tmp_path / "one.json")]) == 0
    code, log = _finish(
        _torchrun([*argv, "--out", str(tmp_path / "two"), "--json", str(tmp_path / "two.json")])
    )
    assert code == 0, failure(log)
    one = json.loads((tmp_path / "one.json").read_text())["per_seed"][0]
    two = json.loads((tmp_path / "two.json").read_text())["per_seed"][0]
    _assert_same_run(one, two)
    assert log.count("wrote ") == 1  # rank 0 alone reports (and writes --json)
    summary = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert summary["summary"]["eval"]["mean"] == pytest.approx(one["eval"], rel=1e-5, abs=1e-6)


def test_a_killed_two_process_run_resumes_to_the_one_process_numbers(tiny: Path, tmp_path: Path) -> None:
    epochs = 8  # --patience epochs: no early stop, every epoch runs
    argv = ["train", "--model", str(tiny), "--task", "stress", "--task-option", "seq_len=16", "--n-train",
            "200", "--n-eval", "40", "--max-length", "40", "--cache-dir", str(tmp_path / "cache"),
            "--cache-dtype", "float32", "--no-progress", "--pooler", "glot", "--tau", "0.5", "--hidden-dim",
            "16", "--epochs", str(epochs), "--batch-size", "9", "--lr", "1e-2",
            "--head-dtype", "fp32", "--patience", str(epochs)]  # fmt: skip
    assert main([*argv, "--out", str(tmp_path / "whole")]) == 0  # also builds the cache both launches read
    run = tmp_path / "killed"
    victim = _torchrun([*argv, "--out", str(run)])
    state_path = run / "seed-0" / "checkpoint" / "state.json"
    deadline = time.monotonic() + TIMEOUT
    while not state_path.is_file() and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert victim.poll() is None, _finish(victim)[1][-3000:]
    ranks = _ranks(victim.pid)
    assert len(ranks) == 2, ranks
    os.kill(ranks[-1], signal.SIGKILL)  # one rank dies mid-run: torchrun stops the other and gives up
    code, log = _finish(victim)
    assert code != 0, failure(log)
    state = json.loads(state_path.read_text())
    assert 1 <= state["epoch"] < epochs and not (run / "seed-0" / "metrics.json").exists()

    code, log = _finish(_torchrun([*argv, "--out", str(run)]))
    assert code == 0, failure(log)
    whole = json.loads((tmp_path / "whole" / "seed-0" / "metrics.json").read_text())
    resumed = json.loads((run / "seed-0" / "metrics.json").read_text())
    _assert_same_run(whole, resumed)
    assert resumed["epochs_run"] == epochs
    # the resumed run kept the killed run's finished epochs instead of retraining them
    done = state["epoch"]
    assert [h["seconds"] for h in resumed["history"][:done]] == [h["seconds"] for h in state["history"]]
