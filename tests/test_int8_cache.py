"""The int8 cache option: per-token scale quantisation of cached states (glot.cache.quantize), its own cache key,
the error bound, the bytes on disk, and `glot train --cache-dtype int8` end to end."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from glot.cache import CachedStates, build_or_load, cache_key
from glot.cache.quantize import SCALE_BYTES, decode, encode
from glot.cli import main
from glot.errors import InputError

sys.path.insert(0, str(Path(__file__).parent))
from tiny_models import make_tiny_bert  # noqa: E402

TEXTS = [
    f"the {w} film is very {v}" for w in ("good", "bad", "great") for v in ("good", "bad", "ok", "so")
] + [
    "cat sat on the mat",
    "the quick brown fox jumps over the lazy dog and the river bank",
]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_bert(tmp_path_factory.mktemp("models") / "bert")


def test_encode_decode_error_bound_and_exact_extremes() -> None:
    g = torch.Generator().manual_seed(0)
    x = (
        torch.randn(50, 24, generator=g) * torch.logspace(-3, 3, 50)[:, None]
    )  # tokens of very different scale
    x[7] = 0.0  # an all-zero token keeps scale 1 and decodes to zeros
    rows = encode(x)
    assert rows.dtype == np.int8 and rows.shape == (50, 24 + SCALE_BYTES)
    back = decode(rows)
    bound = x.abs().amax(dim=1, keepdim=True) / 254  # half a quantisation step of each token
    assert bool(((back - x).abs() <= bound * (1 + 1e-5) + 1e-30).all())
    assert torch.equal(back[7], torch.zeros(24))
    top = x.abs().argmax(dim=1)  # each token's largest element is a code of +-127: exact up to float rounding
    assert torch.allclose(back[torch.arange(50), top], x[torch.arange(50), top], rtol=1e-6, atol=0)
    assert decode(encode(torch.zeros(0, 24))).shape == (0, 24)


def test_encode_refuses_non_finite_states_in_one_line() -> None:
    x = torch.ones(3, 4)
    x[1, 2] = float("nan")
    with pytest.raises(InputError, match=r"NaN/inf in the batch holding text 5; int8") as err:
        encode(x, first_item=5)
    assert "\n" not in str(err.value)


def test_int8_entry_has_its_own_key_half_the_bytes_and_reads_back_within_the_bound(
    tiny: Path, tmp_path: Path
) -> None:
    from glot.backbones.frozen import FrozenBackbone

    backbone = FrozenBackbone.from_pretrained(str(tiny), max_length=32)
    full = build_or_load(backbone, TEXTS, cache_dir=tmp_path, dtype="float32", shard_size=5, progress=False)
    half = build_or_load(backbone, TEXTS, cache_dir=tmp_path, dtype="float16", shard_size=5, progress=False)
    q = build_or_load(backbone, TEXTS, cache_dir=tmp_path, dtype="int8", shard_size=5, progress=False)
    assert q.manifest["ingredients"]["dtype"] == "int8" and q.dim == full.dim == 32
    assert len({full.manifest["key"], half.manifest["key"], q.manifest["key"]}) == 3
    assert q.manifest["key"] == cache_key(backbone.fingerprint(), TEXTS, "int8").digest
    x, ptr = full.packed(range(len(TEXTS)))
    xq, ptr_q = q.packed(range(len(TEXTS)))
    assert torch.equal(ptr, ptr_q)
    assert bool(((xq - x).abs() <= x.abs().amax(dim=1, keepdim=True) / 254 * (1 + 1e-5)).all())
    assert torch.equal(q.get(3), xq[ptr[3] : ptr[4]])

    def data_bytes(states: CachedStates) -> int:
        return sum(int(s["bytes"]) for s in states.manifest["shards"])

    tokens, header = int(ptr[-1]), 128 * len(q.manifest["shards"])  # each .npy shard has a 128-byte header
    assert data_bytes(q) == tokens * (32 + SCALE_BYTES) + header
    assert data_bytes(half) == tokens * 32 * 2 + header and data_bytes(full) == tokens * 32 * 4 + header
    reopened = CachedStates.open(q.path, verify="full")  # sha256 + shapes of the (N, D + 4) shards
    assert torch.equal(reopened.packed([0, 4])[0], q.packed([0, 4])[0])


def test_train_on_an_int8_cache_end_to_end(tiny: Path, tmp_path: Path) -> None:
    common = ["--model", str(tiny), "--task", "stress", "--task-option", "seq_len=16", "--n-train", "80",
              "--n-eval", "40", "--max-length", "40", "--cache-dir", str(tmp_path / "cache"), "--no-progress",
              "--pooler", "mean", "--epochs", "2", "--batch-size", "16", "--lr", "1e-2"]  # fmt: skip
    results = {}
    for dtype in ("float32", "int8"):
        out = tmp_path / dtype
        assert (
            main(["train", *common, "--cache-dtype", dtype, "--out", str(out), "--json", str(out / "r.json")])
            == 0
        )
        results[dtype] = json.loads((out / "r.json").read_text())["per_seed"][0]
        run_config = json.loads((out / "seed-0" / "run_config.json").read_text())
        assert run_config["cache_dtype"] == dtype
    a, b = results["float32"], results["int8"]
    assert 0.0 <= b["eval"] <= 1.0
    # half a step of 1/127 of each token's largest state barely moves the trained head on 40 eval examples
    assert abs(a["eval"] - b["eval"]) <= 0.1
    assert abs(a["history"][0]["train_loss"] - b["history"][0]["train_loss"]) <= 0.02


def test_a_damaged_int8_shard_is_recomputed_alone(tiny: Path, tmp_path: Path) -> None:
    from glot.backbones.frozen import FrozenBackbone

    backbone = FrozenBackbone.from_pretrained(str(tiny), max_length=32)
    q = build_or_load(backbone, TEXTS, cache_dir=tmp_path, dtype="int8", shard_size=5, progress=False)
    before = q.packed(range(len(TEXTS)))[0]
    shard = q.path / q.manifest["shards"][1]["name"]
    raw = bytearray(shard.read_bytes())
    raw[-1] ^= 0xFF  # flip the last scale byte of the shard's last token
    shard.write_bytes(bytes(raw))
    with pytest.warns(UserWarning, match="recomputing 1 damaged shard"):
        again = build_or_load(backbone, TEXTS, cache_dir=tmp_path, dtype="int8", shard_size=5, verify="full")
    assert again.dim == 32 and torch.equal(again.packed(range(len(TEXTS)))[0], before)
