"""Untrusted pooler configs: strict types and sane bounds, checked in one place for build and load alike."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

import glot
from glot.errors import InputError
from glot.pooling.config import MAX_DIM, MAX_HEADS, MAX_KNN, MAX_LAYERS, GNNConfig, PoolerConfig

BAD_OPTIONS = [  # (build_pooler option, value): each must be refused before anything is allocated
    ("weighted", "false"),
    ("weighted", 0),
    ("self_loops", "true"),
    ("num_layers", 10**6),
    ("num_layers", 2.0),
    ("num_layers", True),
    ("num_layers", "2"),
    ("hidden_dim", MAX_DIM + 1),
    ("hidden_dim", 0),
    ("heads", MAX_HEADS + 1),
    ("knn", MAX_KNN + 1),
    ("knn", 3.0),
    ("readout_hidden", 10**9),
    ("tau", math.nan),
    ("tau", math.inf),
    ("tau", "0.5"),
    ("tau", 1.5),
    ("conv", ["gat"]),
    ("jk", None),
]


@pytest.mark.parametrize(("key", "value"), BAD_OPTIONS)
def test_build_pooler_refuses_bad_types_and_sizes(key: str, value: object) -> None:
    with pytest.raises(InputError, match=rf"^{key}=.* is invalid: expected") as info:
        glot.build_pooler("glot", 12, **{key: value})
    assert "\n" not in str(info.value)


def save_with(tmp_path: Path, section: str | None, key: str, value: object) -> Path:
    """A saved glot pooler whose pooler_config.json was edited by hand (or by an attacker)."""
    folder = tmp_path / "pooler"
    glot.build_pooler("glot", 12, hidden_dim=8).save_pretrained(folder)
    meta = json.loads((folder / "pooler_config.json").read_text())
    (meta["pooler"][section] if section else meta["pooler"])[key] = value
    (folder / "pooler_config.json").write_text(json.dumps(meta))
    return folder


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("graph", "weighted", "false"),
        ("graph", "self_loops", "false"),
        ("gnn", "num_layers", 10**6),
        ("gnn", "hidden_dim", 10**9),
        ("gnn", "heads", 1.5),
        (None, "input_dim", 10**9),
        (None, "input_dim", "384"),
        ("readout", "readout_hidden", -3),
        ("graph", "tau", None),
    ],
)
def test_load_pooler_refuses_an_edited_config(
    tmp_path: Path, section: str | None, key: str, value: object
) -> None:
    folder = save_with(tmp_path, section, key, value)
    with pytest.raises(InputError, match=rf"pooler_config.json: {key}=.* is invalid: expected") as info:
        glot.load_pooler(folder)
    assert str(folder) in str(info.value)


def test_load_pooler_refuses_a_section_that_is_not_an_object(tmp_path: Path) -> None:
    folder = save_with(tmp_path, None, "gnn", "big")
    with pytest.raises(InputError, match="section 'gnn' must be a JSON object"):
        glot.load_pooler(folder)
    with pytest.raises(InputError, match="must be a JSON object"):
        PoolerConfig.from_dict(["glot", 12])


def test_the_bounds_themselves_are_accepted() -> None:
    """The limits are documented maxima, not off by one (checked on the config, nothing is allocated)."""
    cfg = PoolerConfig(name="glot", input_dim=MAX_DIM)
    cfg.gnn = GNNConfig(num_layers=MAX_LAYERS, hidden_dim=MAX_DIM, heads=MAX_HEADS)
    cfg.graph.knn, cfg.readout.readout_hidden, cfg.graph.tau = MAX_KNN, MAX_DIM, -1
    cfg.validate()
    assert PoolerConfig.from_dict(cfg.to_dict()) == cfg
    assert (MAX_LAYERS, MAX_DIM, MAX_HEADS, MAX_KNN) == (64, 65536, 64, 4096)


def test_weighted_gcn_with_negative_tau_is_refused_instead_of_nan() -> None:
    """GCN normalises by the summed edge weights; cosines below 0 can make that sum <= 0 (NaN outputs)."""
    with pytest.raises(InputError, match="tau=-0.5 is invalid.*GCN divides"):
        glot.build_pooler("glot", 12, conv="gcn", weighted=True, tau=-0.5)
    assert glot.build_pooler("glot", 12, conv="gcn", weighted=True, tau=0.0).config.graph.tau == 0.0
    assert glot.build_pooler("glot", 12, conv="gcn", tau=-0.5).config.graph.tau == -0.5  # unweighted: fine


def test_a_good_config_still_round_trips_unchanged(tmp_path: Path) -> None:
    pooler = glot.build_pooler("glot", 12, hidden_dim=8, knn=4, weighted=True, self_loops=False, tau=0.3)
    pooler.save_pretrained(tmp_path / "p")
    assert glot.load_pooler(tmp_path / "p").config == pooler.config


# ---------------------------------------------------------------------------------------------- what glot wrote before
#: pooler_config.json "pooler" sections exactly as the previous glot wrote them (build_pooler(name, 12))
OLD_POOLER_CONFIGS = {
    "mean": '{"name": "mean", "input_dim": 12, "graph": {"tau": 0.8, "knn": null, "weighted": false, "self_loops": '
    'true}, "gnn": {"conv": "gat", "num_layers": 0, "hidden_dim": 256, "heads": 1, "jk": "cat"}, "readout": '
    '{"readout_hidden": null}}',
    "adapool": '{"name": "adapool", "input_dim": 12, "graph": {"tau": 0.8, "knn": null, "weighted": false, '
    '"self_loops": true}, "gnn": {"conv": "gat", "num_layers": 0, "hidden_dim": 256, "heads": 1, "jk": "cat"}, '
    '"readout": {"readout_hidden": 128}}',
    "mlp": '{"name": "mlp", "input_dim": 12, "graph": {"tau": 0.8, "knn": null, "weighted": false, "self_loops": '
    'true}, "gnn": {"conv": "mlp", "num_layers": 2, "hidden_dim": 256, "heads": 1, "jk": "cat"}, "readout": '
    '{"readout_hidden": null}}',
}
#: the "train" section of a run_config.json of the previous glot (run format 2): only the options given
OLD_TRAIN = json.loads(
    '{"pooler": "glot", "pooler_options": {"tau": 0.5, "hidden_dim": 8}, "head_options": {}, "optimizer": "adam", '
    '"lr": 0.0002, "weight_decay": 0.0, "epochs": 3, "batch_size": 32, "eval_batch_size": 256, "seed": 0, '
    '"val_fraction": 0.1, "patience": null, "max_length": null, "grad_clip": null}'
)


@pytest.mark.parametrize("name", sorted(OLD_POOLER_CONFIGS))
def test_old_pooler_configs_load_and_equal_todays_defaults(tmp_path: Path, name: str) -> None:
    # before the input section a pooler normalised nothing: today's defaults with normalize="none"
    legacy = {"normalize": "none"} if "normalize" in glot.POOLERS[name].options else {}
    fresh = glot.build_pooler(name, 12, **legacy)
    fresh.save_pretrained(tmp_path)
    (tmp_path / "pooler_config.json").write_text(
        f'{{"glot_version": "0.1.0", "pooler": {OLD_POOLER_CONFIGS[name]}}}'
    )
    loaded = glot.load_pooler(tmp_path)
    assert loaded.config == fresh.config == PoolerConfig.from_dict(json.loads(OLD_POOLER_CONFIGS[name]))
    assert loaded.config.sections == glot.POOLERS[name].settings(**legacy)


def test_old_run_config_train_section_loads_as_the_full_typed_settings() -> None:
    from glot.pooling.config import PoolerSections
    from glot.training.config import TrainConfig

    config = TrainConfig.from_dict(OLD_TRAIN)
    assert isinstance(config.pooler_options, PoolerSections)
    assert (config.pooler_options.graph.tau, config.pooler_options.gnn.hidden_dim) == (0.5, 8)
    assert (
        config.pooler_options.gnn.num_layers == 2 and config.pooler_options.gnn.conv == "gat"
    )  # defaults filled in
    assert config == TrainConfig(
        pooler_options={"tau": 0.5, "hidden_dim": 8}, lr=2e-4, epochs=3, patience=None
    )
    data = json.loads(json.dumps(config.to_dict()))  # JSON round trip of the new shape
    graph = {"tau": 0.5, "knn": None, "weighted": False, "self_loops": True, "edge_density": 0.05, "rank": 32}
    assert data["pooler_options"]["graph"] == graph
    assert TrainConfig.from_dict(data) == config


# ---------------------------------------------------------------------------------------------- the run key
def _key(config: object) -> str:
    from glot.data import get_task
    from glot.training.runkey import build_run_config

    task = get_task("stress", n_train=12, n_eval=6, seed=0)
    return build_run_config(task, config, {"train": 10, "val": 2, "eval": 6}, {"name_or_path": "x"})["key"]


def test_options_equal_to_the_defaults_give_one_run_key() -> None:
    from glot.training.config import TrainConfig

    plain = TrainConfig(pooler="glot", pooler_options={})
    spelled = TrainConfig(pooler="glot", pooler_options={"tau": 0.8, "num_layers": 2, "weighted": False})
    assert plain == spelled and plain.to_dict() == spelled.to_dict() and _key(plain) == _key(spelled)
    assert _key(TrainConfig(pooler_options={"tau": 0.7})) != _key(plain)
    adapool = TrainConfig(pooler="adapool")
    assert _key(adapool) == _key(TrainConfig(pooler="adapool", pooler_options={"readout_hidden": 128}))
    assert adapool.pooler_options.readout.readout_hidden == 128 and adapool.pooler_options.gnn.num_layers == 0


def test_train_config_refuses_options_its_pooler_does_not_take() -> None:
    from glot.pooling.config import PoolerSections
    from glot.training.config import TrainConfig

    with pytest.raises(
        InputError, match=r"^pooler 'mean' does not take option\(s\) \['tau'\]; its options are: mix_layers$"
    ):
        TrainConfig(pooler="mean", pooler_options={"tau": 0.5})
    with pytest.raises(InputError, match="pooler 'mean' does not take num_layers=2 \\(it uses 0\\)"):
        TrainConfig(pooler="mean", pooler_options=PoolerSections())  # glot's sections, not mean's
    with pytest.raises(InputError, match="unknown pooler 'nope'; valid names"):
        TrainConfig(pooler="nope")
    tuned = TrainConfig(pooler_options={"tau": 0.5})
    assert tuned.replace(lr=1e-3).pooler_options.graph.tau == 0.5  # other changes keep the pooler settings
    assert TrainConfig().replace(pooler="mean") == TrainConfig(pooler="mean")  # defaults follow the pooler
    with pytest.raises(InputError, match=r"pooler 'adapool' does not take option\(s\) \['tau'\]"):
        tuned.replace(pooler="adapool")  # a tuned option is carried over, and refused where it means nothing
    bad = TrainConfig(pooler_options={"tau": 5})
    with pytest.raises(InputError, match=r"^tau=5 is invalid: expected"):
        bad.validate()
