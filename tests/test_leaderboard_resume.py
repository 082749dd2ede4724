"""benchmarks/leaderboard.py is resumable and incremental: every (model, task, head, lr, seed) run is one cell
file, written when the run ends; a rerun of the same command trains nothing already there, loads no backbone
and rewrites the same report; a partial board renders with its missing cells marked, and a rerun fills them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import glot.training.loop
from glot.backbones.frozen import FrozenBackbone
from glot.training.metrics import format_mean_std
from tiny_models import make_tiny_bert

BENCH = Path(__file__).parents[1] / "benchmarks"


@pytest.fixture
def board(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.syspath_prepend(str(BENCH))
    import leaderboard

    tiny = make_tiny_bert(tmp_path / "bert")
    leaderboard.ARGV = ["--models", str(tiny), "--tasks", "negation-0.05", "--poolers", "mean,adapool",
                        "--lrs", "1e-3,1e-1", "--n-train", "24", "--n-eval", "8", "--epochs", "1",
                        "--runs", str(tmp_path / "runs"), "--cache-dir", str(tmp_path / "cache"),
                        "--json", str(tmp_path / "board.json")]  # fmt: skip
    return leaderboard


def _count_fits(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    calls: list[Path] = []
    real = glot.training.loop.fit

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(Path(args[2]))
        return real(*args, **kwargs)

    monkeypatch.setattr(glot.training.loop, "fit", counted)
    return calls


def _cell(tmp_path: Path, pooler: str, lr: float, seed: int) -> Path:
    model = next(p for p in (tmp_path / "board-cells").iterdir() if p.is_dir())
    return model / "negation-0.05" / pooler / f"lr-{lr:g}" / f"seed-{seed}.json"


def test_a_rerun_trains_nothing_loads_no_backbone_and_writes_the_same_report(
    board: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    argv = [*board.ARGV, "--seeds", "0,1"]
    calls = _count_fits(monkeypatch)
    assert board.main(argv) == 0
    assert len(calls) == 6  # 2 heads x (2 lrs on seed 0 + seed 1 at the chosen lr)
    assert len(list((tmp_path / "board-cells").rglob("seed-*.json"))) == 6
    md, data = (tmp_path / "board.md").read_text(), json.loads((tmp_path / "board.json").read_text())
    assert data["cells"] == {"finished": 6, "planned": 6} and "Partial board" not in md
    for e in data["entries"]:  # the report's numbers are the cells' numbers, the lr chosen on seed 0's val
        grid = {lr: json.loads(_cell(tmp_path, e["pooler"], lr, 0).read_text()) for lr in (1e-3, 1e-1)}
        assert e["lr"] == max(grid, key=lambda lr: (grid[lr]["val"], -lr))
        cells = [json.loads(_cell(tmp_path, e["pooler"], e["lr"], s).read_text()) for s in (0, 1)]
        assert e["accuracy"] == [c["eval"] for c in cells] and e["seeds"] == [0, 1]
        assert f"| {e['pooler']} | {format_mean_std(e['accuracy'], digits=1, scale=100)} <sub>" in md

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the rerun of a finished board trained or loaded a backbone")

    monkeypatch.setattr(glot.training.loop, "fit", refuse)
    monkeypatch.setattr(FrozenBackbone, "from_pretrained", refuse)
    assert board.main(argv) == 0
    assert (tmp_path / "board.md").read_text() == md
    assert json.loads((tmp_path / "board.json").read_text()) == data
    with pytest.raises(SystemExit, match=r"made with n_train=24; this run asks n_train=32"):
        board.main([*argv, "--n-train", "32"])  # another setting into the same board is refused


def test_a_partial_board_marks_the_missing_cells_and_a_rerun_fills_them(
    board: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    argv = [*board.ARGV, "--seeds", "0,1,2"]
    assert board.main(argv) == 0
    full = (tmp_path / "board.md").read_text()
    ada = next(
        e for e in json.loads((tmp_path / "board.json").read_text())["entries"] if e["pooler"] == "adapool"
    )
    _cell(tmp_path, "mean", 1e-1, 0).unlink()  # mean: half its lr grid, so no lr chosen yet
    _cell(tmp_path, "adapool", ada["lr"], 2).unlink()  # adapool: 2 of its 3 seeds
    assert board.main([*argv, "--markdown"]) == 0
    md = (tmp_path / "board.md").read_text()
    assert "**Partial board: 6 of 8 runs finished.**" in md
    assert "| mean | – <sub>lr 1/2</sub> |" in md
    two = format_mean_std(ada["accuracy"][:2], digits=1, scale=100)
    assert f"| adapool | {two} <sub>{ada['lr']:g}, 2/3 seeds</sub> |" in md
    calls = _count_fits(monkeypatch)
    assert board.main(argv) == 0
    assert sorted((c.parts[-4], *c.parts[-2:]) for c in calls) == sorted(
        [("mean", "lr-0.1", "seed-0"), ("adapool", f"lr-{ada['lr']:g}", "seed-2")]
    )  # only the two missing cells (their finished run folders give back the same numbers)
    assert (tmp_path / "board.md").read_text() == full


def test_lr_choice_and_verdicts_state_what_ran(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(BENCH))
    import leaderboard_cells as lc

    assert (
        lc.choose_lr({1e-3: 0.8, 1e-2: 0.8, 1e-1: None}) == 1e-3
    )  # ties: the smaller lr; diverged never wins
    assert lc.choose_lr({1e-3: None}) is None
    empty = {"lr": None, "seeds": [], "diverged_seeds": []}  # no lr chosen yet
    assert lc.cell_text(empty | {"lrs_run": 2}, 2, 3) == "div"
    assert lc.cell_text(empty | {"lrs_run": 0}, 2, 3) == "–"
    entries = [
        {"task": "t", "pooler": "glot", "accuracy": [0.9, 0.8]},
        {"task": "t", "pooler": "adapool", "accuracy": [0.7, 0.6, 0.65]},
        {"task": "t", "pooler": "mean", "accuracy": []},
    ]
    [line] = lc.verdicts(entries, ["t"], n_seeds=3)
    glot_s = format_mean_std([0.9, 0.8], digits=1, scale=100)
    ada_s = format_mean_std([0.7, 0.6, 0.65], digits=1, scale=100)
    assert line == (
        f"- t: glot {glot_s} (2/3 seeds) vs best other head adapool {ada_s}: +20.0 points, too few seeds; "
        "1 of the 2 other heads run so far"
    )


def test_divergence_is_a_stored_result_and_a_broken_head_does_not_stop_the_board(
    board: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from glot.training.loop import NonFiniteError

    real = glot.training.loop.fit

    def flaky(cached: Any, config: Any, run_dir: Any, **kw: Any) -> Any:
        if config.pooler == "mean":
            raise RuntimeError("a bug in this head")
        if config.lr == 1e-1:
            raise NonFiniteError("training loss is nan at epoch 1")
        return real(cached, config, run_dir, **kw)

    monkeypatch.setattr(glot.training.loop, "fit", flaky)
    argv = [*board.ARGV, "--seeds", "0,1"]
    assert board.main(argv) == 1  # mean failed: reported, its cells missing, adapool still ran
    assert "FAILED" in capsys.readouterr().err
    ada = next(
        e for e in json.loads((tmp_path / "board.json").read_text())["entries"] if e["pooler"] == "adapool"
    )
    assert (
        ada["lr"] == 1e-3 and ada["seeds"] == [0, 1] and ada["val_by_lr"]["0.1"] is None
    )  # diverged: never wins
    assert json.loads(_cell(tmp_path, "adapool", 1e-1, 0).read_text())["diverged"] is True
    assert "| mean | – |" in (tmp_path / "board.md").read_text()
    monkeypatch.setattr(glot.training.loop, "fit", real)
    calls = _count_fits(monkeypatch)  # the real fit again: only mean's cells are missing
    assert board.main(argv) == 0
    assert {c.parts[-4] for c in calls} == {"mean"} and len(calls) == 3


def test_parallel_runs_into_one_board_merge_their_grids(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(BENCH))
    import leaderboard_cells as lc

    settings = {"n_train": 8, "n_eval": 4, "data_seed": 0, "epochs": 1, "patience": 1, "batch_size": 32,
                "lrs": [1e-3], "selection_seed": 0}  # fmt: skip
    none: Any = lambda task, head: {}  # noqa: E731
    lc.Board.open(
        tmp_path, settings, {"models": ["a"], "tasks": ["roles"], "poolers": ["glot"], "seeds": [0, 1]}, none
    )
    b = lc.Board.open(
        tmp_path, settings, {"models": ["b"], "tasks": ["roles"], "poolers": ["mean"], "seeds": [0]}, none
    )
    assert b.meta["grid"] == {
        "models": ["a", "b"],
        "tasks": ["roles"],
        "poolers": ["glot", "mean"],
        "seeds": [0, 1],
    }
    data = lc.aggregate(lc.Board(tmp_path, none))
    assert data["cells"] == {"finished": 0, "planned": 8}  # 2 models x 2 heads x (1 lr + 1 other seed)
    assert "| glot | – |" in lc.markdown(data)


def test_a_changed_head_default_makes_its_cells_stale_and_only_they_retrain(
    board: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    argv = [*board.ARGV, "--seeds", "0,1"]
    assert board.main(argv) == 0
    before = json.loads((tmp_path / "board.json").read_text())
    real = board.head_settings

    def changed(task: str, pooler: str) -> dict[str, Any]:  # as if adapool's readout default had changed
        return {**real(task, pooler), "readout_hidden": 64} if pooler == "adapool" else real(task, pooler)

    monkeypatch.setattr(board, "head_settings", changed)
    board.write_report(tmp_path / "board-cells", tmp_path / "board.json")  # the report leaves stale cells out
    stale = json.loads((tmp_path / "board.json").read_text())
    assert stale["cells"] == {"finished": 3, "planned": 6}
    assert "| adapool | – |" in (tmp_path / "board.md").read_text()
    calls = _count_fits(monkeypatch)
    assert board.main(argv) == 0
    assert len(calls) == 3 and all("adapool" in p.parts for p in calls)  # mean's cells still count
    assert len({p.parent.parent.name for p in calls}) == 1  # a fresh run folder, named by the new settings
    cell = json.loads(_cell(tmp_path, "adapool", 1e-3, 0).read_text())
    assert cell["head_settings"]["readout_hidden"] == 64
    after = json.loads((tmp_path / "board.json").read_text())
    assert after["cells"] == before["cells"] == {"finished": 6, "planned": 6}


def test_a_board_made_before_the_selection_slack_refuses_new_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """0.3's boards picked epochs by exact ties and their board.json has no select_slack: a run now (slack 1)
    must not add cells read under another rule, and says which setting differs."""
    monkeypatch.syspath_prepend(str(BENCH))
    import leaderboard_cells as lc

    old = {"n_train": 8, "n_eval": 4, "data_seed": 0, "epochs": 1, "patience": 1, "batch_size": 32,
           "lrs": [1e-3], "selection_seed": 0}  # fmt: skip
    grid = {"models": ["a"], "tasks": ["roles"], "poolers": ["mean"], "seeds": [0]}
    none: Any = lambda task, head: {}  # noqa: E731
    lc.Board.open(tmp_path, old, grid, none)
    with pytest.raises(SystemExit, match="select_slack=None; this run asks select_slack=1"):
        lc.Board.open(tmp_path, old | {"select_slack": 1}, grid, none)
