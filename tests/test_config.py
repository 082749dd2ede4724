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
        PoolerConfig.from_dict(["glot", 12])  # type: ignore[arg-type]


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
