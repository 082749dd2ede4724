"""Ragged hidden-state cache: round trips, content keys, corruption, resume, batching, validation."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor

from glot import cache
from glot.cache import CachedStates, build_or_load, cache_key

TEXTS = [
    "the delivery contains keys",
    "ok",
    "a much longer sentence with quite a few more words than the others have",
    "in the box are not tickets",
    "",
    "graphs over tokens",
    "one two three four five six seven",
    "x",
    "the folder includes reports and files",
    "never alerts",
]


class FakeBackbone:
    """Deterministic stand-in: token states from hashes of (position, word); counts the work it does."""

    def __init__(self, dim: int = 8, scale: float = 3.0, fail_after: int | None = None) -> None:
        self.hidden_size = dim
        self.name = "fake"
        self.scale = scale
        self.fail_after = fail_after
        self.extra: dict[str, object] = {}
        self.batches = 0
        self.texts_seen = 0

    def fingerprint(self) -> dict[str, object]:
        return {"model": self.name, "hidden_size": self.hidden_size, "layer": -1, **self.extra}

    def states(self, text: str) -> Tensor:
        """Shapes: -> (1 + words, D) float32."""
        rows = []
        for pos, word in enumerate(["[CLS]", *text.split()]):
            seed = int(hashlib.sha256(f"{pos}:{word}".encode()).hexdigest()[:8], 16)
            rows.append(torch.from_numpy(np.random.default_rng(seed).standard_normal(self.hidden_size)))
        return (torch.stack(rows) * self.scale).float()

    def iter_packed(self, texts, batch_size=64, progress=True, desc=None):
        order = sorted(range(len(texts)), key=lambda i: len(texts[i].split()))
        for start in range(0, len(order), batch_size):
            if self.fail_after is not None and self.batches >= self.fail_after:
                raise RuntimeError("simulated kill")
            idx = np.array(order[start : start + batch_size])
            states = [self.states(texts[i]) for i in idx]
            ptr = torch.tensor([0, *np.cumsum([len(s) for s in states])], dtype=torch.long)
            self.batches += 1
            self.texts_seen += len(idx)
            yield idx, torch.cat(states), ptr


def _build(tmp_path: Path, bb: FakeBackbone, texts=TEXTS, **kw) -> CachedStates:
    kw.setdefault("batch_size", 3)
    return build_or_load(bb, texts, cache_dir=tmp_path, progress=False, **kw)


@pytest.mark.parametrize(
    ("dtype", "cast"),
    [
        ("float32", lambda t: t),
        ("float16", lambda t: t.half().float()),
        ("bfloat16", lambda t: t.bfloat16().float()),
    ],
)
def test_round_trip_exact(tmp_path: Path, dtype: str, cast) -> None:
    bb = FakeBackbone()
    cached = _build(tmp_path, bb, dtype=dtype, shard_size=4)  # 3 shards, the last one short
    assert len(cached) == len(TEXTS) and cached.dim == 8 and cached.dtype == dtype
    expected = [cast(bb.states(t)) for t in TEXTS]
    assert cached.lengths.tolist() == [len(e) for e in expected]
    assert cached.num_tokens == sum(len(e) for e in expected)
    for i, e in enumerate(expected):
        got = cached.get(i)
        assert got.dtype == torch.float32 and torch.equal(got, e)
    x, ptr = cached.packed([7, 0, 9, 4])
    assert torch.equal(x, torch.cat([expected[i] for i in (7, 0, 9, 4)]))
    assert ptr.tolist() == [0, *np.cumsum([len(expected[i]) for i in (7, 0, 9, 4)]).tolist()]


def test_layout_manifest_and_default_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLOT_HOME", str(tmp_path / "home"))
    bb = FakeBackbone()
    cached = build_or_load(bb, TEXTS, progress=False, shard_size=4)
    key = cache_key(bb.fingerprint(), TEXTS, "float16")
    assert cached.path == tmp_path / "home" / "cache" / key.digest[:16]
    m = json.loads((cached.path / "manifest.json").read_text())
    assert m["key"] == key.digest and m["num_items"] == len(TEXTS) and m["dim"] == 8
    assert m["ingredients"]["backbone"] == bb.fingerprint() and len(m["shards"]) == 3
    assert sorted(p.name for p in cached.path.iterdir()) == sorted(
        ["manifest.json", "offsets.npy", *(s["name"] for s in m["shards"])]
    )
    for rec in [m["offsets"], *m["shards"]]:
        assert (cached.path / rec["name"]).stat().st_size == rec["bytes"]
        assert hashlib.sha256((cached.path / rec["name"]).read_bytes()).hexdigest() == rec["sha256"]
    assert not list((tmp_path / "home" / "cache").glob("*.partial"))


def test_reuse_and_key_ingredients(tmp_path: Path) -> None:
    bb = FakeBackbone()
    first = _build(tmp_path, bb)
    seen = bb.texts_seen
    again = _build(tmp_path, bb)
    assert again.path == first.path and bb.texts_seen == seen  # loaded, not recomputed

    paths = {first.path}
    bb.extra = {"revision": "other"}  # any fingerprint field
    paths.add(_build(tmp_path, bb).path)
    bb.extra = {}
    paths.add(_build(tmp_path, bb, dtype="float32").path)
    paths.add(_build(tmp_path, bb, texts=[*TEXTS[:-1], TEXTS[-1] + "!"]).path)
    paths.add(_build(tmp_path, bb, texts=[TEXTS[1], TEXTS[0], *TEXTS[2:]]).path)  # order matters
    assert len(paths) == 5
    assert len({p.name for p in tmp_path.iterdir() if p.suffix != ".lock"}) == 5


def test_key_is_canonical() -> None:
    a = cache_key({"b": 1, "a": [1, 2]}, ["x", "y"], "float16")
    b = cache_key({"a": [1, 2], "b": 1}, ["x", "y"], "float16")
    assert a == b and len(a.digest) == 64
    assert cache_key({"a": 1}, ["xy"]).digest != cache_key({"a": 1}, ["x", "y"]).digest
    with pytest.raises(TypeError, match="JSON-serialisable"):
        cache_key({"a": object()}, ["x"])


def _first_shard(cached: CachedStates) -> Path:
    return cached.path / cached.manifest["shards"][0]["name"]


def test_truncated_file_detected_and_rebuilt(tmp_path: Path) -> None:
    bb = FakeBackbone()
    cached = _build(tmp_path, bb, shard_size=4)
    shard = _first_shard(cached)
    del cached
    with open(shard, "r+b") as f:
        f.truncate(shard.stat().st_size - 10)
    seen = bb.texts_seen
    with pytest.warns(UserWarning, match=r"(?s)unusable.*truncated.*1 damaged shard.*2 good") as rec:
        rebuilt = _build(tmp_path, bb, shard_size=4)
    assert str(shard.parent) in str(rec[0].message)
    assert bb.texts_seen == seen + 4  # only the damaged shard (items 0..3) is recomputed
    for i, t in enumerate(TEXTS):
        assert torch.equal(rebuilt.get(i), bb.states(t).half().float())


@pytest.mark.parametrize("fresh_process", [True, False])
def test_corrupted_byte_detected_and_rebuilt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_process: bool
) -> None:
    bb = FakeBackbone()
    cached = _build(tmp_path, bb, shard_size=4)
    shard = _first_shard(cached)
    del cached
    data = bytearray(shard.read_bytes())
    data[-3] ^= 0xFF  # inside the token data, not the header: only the checksum can see it
    shard.write_bytes(bytes(data))
    if fresh_process:  # default verify="auto": a new process re-hashes every entry on first open
        monkeypatch.setattr(cache.store, "_VERIFIED", {})
        kw = {}
    else:
        kw = {"verify": "full"}
    seen = bb.texts_seen
    with pytest.warns(UserWarning, match="sha256"):
        rebuilt = _build(tmp_path, bb, shard_size=4, **kw)
    assert bb.texts_seen == seen + 4  # that shard only
    for i in range(len(TEXTS)):
        assert torch.equal(rebuilt.get(i), bb.states(TEXTS[i]).half().float())


def test_broken_manifest_rebuilt(tmp_path: Path) -> None:
    bb = FakeBackbone()
    cached = _build(tmp_path, bb)
    (cached.path / "manifest.json").write_text("{not json")
    with pytest.warns(UserWarning, match="manifest.json"):
        rebuilt = _build(tmp_path, bb)
    assert len(rebuilt) == len(TEXTS)


def test_interrupted_build_resumes(tmp_path: Path) -> None:
    texts = [f"sentence number {i} " + "w " * (i % 5) for i in range(12)]
    killed = FakeBackbone(fail_after=3)  # shard_size 4, batch 2 -> 2 batches/shard: dies inside shard 1
    with pytest.raises(RuntimeError, match="simulated kill"):
        build_or_load(killed, texts, cache_dir=tmp_path, batch_size=2, shard_size=4, progress=False)
    (partial,) = tmp_path.glob("*.partial")
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".lock", ".partial"]  # nothing looks final
    assert not list(partial.glob("*.tmp*"))

    resumed = FakeBackbone()
    cached = build_or_load(resumed, texts, cache_dir=tmp_path, batch_size=2, shard_size=4, progress=False)
    assert resumed.texts_seen == 8  # shard 0 was kept; shards 1 and 2 recomputed
    assert not partial.exists()
    for i, t in enumerate(texts):
        assert torch.equal(cached.get(i), resumed.states(t).half().float())


def test_resume_recomputes_a_damaged_finished_shard(tmp_path: Path) -> None:
    texts = [f"t {i}" for i in range(8)]
    with pytest.raises(RuntimeError):
        build_or_load(FakeBackbone(fail_after=1), texts, cache_dir=tmp_path, batch_size=4, shard_size=4)
    (partial,) = tmp_path.glob("*.partial")
    shard = partial / "shard-00000.npy"
    shard.write_bytes(shard.read_bytes()[:-4])
    bb = FakeBackbone()
    cached = build_or_load(bb, texts, cache_dir=tmp_path, batch_size=4, shard_size=4, progress=False)
    assert bb.texts_seen == 8
    assert torch.equal(cached.get(0), bb.states(texts[0]).half().float())


def test_batches_cover_once_and_shuffle_by_seed(tmp_path: Path) -> None:
    bb = FakeBackbone()
    cached = _build(tmp_path, bb, shard_size=3)
    batches = list(cached.batches(4, shuffle=True, seed=1))
    order = torch.cat([b.index for b in batches])
    assert sorted(order.tolist()) == list(range(len(TEXTS))) and [len(b.index) for b in batches] == [4, 4, 2]
    assert order.tolist() != list(range(len(TEXTS)))
    same = torch.cat([b.index for b in cached.batches(4, shuffle=True, seed=1)])
    other = torch.cat([b.index for b in cached.batches(4, shuffle=True, seed=2)])
    assert torch.equal(order, same) and not torch.equal(order, other)
    for b in batches:
        assert b.ptr[-1] == b.x.shape[0] and len(b.ptr) == len(b.index) + 1
        for j, i in enumerate(b.index.tolist()):
            assert torch.equal(b.x[b.ptr[j] : b.ptr[j + 1]], cached.get(i))
    plain = [b.index.tolist() for b in cached.batches(4, drop_last=True)]
    assert plain == [[0, 1, 2, 3], [4, 5, 6, 7]]
    subset = [b.index.tolist() for b in cached.batches(2, indices=[9, 3, 5])]
    assert subset == [[9, 3], [5]]


def test_validation_errors(tmp_path: Path) -> None:
    bb = FakeBackbone()
    with pytest.raises(ValueError, match=r"float8.*bfloat16.*float16.*float32"):
        _build(tmp_path, bb, dtype="float8")
    with pytest.raises(TypeError, match=r"texts\[2\] must be a str, got int"):
        _build(tmp_path, bb, texts=["a", "b", 3])
    with pytest.raises(TypeError, match="list of str"):
        _build(tmp_path, bb, texts="just one string")
    with pytest.raises(ValueError, match="empty"):
        _build(tmp_path, bb, texts=[])
    with pytest.raises(ValueError, match="verify"):
        _build(tmp_path, bb, verify="sometimes")
    cached = _build(tmp_path, bb)
    with pytest.raises(IndexError, match="out of range"):
        cached.get(len(TEXTS))
    with pytest.raises(ValueError, match="batch_size"):
        next(cached.batches(0))


def test_float16_overflow_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="bfloat16"):
        _build(tmp_path, FakeBackbone(scale=1e6), dtype="float16")
    cached = _build(tmp_path, FakeBackbone(scale=1e6), dtype="bfloat16")
    assert torch.isfinite(cached.get(0)).all()


@pytest.mark.slow
def test_real_minilm_round_trip(tmp_path: Path, minilm_path: str) -> None:
    import glot.backbones.frozen as backbone_mod

    bb = backbone_mod.FrozenBackbone.from_pretrained(minilm_path, dtype="float32")
    texts = ["ok", "the delivery contains not keys", "Graphs over tokens relate words to each other.", "hi"]
    cached = build_or_load(bb, texts, cache_dir=tmp_path, dtype="float32", batch_size=2, progress=False)
    assert cached.dim == bb.hidden_size == 384
    x, ptr = bb.embed_packed(texts)
    assert cached.lengths.tolist() == (ptr[1:] - ptr[:-1]).tolist()
    got, got_ptr = cached.packed(range(len(texts)))
    assert torch.equal(got_ptr, ptr)
    torch.testing.assert_close(got, x, atol=1e-5, rtol=1e-5)  # batch composition may differ: padding noise
    again = build_or_load(bb, texts, cache_dir=tmp_path, dtype="float32", batch_size=2, progress=False)
    assert again.path == cached.path
