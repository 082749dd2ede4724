"""A fixed pooler (no parameters, no buffers: cls, eos, mean, max) over a cache pools each item once per run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import glot
import glot.training.sources as sources
from close import assert_close_normwise
from glot.pooling.poolers import MeanPooler
from glot.training.checkpoint import load_run
from glot.training.loop import TrainConfig, cache_task, fit
from glot.training.precision import MixedPrecisionPooler
from test_train import WordBackbone, _stress


@pytest.fixture(scope="module")
def cached(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    return cache_task(_stress(), WordBackbone(), cache_dir=tmp_path_factory.mktemp("cache"), progress=False)


def test_only_parameter_and_buffer_free_poolers_are_fixed() -> None:
    keys = {name: glot.build_pooler(name, 16).fixed_key() for name in ("cls", "eos", "mean", "max")}
    assert all(keys.values()) and len(set(keys.values())) == 4  # one function each
    assert glot.build_pooler("mean", 16).fixed_key() == keys["mean"]  # the same function, the same key
    assert glot.build_pooler("mean", 32).fixed_key() != keys["mean"]
    for name in ("adapool", "mlp", "glot"):
        assert glot.build_pooler(name, 16).fixed_key() is None
    assert glot.build_pooler("mean", 16, mix_layers=2).fixed_key() is None  # the layer mix trains
    mixed = MixedPrecisionPooler(glot.build_pooler("mean", 16), "bf16").fixed_key()
    assert mixed is not None and mixed != keys["mean"]
    assert MixedPrecisionPooler(glot.build_pooler("glot", 16), "bf16").fixed_key() is None


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Items MeanPooler.forward_packed pools, call by call."""
    calls: list[int] = []
    real = MeanPooler.forward_packed

    def counted(self, x, ptr, **kwargs):  # noqa: ANN001, ANN003, ANN202
        calls.append(ptr.numel() - 1)
        return real(self, x, ptr, **kwargs)

    monkeypatch.setattr(MeanPooler, "forward_packed", counted)
    return calls


def test_a_fixed_pooler_pools_each_item_once_and_trains_as_per_batch(
    cached, tmp_path: Path, monkeypatch
) -> None:
    config = TrainConfig(pooler="mean", lr=1e-2, epochs=4, batch_size=16)
    calls = _counting(monkeypatch)
    once = fit(cached, config, tmp_path / "once", progress=False)
    asked = np.unique(np.concatenate([cached.ids[s]["texts"] for s in ("train", "eval")]))
    assert sum(calls) == asked.size  # train, validation and eval items: each pooled the first time only

    calls.clear()
    monkeypatch.setattr(sources, "MAX_POOLED_BYTES", 0)  # over the memory bound: every batch pooled again
    each = fit(cached, config, tmp_path / "each", progress=False)
    assert sum(calls) == config.epochs * (sum(once["sizes"].values()))
    assert once["eval"] == each["eval"]
    assert [h["val"] for h in once["history"]] == [h["val"] for h in each["history"]]
    for a, b in zip(once["history"], each["history"], strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
    head_once, head_each = (load_run(tmp_path / name)[1].state_dict() for name in ("once", "each"))
    for key, value in head_once.items():
        assert_close_normwise(value, head_each[key], 1e-5)


def test_a_learned_pooler_still_pools_every_batch(cached, tmp_path: Path) -> None:
    source = sources.CacheSource(cached)
    pooler = glot.build_pooler("adapool", WordBackbone.hidden_size)
    assert source.pooled(pooler, "train", np.arange(4)) is None
    mean = glot.build_pooler("mean", WordBackbone.hidden_size)
    got = source.pooled(mean, "train", np.arange(4))
    x, ptr = source.packed("train", np.arange(4))
    assert got is not None
    torch.testing.assert_close(got, mean.forward_packed(x, ptr))
