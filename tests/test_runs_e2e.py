"""Run folders end to end, the way a user drives them: `glot train` then `glot eval` on a CSV (exact
reproduction, refusal after the data changed), the run key through the CLI, non-finite settings, and a real
SIGKILL of a `glot train` process mid-training followed by a resume to identical numbers."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import glot
from glot.cli import main

sys.path.insert(0, str(Path(__file__).parent))
from tiny_models import make_tiny_bert  # noqa: E402

GOOD = ["good", "great", "love"]
BAD = ["bad", "hate", "never"]
FILLER = ["the", "movie", "film", "dog", "cat", "sat", "on", "mat", "very", "really", "river", "bank"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_bert(tmp_path_factory.mktemp("models") / "bert")


def _write_csv(path: Path, n_train: int = 80, n_eval: int = 40, flip_eval: bool = False) -> None:
    """Sentences of filler words with one sentiment word; label 1 = a GOOD word. Seeded."""
    rng = np.random.default_rng(0)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label", "split"])
        for i in range(n_train + n_eval):
            label = int(rng.integers(0, 2))
            words = list(rng.choice(FILLER, size=int(rng.integers(3, 8))))
            words.insert(int(rng.integers(0, len(words) + 1)), str(rng.choice(GOOD if label else BAD)))
            split = "train" if i < n_train else "eval"
            writer.writerow([" ".join(words), 1 - label if flip_eval and split == "eval" else label, split])


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    messages = [line for line in err if line.startswith("glot: error:")]
    assert len(messages) == 1 and not any("Traceback" in line for line in err), err
    return messages[0]


def test_eval_reproduces_the_run_exactly_and_refuses_changed_data(
    tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, out, cache = tmp_path / "reviews.csv", tmp_path / "run", tmp_path / "cache"
    _write_csv(data)
    train_argv = [
        "train", "--model", str(tiny), "--task", str(data), "--pooler", "glot", "--tau", "0.5",
        "--hidden-dim", "8", "--epochs", "3", "--lr", "1e-2", "--cache-dir", str(cache), "--out", str(out),
        "--no-progress",
    ]  # fmt: skip
    assert main(train_argv) == 0
    printed = capsys.readouterr().out
    assert "±" not in printed  # one seed: no spread is shown
    metrics = json.loads((out / "seed-0" / "metrics.json").read_text())
    assert metrics["sizes"]["eval"] == 40

    # no --task: the run's own task is rebuilt; the same states give the very same float
    assert main(["eval", str(out), "--json", str(tmp_path / "e.json"), "--no-progress"]) == 0
    result = json.loads((tmp_path / "e.json").read_text())
    assert result["per_seed"][0]["value"] == metrics["eval"]
    assert result["per_seed"][0]["states_from_run_cache"] and result["std"] is None
    # the same task spelled out on the command line is the same task
    assert main(["eval", str(out), "--task", str(data), "--json", str(tmp_path / "e2.json")]) == 0
    assert json.loads((tmp_path / "e2.json").read_text())["per_seed"][0]["value"] == metrics["eval"]
    capsys.readouterr()

    # other task options would give other rows: refused, one line
    assert main(["eval", str(out), "--task", str(data), "--task-option", "seed=3"]) == 2
    assert "was trained on" in _one_error_line(capsys)

    # only the EVAL labels change in the CSV: eval refuses, and train does not hand back the old result
    _write_csv(data, flip_eval=True)
    assert main(["eval", str(out), "--no-progress"]) == 2
    assert "changed since" in _one_error_line(capsys)
    assert main(train_argv) == 2
    assert "task.data.sha256" in _one_error_line(capsys)
    assert main([*train_argv, "--overwrite", "--json", str(tmp_path / "t.json")]) == 0
    flipped = json.loads((tmp_path / "t.json").read_text())["per_seed"][0]
    assert flipped["eval"] == pytest.approx(1 - metrics["eval"])  # same model, labels flipped


def test_eval_without_the_run_cache_embeds_only_the_scored_split(
    tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, out, cache = tmp_path / "reviews.csv", tmp_path / "run", tmp_path / "cache"
    _write_csv(data, n_train=120, n_eval=30)
    assert main(["train", "--model", str(tiny), "--task", str(data), "--pooler", "mean", "--epochs", "2",
                 "--lr", "1e-2", "--cache-dir", str(cache), "--out", str(out), "--no-progress"]) == 0  # fmt: skip
    metrics = json.loads((out / "seed-0" / "metrics.json").read_text())
    shutil.rmtree(cache)
    fresh = tmp_path / "fresh-cache"
    argv = ["eval", str(out), "--cache-dir", str(fresh), "--json", str(tmp_path / "e.json"), "--no-progress"]
    assert main(argv) == 0
    assert "cache entry is gone" in capsys.readouterr().out
    result = json.loads((tmp_path / "e.json").read_text())["per_seed"][0]
    manifests = list(fresh.glob("*/manifest.json"))
    assert len(manifests) == 1
    eval_texts = {row["text"] for row in csv.DictReader(data.open()) if row["split"] == "eval"}
    assert json.loads(manifests[0].read_text())["num_items"] == len(eval_texts)  # not the 150 of the task
    assert not result["states_from_run_cache"]
    # freshly embedded states may differ in the last bits from the run's: at most one prediction apart
    assert abs(result["value"] - metrics["eval"]) <= 1 / 30 + 1e-12


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--lr", "inf"], "lr must be a finite number"),
        (["--lr", "nan"], "lr must be a finite number"),
        (["--weight-decay", "inf"], "weight_decay must be a finite number"),
        (["--grad-clip", "nan"], "grad_clip must be None (off) or a finite number"),
        (["--lr", "1e38"], "lr must be a finite number in (0, 10]"),
    ],
)
def test_non_finite_settings_exit_with_one_line(
    flags: list[str], expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["train", "--task", "stress", "--n-train", "20", *flags, "--out", str(tmp_path / "r")]) == 2
    assert expected in _one_error_line(capsys)
    assert not (tmp_path / "r").exists()


def test_a_diverging_run_exits_with_one_line(
    tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "reviews.csv"
    _write_csv(data)
    # AdamW scales every weight by 1 - lr * wd = -999999 per step: float32 overflows within 7 steps
    argv = ["train", "--model", str(tiny), "--task", str(data), "--optimizer", "adamw", "--lr", "1",
            "--weight-decay", "1e6", "--batch-size", "8", "--cache-dir", str(tmp_path / "c"),
            "--out", str(tmp_path / "run"), "--no-progress"]  # fmt: skip
    assert main(argv) == 2
    line = _one_error_line(capsys)
    assert "non-finite" in line or "loss is" in line
    assert "epoch 1" in line and "learning rate" in line
    assert not (tmp_path / "run" / "seed-0" / "metrics.json").exists()


# ---------------------------------------------------------------------------------------------- kill -9
def _glot(argv: list[str]) -> subprocess.Popen[bytes]:
    """A real `glot` process running this checkout's code (PYTHONPATH = the glot package's src folder)."""
    env = dict(os.environ, PYTHONPATH=str(Path(glot.__file__).parents[1]), HF_HUB_OFFLINE="1")
    script = Path(sys.executable).with_name("glot")
    return subprocess.Popen([str(script), *argv], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _strip_times(metrics: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in metrics.items() if k != "train_seconds"}
    out["history"] = [{k: v for k, v in h.items() if k != "seconds"} for h in metrics["history"]]
    return out


def test_sigkill_mid_training_resumes_to_identical_metrics(tiny: Path, tmp_path: Path) -> None:
    epochs = 8
    cache = tmp_path / "cache"
    task = ["--model", str(tiny), "--task", "stress", "--task-option", "seq_len=16", "--n-train", "400",
            "--n-eval", "40", "--max-length", "40", "--cache-dir", str(cache), "--no-progress"]  # fmt: skip
    assert main(["cache", *task]) == 0  # the processes below only train
    train = ["train", *task, "--pooler", "glot", "--tau", "0.5", "--hidden-dim", "16", "--epochs", str(epochs),
             "--patience", str(epochs), "--batch-size", "8", "--lr", "1e-2"]  # fmt: skip

    whole = _glot([*train, "--out", str(tmp_path / "whole")])
    killed_dir = tmp_path / "killed"
    victim = _glot([*train, "--out", str(killed_dir)])
    state_path = killed_dir / "seed-0" / "checkpoint" / "state.json"
    deadline = time.monotonic() + 300
    while not state_path.is_file() and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert victim.poll() is None, victim.stderr.read().decode() if victim.stderr else ""
    victim.send_signal(signal.SIGKILL)
    assert victim.wait(timeout=60) == -signal.SIGKILL
    state = json.loads(state_path.read_text())
    # the kill happened mid-run: some epochs checkpointed, not all, no final metrics
    assert 1 <= state["epoch"] < epochs and not (killed_dir / "seed-0" / "metrics.json").exists()

    resumed = _glot([*train, "--out", str(killed_dir)])
    assert resumed.wait(timeout=600) == 0, resumed.stderr.read().decode() if resumed.stderr else ""
    assert whole.wait(timeout=600) == 0, whole.stderr.read().decode() if whole.stderr else ""
    a = json.loads((tmp_path / "whole" / "seed-0" / "metrics.json").read_text())
    b = json.loads((killed_dir / "seed-0" / "metrics.json").read_text())
    assert _strip_times(b) == _strip_times(a) and b["epochs_run"] == epochs
    # the resumed run kept the killed run's finished epochs (their timings) instead of retraining them
    done = state["epoch"]
    assert [h["seconds"] for h in b["history"][:done]] == [h["seconds"] for h in state["history"]]


def test_finetune_runs_share_the_run_key(tiny: Path, tmp_path: Path) -> None:
    from glot.data import Split, Task
    from glot.training.config import TrainConfig
    from glot.training.finetune import FinetuneOptions, run_finetune

    def task(flip: bool = False) -> Task:
        rng = np.random.default_rng(1)
        labels = rng.integers(0, 2, 24)
        texts = [f"the {('good' if y else 'bad')} film" for y in labels]
        splits = {
            "train": Split(texts[:16], labels[:16]),
            "eval": Split(texts[16:], (1 - labels[16:]) if flip else labels[16:]),
        }
        return Task("toy", "single", "accuracy", 2, splits, max_length=16)

    config, opts, run = TrainConfig(epochs=1, batch_size=8), FinetuneOptions(max_steps=2), tmp_path / "ft"
    first = run_finetune(task(), str(tiny), "full", None, config, run, options=opts, progress=False)
    assert run_finetune(task(), str(tiny), "full", None, config, run, options=opts, progress=False) == first
    with pytest.raises(ValueError, match=r"differs in: task\.data\.sha256"):  # only the eval labels changed
        run_finetune(task(flip=True), str(tiny), "full", None, config, run, options=opts, progress=False)
    (run / "run_config.json").unlink()
    with pytest.raises(ValueError, match="cannot resume"):  # results without their config: never adopted
        run_finetune(
            task(), str(tiny), "full", None, config.replace(lr=1e-3), run, options=opts, progress=False
        )


def test_train_reports_how_many_texts_were_cut(
    tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, out = tmp_path / "reviews.csv", tmp_path / "run"
    _write_csv(data)  # sentences of 4-8 words (+ [CLS]/[SEP]): a limit of 6 tokens cuts some, not all
    argv = [
        "train", "--model", str(tiny), "--task", str(data), "--pooler", "mean", "--epochs", "1",
        "--max-length", "6", "--cache-dir", str(tmp_path / "cache"), "--out", str(out), "--no-progress",
    ]  # fmt: skip
    assert main(argv) == 0
    metrics = json.loads((out / "seed-0" / "metrics.json").read_text())
    tokenizer = glot.FrozenBackbone.from_pretrained(str(tiny)).tokenizer
    with open(data, encoding="utf-8") as handle:
        texts = [row["text"] for row in csv.DictReader(handle)]
    expected = sum(len(tokenizer(t)["input_ids"]) > 6 for t in dict.fromkeys(texts))
    assert 0 < expected < len(set(texts))
    assert metrics["truncation"] == {"truncated": expected, "max_length": 6, "texts": len(set(texts))}
    assert f"{expected} of {len(set(texts))} texts were cut to 6 tokens" in capsys.readouterr().err
