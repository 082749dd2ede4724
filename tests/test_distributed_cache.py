"""``torchrun -m glot cache`` over 2 CPU processes (gloo): the same entry as a one-process build, state for
state, and a rerun after a rank was killed mid-build computes only the shards that are missing.

The kill uses the documented test hook ``GLOT_TEST_EXIT_AFTER_SHARDS=R:K`` (rank R exits right after
recording its K-th shard; glot.cache.shards)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from glot.cache import CachedStates
from glot.cli import main

sys.path.insert(0, str(Path(__file__).parent))
from tiny_models import make_tiny_bert  # noqa: E402
from torchrun import failure, glot  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("dist-cache")
    model = make_tiny_bert(root / "bert")
    args = ["cache", "--model", str(model), "--task", "stress", "--n-train", "120", "--n-eval", "40",
            "--shard-size", "16", "--batch-size", "8", "--no-progress"]  # fmt: skip
    out = root / "one.json"
    assert main([*args, "--cache-dir", str(root / "one"), "--json", str(out)]) == 0  # one process, 1 thread
    return {"root": root, "args": args, "one": json.loads(out.read_text())}


def _same_entry(a: dict[str, object], b: dict[str, object]) -> None:
    assert a["key"] == b["key"] and a["texts"] == b["texts"] == 160 and a["shards"] == b["shards"] == 10
    x, y = CachedStates.open(str(a["path"])), CachedStates.open(str(b["path"]))
    assert np.array_equal(x.offsets, y.offsets)
    assert all(np.array_equal(x.get(i).numpy(), y.get(i).numpy()) for i in range(len(x)))
    assert x.manifest["shards"] == y.manifest["shards"]  # same files, same sha256


def test_two_ranks_build_the_same_entry_as_one_process(setup: dict[str, object]) -> None:
    root, out = Path(str(setup["root"])), Path(str(setup["root"])) / "two.json"
    proc = glot(2, *setup["args"], "--cache-dir", str(root / "two"), "--json", str(out))  # type: ignore[misc]
    assert proc.returncode == 0, failure(proc.stderr)
    two = json.loads(out.read_text())
    assert two["ranks"] == 2 and two["shards_computed"] == 10
    _same_entry(setup["one"], two)  # type: ignore[arg-type]
    assert proc.stdout.count("hidden-state cache") == 1  # rank 0 reports for the group


def test_rerun_after_a_killed_rank_computes_only_the_missing_shards(setup: dict[str, object]) -> None:
    root = Path(str(setup["root"]))
    cache, out = root / "killed", root / "killed.json"
    flags = [*setup["args"], "--cache-dir", str(cache), "--json", str(out)]  # type: ignore[misc]
    proc = glot(2, *flags, GLOT_TEST_EXIT_AFTER_SHARDS="1:1")
    assert proc.returncode != 0 and not out.exists()
    (partial,) = cache.glob("*.partial")
    done = set()
    for record in partial.glob("progress*.json"):
        done |= set(json.loads(record.read_text())["done"])
    assert 1 <= len(done) < 10  # rank 1 recorded its first shard, then died; rank 0 was stopped mid-way

    proc = glot(2, *flags)
    assert proc.returncode == 0, failure(proc.stderr)
    resumed = json.loads(out.read_text())
    assert resumed["shards_computed"] == 10 - len(done)
    _same_entry(setup["one"], resumed)
    assert list(cache.glob("*.partial")) == []


def test_a_backbone_placed_with_device_map_auto_caches_the_same_states(setup: dict[str, object]) -> None:
    root = Path(str(setup["root"]))
    out = root / "mapped.json"
    flags = [*setup["args"], "--device-map", "auto", "--cache-dir", str(root / "mapped"), "--json", str(out)]  # type: ignore[misc]
    assert main(flags) == 0  # Accelerate places the layers (all on the CPU here); the states do not change
    _same_entry(setup["one"], json.loads(out.read_text()))  # type: ignore[arg-type]


def test_split_is_disjoint_covering_and_length_balanced() -> None:
    from glot.distributed import shard, split

    rng = np.random.default_rng(0)
    weights = rng.integers(1, 200, size=37).tolist()
    items = list(range(100, 137))
    parts = split(items, weights, 3)
    assert sorted(i for p in parts for i in p) == items and all(p == sorted(p) for p in parts)
    loads = [sum(weights[i - 100] for i in p) for p in parts]
    assert max(loads) - min(loads) <= max(weights)  # greedy, heaviest first: within one item of each other
    assert [shard(items, weights, for_rank=r, world=3) for r in range(3)] == parts
    assert split(range(7), None, 3) == [[0, 1, 2], [3, 4], [5, 6]]


def test_a_half_set_launcher_environment_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    monkeypatch.delenv("MASTER_PORT", raising=False)
    assert main(["cache", "--task", "stress", "--n-train", "10", "--model", "/no/such/model"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("glot: error: WORLD_SIZE=2 but MASTER_ADDR, MASTER_PORT unset") and "\n" not in err
