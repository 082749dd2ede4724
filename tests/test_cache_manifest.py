"""The cache never trusts its manifest: every field and shard record is cross-checked, any mismatch is
warned about and rebuilt (never a wrong state, never a KeyError); a damaged shard rebuilds only itself; a bad
cache folder is one line; leftovers of a killed writer never reach the final entry; truncation is counted."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from glot.backbones.tokenize import TruncationWarning
from glot.cache import CachedStates, build_or_load
from glot.cli import main
from glot.errors import InputError

sys.path.insert(0, str(Path(__file__).parent))
from test_cache import FakeBackbone  # noqa: E402
from tiny_models import make_tiny_bert  # noqa: E402

TEXTS = [f"text {i} " + "w " * (i % 7) for i in range(300)]


def _build(root: Path, bb: FakeBackbone, **kw: Any) -> CachedStates:
    kw = {"batch_size": 32, "shard_size": 25, "progress": False, **kw}
    return build_or_load(bb, TEXTS, cache_dir=root, **kw)


def _assert_right(cached: CachedStates, bb: FakeBackbone) -> None:
    wrong = [i for i, t in enumerate(TEXTS) if not torch.equal(cached.get(i), bb.states(t).half().float())]
    assert wrong == []


def _edit(path: Path, change: Any) -> None:
    manifest = json.loads((path / "manifest.json").read_text())
    change(manifest)
    (path / "manifest.json").write_text(json.dumps(manifest))


def test_edited_shard_size_is_caught_and_rebuilt(tmp_path: Path) -> None:
    bb = FakeBackbone()
    entry = _build(tmp_path, bb).path
    _edit(entry, lambda m: m.update(shard_size=300))  # was: 275 of 300 items silently wrong
    seen = bb.texts_seen
    with pytest.warns(UserWarning, match=r"unusable.*shard_size 300"):
        cached = _build(tmp_path, bb)
    assert bb.texts_seen == seen + len(TEXTS)
    _assert_right(cached, bb)


def _consistent_lie(m: dict[str, Any]) -> None:
    """Move 3 tokens from shard 0 to shard 1: token totals still add up, only offsets.npy can tell."""
    m["shards"][0]["num_tokens"] -= 3
    m["shards"][1]["num_tokens"] += 3


def _set(path: tuple[Any, ...], value: Any):
    def change(m: dict[str, Any]) -> None:
        for part in path[:-1]:
            m = m[part]
        if value is KeyError:
            del m[path[-1]]
        else:
            m[path[-1]] = value

    return change


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_consistent_lie, "offsets.npy gives it"),
        (_set(("shards", 0, "name"), KeyError), "plain file name"),
        (_set(("shards", 2, "items"), [50, 80]), "holds items"),
        (_set(("shards",), {"0": 1}), "shards"),
        (_set(("num_items",), "300"), "num_items"),
        (_set(("dim",), True), "dim"),
        (_set(("offsets", "bytes"), "big"), "bytes"),
        (_set(("shards", 1, "sha256"), None), "sha256"),
        (_set(("shards", 1, "num_tokens"), 2.5), "num_tokens"),
        (_set(("truncation",), {"truncated": "many"}), "truncation"),
        (_set(("key",), KeyError), "lacks fields"),
        (lambda m: m["shards"].append(m["shards"][-1]), "shards"),
        (_set(("shards", 0, "name"), "../escape.npy"), "plain file name"),
        (_set(("shards", 0, "name"), "/etc/passwd"), "plain file name"),
        (_set(("shards", 0, "name"), "sub/shard.npy"), "plain file name"),
        (_set(("offsets", "name"), "manifest.json"), "plain file name|twice"),
    ],
)
def test_manifest_schema_errors_warn_and_rebuild(tmp_path: Path, change: Any, message: str) -> None:
    bb = FakeBackbone()
    entry = _build(tmp_path, bb).path
    _edit(entry, change)
    with pytest.warns(UserWarning, match=rf"unusable.*({message})"):
        cached = _build(tmp_path, bb)
    _assert_right(cached, bb)
    assert not list(tmp_path.glob("*.partial")) and not list(tmp_path.glob("*.trash-*"))


@pytest.mark.parametrize("damage", ["truncate", "delete", "flip"])
def test_one_damaged_shard_rebuilds_only_that_shard(tmp_path: Path, damage: str) -> None:
    bb = FakeBackbone()
    entry = _build(tmp_path, bb, verify="full").path
    shard = entry / "shard-00005.npy"
    if damage == "truncate":
        shard.write_bytes(shard.read_bytes()[:-8])
    elif damage == "delete":
        shard.unlink()
    else:
        data = bytearray(shard.read_bytes())
        data[-5] ^= 0x40
        shard.write_bytes(bytes(data))
    seen = bb.texts_seen
    with pytest.warns(UserWarning, match=r"shard-00005.*1 damaged shard.*11 good"):
        cached = _build(tmp_path, bb, verify="full")
    assert bb.texts_seen == seen + 25  # items 125..149 only
    _assert_right(cached, bb)
    assert sorted(p.name for p in entry.iterdir()) == sorted(
        ["manifest.json", "offsets.npy", *(r["name"] for r in cached.manifest["shards"])]
    )
    assert not list(tmp_path.glob("*.partial"))
    assert CachedStates.open(entry, verify="full").num_tokens == cached.num_tokens


def test_killed_writer_leftovers_are_cleaned_and_never_final(tmp_path: Path) -> None:
    texts = TEXTS[:40]
    with pytest.raises(RuntimeError, match="simulated kill"):  # dies after shards 0 and 1 (batch 5, shard 10)
        build_or_load(FakeBackbone(fail_after=4), texts, cache_dir=tmp_path, batch_size=5, shard_size=10)
    (partial,) = tmp_path.glob("*.partial")
    (partial / ".shard-00002.npy.k1ll3d.tmp").write_bytes(b"\x93NUMPY half a shard")  # glot.io temp name
    (partial / "stray.bin").write_bytes(b"junk")
    bb = FakeBackbone()
    cached = build_or_load(bb, texts, cache_dir=tmp_path, batch_size=5, shard_size=10, progress=False)
    assert bb.texts_seen == 20  # shards 2 and 3
    listed = {"manifest.json", "offsets.npy", *(r["name"] for r in cached.manifest["shards"])}
    assert {p.name for p in cached.path.iterdir()} == listed
    assert not partial.exists()
    for i, t in enumerate(texts):
        assert torch.equal(cached.get(i), bb.states(t).half().float())


def test_cache_dir_that_is_a_file_or_unwritable_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    afile = tmp_path / "notes.txt"
    afile.write_text("x")
    with pytest.raises(InputError, match=rf"{afile}.* is a file, not a folder; point --cache-dir"):
        build_or_load(FakeBackbone(), ["a"], cache_dir=afile)
    with pytest.raises(InputError, match=r"notes.txt/sub.* cannot be created"):
        build_or_load(FakeBackbone(), ["a"], cache_dir=afile / "sub")
    tiny = make_tiny_bert(tmp_path / "bert")
    argv = ["cache", "--model", str(tiny), "--task", "stress", "--task-option", "seq_len=16", "--n-train", "8",
            "--n-eval", "4", "--cache-dir", str(afile), "--no-progress"]  # fmt: skip
    capsys.readouterr()
    assert main(argv) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(afile) in err and "--cache-dir" in err  # before any model loads
    if os.geteuid() != 0:  # root writes anywhere: only a non-root user can see a read-only folder
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        with pytest.raises(InputError, match="is not writable"):
            build_or_load(FakeBackbone(), ["a"], cache_dir=ro)


def test_manifest_records_truncation(tmp_path: Path) -> None:
    from glot.backbones.frozen import FrozenBackbone

    bb = FrozenBackbone.from_pretrained(str(make_tiny_bert(tmp_path / "bert")), dtype="float32", max_length=8)
    texts = ["ok", "the quick brown fox jumps over the lazy dog near the river bank", "a cat sat", "yes " * 9]
    with pytest.warns(TruncationWarning, match="^2 of 4 texts were cut to 8 tokens while caching") as rec:
        cached = build_or_load(bb, texts, cache_dir=tmp_path / "c", shard_size=2, progress=False)
    assert len(rec) == 1  # one warning for the build, not one per shard
    assert (cached.num_truncated, cached.truncated_at) == (2, 8)
    assert cached.manifest["truncation"] == {"truncated": 2, "max_length": 8}
    assert np.asarray(cached.lengths).max() == 8
    assert CachedStates.open(cached.path).num_truncated == 2
    assert (
        build_or_load(FakeBackbone(), texts, cache_dir=tmp_path / "c", progress=False).num_truncated is None
    )


def test_glot_cache_reports_truncation(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    words = [
        "the",
        "quick",
        "brown",
        "fox",
        "jumps",
        "over",
        "the",
        "lazy",
        "dog",
        "near",
        "the",
        "river",
        "bank",
    ]
    rows = ["text,label,split"] + [
        f"{' '.join(words[: n + 2])},{n % 2},{'train' if n < 8 else 'eval'}" for n in range(12)
    ]  # 2..13 words -> 4..15 tokens with [CLS] and [SEP]; 7 of them are over 8
    (tmp_path / "data.csv").write_text("\n".join(rows) + "\n")
    tiny = make_tiny_bert(tmp_path / "bert")
    argv = ["cache", "--model", str(tiny), "--task", str(tmp_path / "data.csv"), "--max-length", "8",
            "--cache-dir", str(tmp_path / "c"), "--no-progress", "--json", str(tmp_path / "info.json")]  # fmt: skip
    capsys.readouterr()
    assert main(argv) == 0
    info = json.loads((tmp_path / "info.json").read_text())
    assert (info["texts"], info["truncated"], info["max_length"]) == (12, 7, 8)
    err = capsys.readouterr().err
    assert (
        "7 of 12 texts were cut to 8 tokens by the backbone; pass --max-length N (up to 128 for this model)"
        in err
    )
    assert CachedStates.open(info["path"]).num_truncated == 7
