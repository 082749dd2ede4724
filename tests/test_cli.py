"""The ``glot`` CLI: help texts, one-line errors, and end-to-end train / eval / encode / cache / compare on a
tiny random BERT (offline, seconds)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from glot.cli import COMMANDS, main

sys.path.insert(0, str(Path(__file__).parent))
from tiny_models import make_tiny_bert  # noqa: E402

PRESENT = [
    name for name, module in COMMANDS.items() if importlib.util.find_spec(f"glot.cli.{module}") is not None
]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_bert(tmp_path_factory.mktemp("models") / "bert")


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


def _stress_args(tiny: Path, cache_dir: Path) -> list[str]:
    return [
        "--model", str(tiny), "--task", "stress", "--task-option", "seq_len=16", "--n-train", "60",
        "--n-eval", "24", "--max-length", "40", "--cache-dir", str(cache_dir), "--no-progress",
    ]  # fmt: skip


def test_top_level_help_runs_as_a_program() -> None:
    script = Path(sys.executable).with_name("glot")  # the console script installed with the package
    out = subprocess.run([str(script), "--help"], capture_output=True, text=True, check=True)
    assert "compare" in out.stdout and "train" in out.stdout


@pytest.mark.parametrize("command", PRESENT)
def test_every_subcommand_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert f"glot {command}" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["train", "--task", "stress", "--pooler", "nope"], "unknown pooler 'nope'"),
        (["train", "--task", "no-such-task"], "unknown task 'no-such-task'"),
        (["train", "--task", "stress", "--seeds", "0,a"], "--seeds takes"),
        (["train", "--task", "stress", "--seeds", "1,1"], "--seeds takes"),
        (["train", "--task", "stress", "--epochs", "many"], "invalid int value"),
        (["train", "--task", "stress", "--val-fraction", "2"], "val_fraction"),
        (["train", "--task", "stress", "--n-train", "20", "--model", "no-such-model"], "unknown model"),
        (["compare", "--ratios", "0.5,1.5"], "--ratios takes"),
        (["compare", "--poolers", "mean,bogus"], "unknown pooler 'bogus'"),
        (["eval", "/no/such/run", "--task", "stress"], "does not exist"),
        (["encode", "--run", "/no/such/run", "-o", "x.npy"], "does not exist"),
        (["encode", "-o", "x.txt", "--model", "minilm", "--pooler", "mean"], "must end in .npy"),
        (["frobnicate"], "unknown command"),
    ],
)
def test_bad_arguments_give_one_line_and_exit_2(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse-level errors
        code = int(exc.code or 0)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    messages = [line for line in err if line.startswith("glot: error:")]
    assert len(messages) == 1 and expected in messages[0], err
    assert not any("Traceback" in line for line in err)


def test_models_lists_the_zoo(tmp_path: Path) -> None:
    assert main(["models", "--json", str(tmp_path / "m.json")]) == 0
    aliases = {m["alias"] for m in json.loads((tmp_path / "m.json").read_text())}
    assert {"minilm", "smollm2-135m"} <= aliases


def test_cache_train_eval_encode_end_to_end(tiny: Path, cache_dir: Path, tmp_path: Path) -> None:
    args = _stress_args(tiny, cache_dir)
    assert main(["cache", *args, "--json", str(tmp_path / "cache.json")]) == 0
    info = json.loads((tmp_path / "cache.json").read_text())
    assert info["splits"] == {"train": 60, "eval": 24} and info["dim"] == 32
    out = tmp_path / "run"
    train_argv = ["train", *args, "--pooler", "glot", "--tau", "0.5", "--hidden-dim", "8", "--epochs", "2",
                  "--seeds", "0,1", "--out", str(out), "--json", str(tmp_path / "train.json")]  # fmt: skip
    assert main(train_argv) == 0
    result = json.loads((tmp_path / "train.json").read_text())
    assert [m["seed"] for m in result["per_seed"]] == [0, 1]
    assert result["summary"]["eval"]["n"] == 2 and result["summary"]["eval"]["std"] is not None
    assert result["summary"]["eval"]["mean"] == pytest.approx(
        np.mean([m["eval"] for m in result["per_seed"]])
    )
    run_config = json.loads((out / "seed-0" / "run_config.json").read_text())
    assert (
        run_config["train"]["pooler"] == "glot"
        and run_config["train"]["pooler_options"]["graph"]["tau"] == 0.5
    )
    assert (
        run_config["train"]["pooler_options"]["gnn"]["hidden_dim"] == 8
    )  # the full settings, not only those given
    assert run_config["train"]["pooler_options"]["gnn"]["num_layers"] == 2
    assert main(train_argv) == 0  # rerun: finished seeds are reused, same numbers
    assert json.loads((tmp_path / "train.json").read_text())["summary"] == result["summary"]

    eval_argv = ["eval", str(out), *args[2:], "--json", str(tmp_path / "eval.json")]
    assert main(eval_argv) == 0
    scores = [r["value"] for r in json.loads((tmp_path / "eval.json").read_text())["per_seed"]]
    assert scores == pytest.approx([m["eval"] for m in result["per_seed"]])

    texts = tmp_path / "texts.txt"
    texts.write_text("the delivery contains keys\nin the box are not files\n\n")
    emb_path = tmp_path / "emb.npy"
    assert (
        main(["encode", str(texts), "--run", str(out), "--seed", "1", "-o", str(emb_path), "--no-progress"])
        == 0
    )
    emb = np.load(emb_path)
    assert emb.shape == (2, 32 + 2 * 8) and np.isfinite(emb).all()


def test_compare_writes_table_json_and_plot(
    tiny: Path, cache_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "compare"
    argv = ["compare", "--model", str(tiny), "--ratios", "0.2,0.5", "--poolers", "auto,glot", "--epochs", "1",
            "--n-train", "40", "--n-eval", "20", "--max-length", "40", "--hidden-dim", "8", "--num-layers", "2",
            "--cache-dir", str(cache_dir), "--out", str(out), "--json", str(tmp_path / "c.json"), "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "cls" in printed and "glot" in printed  # auto -> cls for an encoder
    # one seed: no ± and no claim that either pooler is better
    assert "±" not in printed and "too few to claim a difference" in " ".join(printed.split())
    assert "beats" not in printed and "±" not in (out / "results.md").read_text()
    summary = json.loads((tmp_path / "c.json").read_text())
    assert summary["poolers"] == ["cls", "glot"] and summary["ratios"] == [0.2, 0.5]
    for pooler in ("cls", "glot"):
        for ratio in ("0.2", "0.5"):
            acc = summary["results"][pooler]["ratios"][ratio]["accuracy"]
            assert len(acc) == 1 and 0.0 <= acc[0] <= 1.0
    assert (out / "results.json").is_file() and "| cls |" in (out / "results.md").read_text()
    assert (out / "accuracy_vs_ratio.png").stat().st_size > 0
    assert (out / "ratio-0.5" / "glot" / "seed-0" / "metrics.json").is_file()


def test_compare_verdict_needs_three_seeds() -> None:
    from glot.cli.compare import _verdict

    def summary(glot: list[float], mean: list[float]) -> dict:
        rows = {p: {"ratios": {"0.9": {"accuracy": v}}} for p, v in (("glot", glot), ("mean", mean))}
        return {"ratios": [0.9], "results": rows}

    one = _verdict(summary([0.91], [0.90]))
    assert "+1.0 points from 1 seed: too few to claim a difference" in one and "better" not in one
    three = _verdict(summary([0.95, 0.96, 0.97], [0.90, 0.91, 0.92]))
    assert "+5.0 points over 3 seeds: GLOT is better" in three
    noisy = _verdict(summary([0.80, 0.99, 0.90], [0.88, 0.90, 0.89]))
    assert "no clear difference" in noisy


def test_train_flags_for_the_lr_plateau_and_the_selection_slack_reach_the_run(
    tiny: Path, cache_dir: Path, tmp_path: Path
) -> None:
    """--lr-plateau / --lr-factor / --select-slack from the CLI: in the run key, each epoch trained at the lr
    the plateau rule gives for the scores before it, the epoch kept by exact ties, and glot eval reproduces it."""
    from glot.training.selection import lr_scale

    args, out = _stress_args(tiny, cache_dir), tmp_path / "run"
    train_argv = ["train", *args, "--pooler", "adapool", "--lr", "1e-2", "--epochs", "9", "--patience", "9",
                  "--lr-plateau", "1", "--lr-factor", "0.5", "--select-slack", "0", "--out", str(out)]  # fmt: skip
    assert main(train_argv) == 0
    train = json.loads((out / "seed-0" / "run_config.json").read_text())["train"]
    assert (train["lr_plateau"], train["lr_factor"], train["select_slack"]) == (1, 0.5, 0)
    m = json.loads((out / "seed-0" / "metrics.json").read_text())
    vals, lrs = [h["val"] for h in m["history"]], [h["lr"] for h in m["history"]]
    assert len(vals) == 9 and m["sizes"]["val"] == 6
    assert lrs == pytest.approx([1e-2 * lr_scale(vals[:e], 1, 0.5) for e in range(9)])
    # 6 validation texts cannot improve strictly 7 epochs in a row: some epoch trained at a cut lr
    assert min(lrs) < 1e-2
    assert m["best_val_epoch"] == max(e for e, v in enumerate(vals, 1) if v == max(vals))  # exact ties
    assert main(["eval", str(out), *args[2:], "--json", str(tmp_path / "eval.json")]) == 0
    assert json.loads((tmp_path / "eval.json").read_text())["per_seed"][0]["value"] == pytest.approx(
        m["eval"]
    )


ENTRY = """
import atexit, sys
atexit.register(lambda: sys.stdout.write("atexit ran\\n"))
sys.argv = ["glot", *sys.argv[1:]]
from glot.__main__ import entry
entry()
"""


@pytest.mark.parametrize(("argv", "code"), [(["models"], 0), (["nosuch"], 2)])
def test_a_launched_rank_ends_with_its_code_its_atexit_handlers_and_all_its_output(
    argv: list[str], code: int
) -> None:
    """The entry point ends a torchrun / accelerate rank with os._exit (glot.distributed.exit_rank): its exit
    code, atexit handlers and block-buffered stdout (a pipe, PYTHONUNBUFFERED unset) must survive that, the
    same as a plain run's."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONUNBUFFERED", "WORLD_SIZE", "RANK")}
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(__file__).resolve().parents[1] / "src"), env.get("PYTHONPATH", "")]
    )
    runs = {}
    for launched in (False, True):
        extra = {"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1"} if launched else {}
        runs[launched] = subprocess.run(
            [sys.executable, "-c", ENTRY, *argv], env=env | extra, capture_output=True, text=True, timeout=120
        )
    for proc in runs.values():
        assert proc.returncode == code, proc.stderr[-2000:]
        assert proc.stdout.endswith("atexit ran\n"), proc.stdout[-500:]
    assert runs[True].stdout == runs[False].stdout and runs[True].stderr == runs[False].stderr
    assert ("minilm" in runs[True].stdout) if code == 0 else ("unknown command 'nosuch'" in runs[True].stderr)
