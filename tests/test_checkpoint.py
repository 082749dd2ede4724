"""glot.training.checkpoint: optimizer state round trip, atomic epoch checkpoints, stale-folder cleanup,
run-folder reuse by run key, and finding the seed folders of a run."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from torch import nn

from glot.errors import InputError
from glot.training import checkpoint
from glot.training.checkpoint import (
    CHECKPOINT_DIR,
    METRICS_NAME,
    RUN_CONFIG_NAME,
    RUN_FORMAT,
    flatten_optimizer,
    load_checkpoint_state,
    load_epoch,
    prepare_run_dir,
    restore_optimizer,
    run_dirs,
    save_epoch,
)


def _model(seed: int = 0) -> dict[str, nn.Module]:
    torch.manual_seed(seed)
    return {"pooler": nn.Linear(4, 3), "head": nn.Linear(3, 2)}


def _step(modules: dict[str, nn.Module], optimizer: torch.optim.Optimizer, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(5, 4, generator=gen)
    optimizer.zero_grad()
    modules["head"](modules["pooler"](x)).pow(2).mean().backward()
    optimizer.step()


def _adam(modules: dict[str, nn.Module]) -> torch.optim.Optimizer:
    params = [p for m in modules.values() for p in m.parameters()]
    return torch.optim.Adam(params, lr=0.01, betas=(0.8, 0.95))


def _save(run: Path, epoch: int, best: int, modules, optimizer, key: str = "key-1") -> None:
    state = {"epoch": epoch, "best_epoch": best, "run_key": key, "history": list(range(epoch))}
    save_epoch(run, state, modules, optimizer, {"val": torch.full((3,), float(epoch))})


def _epochs(run: Path) -> list[str]:
    return sorted(p.name for p in (run / CHECKPOINT_DIR).glob("epoch-*"))


def test_optimizer_state_survives_json_and_safetensors_and_training_continues_the_same() -> None:
    modules = _model()
    optimizer = _adam(modules)
    for seed in (1, 2):
        _step(modules, optimizer, seed)
    tensors, meta = flatten_optimizer(optimizer)
    assert {k.rsplit(".", 1)[1] for k in tensors} == {"exp_avg", "exp_avg_sq", "step"}
    copied = copy.deepcopy(modules)
    restored = _adam(copied)
    restore_optimizer(restored, {k: v.clone() for k, v in tensors.items()}, json.loads(json.dumps(meta)))
    assert restored.param_groups[0]["betas"] == (0.8, 0.95)  # a tuple again after JSON
    _step(modules, optimizer, 3)
    _step(copied, restored, 3)
    for name in modules:
        for a, b in zip(modules[name].parameters(), copied[name].parameters(), strict=True):
            torch.testing.assert_close(b, a)


def test_epoch_round_trip_gives_weights_optimizer_and_predictions_back(tmp_path: Path) -> None:
    modules, run = _model(), tmp_path / "run"
    optimizer = _adam(modules)
    _step(modules, optimizer, 1)
    _save(run, 1, 1, modules, optimizer)
    state = load_checkpoint_state(run)
    assert state is not None and state["epoch"] == 1 and state["folder"] == "epoch-001"
    fresh = _model(seed=9)
    fresh_opt = _adam(fresh)
    predictions = load_epoch(run, 1, fresh, fresh_opt, run_key="key-1")
    torch.testing.assert_close(predictions["val"], torch.full((3,), 1.0))
    for name in modules:
        for key, value in modules[name].state_dict().items():
            torch.testing.assert_close(fresh[name].state_dict()[key], value)
    assert fresh_opt.state_dict()["state"].keys() == optimizer.state_dict()["state"].keys()


def test_only_the_latest_and_the_best_epoch_are_kept(tmp_path: Path) -> None:
    modules, run = _model(), tmp_path / "run"
    optimizer = _adam(modules)
    (run / CHECKPOINT_DIR / "epoch-007").mkdir(parents=True)  # left by a killed run, never made current
    _save(run, 1, 1, modules, optimizer)
    assert _epochs(run) == ["epoch-001"]
    _save(run, 2, 1, modules, optimizer)
    assert _epochs(run) == ["epoch-001", "epoch-002"]  # latest + best on validation
    _save(run, 3, 3, modules, optimizer)
    assert _epochs(run) == ["epoch-003"]
    _save(run, 3, 3, modules, optimizer)  # the same epoch again: replaced, not duplicated
    assert _epochs(run) == ["epoch-003"] and load_checkpoint_state(run)["folder"] == "epoch-003"


def test_a_save_killed_midway_leaves_the_previous_checkpoint_current(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    modules, run = _model(), tmp_path / "run"
    optimizer = _adam(modules)
    _save(run, 1, 1, modules, optimizer)
    real = checkpoint.atomic_save_tensors

    def dies_on_predictions(path, tensors):
        if Path(path).name == "eval_predictions.safetensors":
            raise KeyboardInterrupt  # the process is stopped while epoch 2 is being written
        return real(path, tensors)

    monkeypatch.setattr(checkpoint, "atomic_save_tensors", dies_on_predictions)
    with pytest.raises(KeyboardInterrupt):
        _save(run, 2, 2, modules, optimizer)
    monkeypatch.undo()
    state = load_checkpoint_state(run)
    assert state is not None and state["epoch"] == 1 and state["folder"] == "epoch-001"
    predictions = load_epoch(run, 1, _model(seed=3), run_key="key-1")
    torch.testing.assert_close(predictions["val"], torch.full((3,), 1.0))


def test_an_epoch_of_another_run_is_refused(tmp_path: Path) -> None:
    modules, run = _model(), tmp_path / "run"
    _save(run, 1, 1, modules, _adam(modules), key="key-1")
    with pytest.raises(
        InputError, match=r"checkpoint epoch-001 of another run \(run key key-1\).*--overwrite"
    ):
        load_epoch(run, 1, _model(), run_key="key-2")


def _config(key: str, lr: float = 0.01) -> dict:
    return {"format": RUN_FORMAT, "key": key, "train": {"lr": lr}}


def test_a_run_folder_is_reused_only_by_the_same_run(tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert prepare_run_dir(run, _config("k1"), overwrite=False) is None
    assert json.loads((run / RUN_CONFIG_NAME).read_text())["key"] == "k1"
    assert prepare_run_dir(run, _config("k1"), overwrite=False) is None  # resumable: same key
    with pytest.raises(InputError, match=r"different configuration \(differs in: train.lr\).*--overwrite"):
        prepare_run_dir(run, _config("k2", lr=0.1), overwrite=False)
    (run / METRICS_NAME).write_text(json.dumps({"run_key": "k1", "val": 0.5}))
    assert prepare_run_dir(run, _config("k1"), overwrite=False) == {"run_key": "k1", "val": 0.5}
    assert prepare_run_dir(run, _config("k2"), overwrite=True) is None  # overwrite starts afresh
    assert not (run / METRICS_NAME).exists()


def test_artefacts_without_their_run_config_are_not_adopted(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "pooler").mkdir(parents=True)  # pooler/ of some earlier run, its run_config.json deleted
    with pytest.raises(InputError, match="without a run key"):
        prepare_run_dir(run, _config("k1"), overwrite=False)


def test_run_dirs_finds_one_run_or_its_seed_folders_in_seed_order(tmp_path: Path) -> None:
    for seed in (10, 2, 0):
        (tmp_path / f"seed-{seed}").mkdir()
        (tmp_path / f"seed-{seed}" / RUN_CONFIG_NAME).write_text("{}")
    (tmp_path / "seed-5").mkdir()  # no run_config.json: not a run
    assert [p.name for p in run_dirs(tmp_path)] == ["seed-0", "seed-2", "seed-10"]
    assert run_dirs(tmp_path / "seed-2") == [tmp_path / "seed-2"]
    assert run_dirs(tmp_path / "missing") == []
