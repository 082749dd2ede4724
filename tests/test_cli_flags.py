"""The CLI's pooler and training flags are generated from the config dataclasses: every pooler option has a
flag and every flag is an option, defaults live in the dataclasses only, and ``--weighted`` / ``--self-loops``
reach the trained pooler (tiny random BERT, offline, seconds)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import MISSING, fields
from pathlib import Path

import pytest
import torch

import glot
from glot.cli import main
from glot.cli.config_flags import TRAIN_FIELDS_ELSEWHERE, add_optim_arguments, add_pooler_arguments
from glot.pooling.config import OPTION_SECTION
from glot.pooling.packing import pack
from glot.training.config import DEFAULT_EPOCHS, DEFAULT_LR, DEFAULT_PATIENCE, TrainConfig

sys.path.insert(0, str(Path(__file__).parent))
from tiny_models import make_tiny_bert  # noqa: E402


def _parser(command: str) -> argparse.ArgumentParser:
    from glot.cli import _command_parser

    return _command_parser(command)[0]


def _flags(parser: argparse.ArgumentParser, group: str) -> dict[str, argparse.Action]:
    """dest -> action of the flags in one argument group."""
    (found,) = [g for g in parser._action_groups if g.title == group]
    return {a.dest: a for a in found._group_actions}


@pytest.mark.parametrize("command", ["train", "compare"])
def test_every_option_a_pooler_takes_has_a_flag_and_every_flag_is_an_option(command: str) -> None:
    taken = {option for cls in glot.POOLERS.values() for option in cls.options}
    flags = _flags(_parser(command), "pooler options")
    assert set(flags) == taken == set(OPTION_SECTION)
    assert {"weighted", "self_loops", "knn"} <= set(flags)  # the ones the hand-written table had lost
    for option in flags:
        assert "--" + option.replace("_", "-") in flags[option].option_strings


def test_boolean_options_are_on_off_flags() -> None:
    flags = _flags(_parser("train"), "pooler options")
    assert flags["weighted"].option_strings == ["--weighted", "--no-weighted"]
    assert flags["self_loops"].option_strings == ["--self-loops", "--no-self-loops"]
    parser = _parser("train")
    args = parser.parse_args(["--task", "stress", "--weighted", "--no-self-loops"])
    assert (args.weighted, args.self_loops) == (True, False)
    assert args.tau == "auto"  # not given: glot train's default (dropped for poolers without a graph)


def test_choices_come_from_the_config() -> None:
    flags = _flags(_parser("train"), "pooler options")
    assert tuple(flags["conv"].choices) == ("gat", "gatv2", "gcn", "gin", "gine", "mlp")
    assert tuple(flags["jk"].choices) == ("cat", "max", "mean", "none")
    assert tuple(_flags(_parser("train"), "training")["optimizer"].choices) == ("adam", "adamw")


def test_training_flags_are_trainconfigs_fields_with_its_defaults() -> None:
    flags = _flags(_parser("train"), "training")
    for spec in fields(TrainConfig):
        if spec.name in TRAIN_FIELDS_ELSEWHERE:
            assert spec.name not in flags
            continue
        assert spec.default is not MISSING and flags[spec.name].default == spec.default, spec.name
    assert set(flags) | set(TRAIN_FIELDS_ELSEWHERE) == {f.name for f in fields(TrainConfig)}
    assert (flags["lr"].default, flags["epochs"].default, flags["batch_size"].default) == (
        DEFAULT_LR,
        DEFAULT_EPOCHS,
        32,
    )
    assert flags["patience"].default == DEFAULT_PATIENCE


def test_compare_overrides_only_what_it_says() -> None:
    from glot.cli import compare

    parser = _parser("compare")
    training, pooler = _flags(parser, "training"), _flags(parser, "pooler options")
    lr, epochs = training["lr"].default, training["epochs"].default
    assert (
        (lr, epochs) == (TrainConfig.lr, TrainConfig.epochs) == (DEFAULT_LR, DEFAULT_EPOCHS)
    )  # no overrides
    assert training["batch_size"].default == TrainConfig.batch_size == 32
    assert {k: pooler[k].default for k in compare.STRESS_POOLER_DEFAULTS} == compare.STRESS_POOLER_DEFAULTS
    assert pooler["knn"].default is None and pooler["weighted"].default is None


def test_a_misspelt_override_is_a_bug_not_a_silent_default() -> None:
    with pytest.raises(AssertionError, match="no TrainConfig field"):
        add_optim_arguments(argparse.ArgumentParser(), learning_rate=1.0)
    with pytest.raises(AssertionError, match="no pooler option"):
        add_pooler_arguments(argparse.ArgumentParser(), {"threshold": 0.5})


def test_help_shows_the_dataclass_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "default auto here" in text and "--weighted, --no-weighted" in text  # glot train: tau=auto
    assert "learning rate" in text and f"default {DEFAULT_LR:g}" in text
    assert f"max epochs (early stopping: --patience); default {DEFAULT_EPOCHS}" in text
    with pytest.raises(SystemExit):
        main(["compare", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "default auto here" in text and f"default {DEFAULT_LR:g}" in text  # compare: TrainConfig's lr


# ---------------------------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_bert(tmp_path_factory.mktemp("models") / "bert")


def _train(tiny: Path, cache: Path, out: Path, *flags: str) -> int:
    return main([
        "train", "--model", str(tiny), "--task", "stress", "--task-option", "seq_len=16", "--n-train", "40",
        "--n-eval", "16", "--max-length", "40", "--cache-dir", str(cache), "--no-progress", "--pooler", "glot",
        "--hidden-dim", "8", "--tau", "0.0", "--epochs", "1", "--out", str(out), *flags,
    ])  # fmt: skip


def _self_edges(pooler: glot.Pooler) -> tuple[int, int]:
    """(self edges, tokens) of the pooler's token graph on seeded random states."""
    g = torch.Generator().manual_seed(0)
    x, ptr = pack(torch.randn(3, 7, pooler.input_dim, generator=g), torch.ones(3, 7, dtype=torch.bool))
    edges = pooler.build_graph(x, ptr).edge_index
    return int((edges[0] == edges[1]).sum()), x.shape[0]


def test_weighted_and_self_loops_reach_the_trained_pooler(
    tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = tmp_path / "cache"
    assert _train(tiny, cache, tmp_path / "plain") == 0
    assert _train(tiny, cache, tmp_path / "flags", "--weighted", "--no-self-loops") == 0
    saved = json.loads((tmp_path / "flags" / "seed-0" / "pooler" / "pooler_config.json").read_text())
    assert (saved["pooler"]["graph"]["weighted"], saved["pooler"]["graph"]["self_loops"]) == (True, False)
    assert saved["pooler"]["graph"]["tau"] == 0.0 and saved["pooler"]["gnn"]["hidden_dim"] == 8
    run = json.loads((tmp_path / "flags" / "seed-0" / "run_config.json").read_text())
    graph = {"tau": 0.0, "knn": None, "weighted": True, "self_loops": False, "edge_density": 0.05, "rank": 32}
    assert run["train"]["pooler_options"]["graph"] == graph

    plain, flagged = (glot.load_pooler(tmp_path / p / "seed-0" / "pooler") for p in ("plain", "flags"))
    assert _self_edges(plain) == (21, 21)  # every token keeps its edge to itself (cos = 1 > 0)
    assert _self_edges(flagged) == (0, 21)
    # weighted GAT layers get an edge-attribute projection: more parameters, recorded in the metrics
    metrics = {
        p: json.loads((tmp_path / p / "seed-0" / "metrics.json").read_text()) for p in ("plain", "flags")
    }
    assert metrics["flags"]["params"]["pooler"] == flagged.num_parameters() > plain.num_parameters()
    edge_weights = [[k for k in p.state_dict() if "lin_edge" in k] for p in (plain, flagged)]
    assert edge_weights[0] == [] and len(edge_weights[1]) == 2  # one per GAT layer (K = 2)
    assert metrics["flags"]["run_key"] != metrics["plain"]["run_key"]


def test_train_refuses_an_option_its_pooler_does_not_take(
    tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["train", "--model", str(tiny), "--task", "stress", "--pooler", "mean", "--weighted",
                 "--out", str(tmp_path / "run"), "--no-progress"])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "pooler 'mean' does not take option(s) ['weighted']; its options are: mix_layers" in err[0]
    assert not (tmp_path / "run").exists()


def test_equal_flags_give_one_run_key(tiny: Path, tmp_path: Path) -> None:
    """--self-loops and --no-weighted are glot's defaults: the same run as without them, one run key."""
    cache, out = tmp_path / "cache", tmp_path / "run"
    assert _train(tiny, cache, out, "--json", str(tmp_path / "a.json")) == 0
    args = ["train", "--model", str(tiny), "--task", "stress", "--task-option", "seq_len=16", "--n-train", "40",
            "--n-eval", "16", "--max-length", "40", "--cache-dir", str(cache), "--no-progress", "--pooler", "glot",
            "--hidden-dim", "8", "--epochs", "1", "--out", str(out)]  # fmt: skip
    same = ["--tau", "0.0", "--self-loops", "--no-weighted", "--json", str(tmp_path / "b.json")]
    assert main([*args, *same]) == 0
    a, b = (json.loads((tmp_path / f"{n}.json").read_text()) for n in "ab")
    assert a["per_seed"][0]["run_key"] == b["per_seed"][0]["run_key"]
    assert main([*args, "--tau", "0.1"]) == 2  # another tau: another run, which this folder does not hold
