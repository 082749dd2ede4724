"""``glot encode -o FOLDER`` resumes: a killed run rerun with the same command keeps its finished, verified parts
and embeds only the rest (row for row what an uninterrupted run writes); another input, model or options is
refused with one line (``--overwrite`` starts over); a damaged part is recomputed. In process (an injected
failure after N parts, stdin), one process killed by the cache's test hook, and 2 torchrun ranks (gloo)."""

from __future__ import annotations

import hashlib
import io
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from glot.errors import InputError
from glot.export.sharded import encode_to_folder, load

sys.path.insert(0, str(Path(__file__).parent))
from tiny_models import WORDS, make_tiny_bert  # noqa: E402
from torchrun import failure, glot  # noqa: E402

ROWS = 8  # --shard-rows: 45 texts -> 6 parts


def _lines(n: int = 45, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(1, 12)))) for _ in range(n)]


class Embed:
    """A deterministic stand-in encoder (each text's vector from its sha256) counting the texts it embeds;
    ``fail_after``: raise after that many chunks, as a killed run stops."""

    def __init__(self, fail_after: int | None = None) -> None:
        self.chunks: list[str] = []
        self.fail_after = fail_after

    def __call__(self, texts: list[str]) -> np.ndarray:
        if self.fail_after is not None and len(self.chunks) == self.fail_after:
            raise KeyboardInterrupt("simulated kill")
        self.chunks.append(texts[0])
        seeds = [int(hashlib.sha256(t.encode()).hexdigest()[:8], 16) for t in texts]
        return np.stack([np.random.default_rng(s).standard_normal(6) for s in seeds]).astype(np.float32)


def _encode(embed: Embed, source: Any, out: Path, **kw: Any) -> dict[str, Any]:
    opts = {"shard_rows": ROWS, "ingredients": {"model": "hash-6"}, "progress": False} | kw
    return encode_to_folder(embed, source, out, **opts)


def _mtimes(out: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in out.glob("part-*.npy")}


@pytest.fixture
def texts(tmp_path: Path) -> Path:
    path = tmp_path / "texts.txt"
    path.write_text("\n".join(_lines()) + "\n")
    return path


def test_a_killed_run_resumes_without_recomputing_its_finished_parts(texts: Path, tmp_path: Path) -> None:
    full = _encode(Embed(), texts, tmp_path / "full")
    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        _encode(Embed(fail_after=2), texts, out)
    assert not (out / "index.json").exists() and sorted(_mtimes(out)) == ["part-00000.npy", "part-00001.npy"]
    before = _mtimes(out)
    again = Embed()
    index = _encode(again, texts, out)
    assert len(again.chunks) == 4 and index["parts_computed"] == 4  # parts 2..5 only
    assert {k: v for k, v in _mtimes(out).items() if k in before} == before  # finished parts untouched
    assert np.array_equal(load(out), load(tmp_path / "full")) and load(out).shape == (45, 6)
    assert [r["sha256"] for r in index["shards"]] == [r["sha256"] for r in full["shards"]]
    assert index["key"] == full["key"] and sorted(p.name for p in out.glob("*.json")) == ["index.json"]
    assert "parts_computed" not in json.loads(
        (out / "index.json").read_text()
    )  # the call's, not the folder's
    finished = Embed()  # a finished folder: every part verified and kept
    assert _encode(finished, texts, out)["key"] == full["key"] and finished.chunks == []


def test_a_damaged_part_and_a_killed_writers_temp_file_are_redone(texts: Path, tmp_path: Path) -> None:
    out = tmp_path / "emb"
    _encode(Embed(), texts, out)
    reference = np.array(load(out))
    part = out / "part-00003.npy"
    data = bytearray(part.read_bytes())
    data[-1] ^= 0xFF  # same size and shape, other content: only the sha256 tells
    part.write_bytes(bytes(data))
    (out / ".part-00004.npy.killed.tmp").write_bytes(b"half a file")
    again = Embed()
    _encode(again, texts, out)
    assert len(again.chunks) == 1 and np.array_equal(load(out), reference)
    assert not any(p.name.startswith(".") for p in out.iterdir())


def test_another_input_model_or_option_is_refused_in_one_line(texts: Path, tmp_path: Path) -> None:
    out = tmp_path / "emb"
    with pytest.raises(KeyboardInterrupt):
        _encode(Embed(fail_after=1), texts, out)
    other = tmp_path / "other.txt"
    other.write_text("\n".join(_lines(seed=1)) + "\n")
    cases = [((other,), {}, "input"), ((texts,), {"ingredients": {"model": "x"}}, "model"),
             ((texts,), {"shard_rows": 5}, "shard_rows")]  # fmt: skip
    for (source,), kw, field in cases:
        with pytest.raises(InputError, match=rf"differs in: {field}\).*--overwrite") as err:
            _encode(Embed(), source, out, **kw)
        assert "\n" not in str(err.value)
    assert sorted(_mtimes(out)) == ["part-00000.npy"]  # untouched by the refusals
    fresh = Embed()
    _encode(fresh, other, out, overwrite=True)
    _encode(Embed(), other, tmp_path / "ref")
    assert len(fresh.chunks) == 6 and np.array_equal(load(out), load(tmp_path / "ref"))


def test_stdin_resumes_text_by_text_and_refuses_other_texts(
    texts: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out, lines = tmp_path / "emb", texts.read_text()
    monkeypatch.setattr(sys, "stdin", io.StringIO(lines))
    with pytest.raises(KeyboardInterrupt):
        _encode(Embed(fail_after=3), "-", out)
    monkeypatch.setattr(sys, "stdin", io.StringIO("a different first line\n" + lines))
    with pytest.raises(InputError, match="part-00000.npy of other texts"):
        _encode(Embed(), "-", out)
    monkeypatch.setattr(sys, "stdin", io.StringIO(lines))
    again = Embed()
    _encode(again, "-", out)
    _encode(Embed(), texts, tmp_path / "from-file")
    assert len(again.chunks) == 3 and np.array_equal(load(out), load(tmp_path / "from-file"))


# ---------------------------------------------------------------------------------------------- the command
@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("encode-resume")
    (root / "texts.txt").write_text("\n".join(_lines(60)) + "\n")
    return {"root": root, "texts": root / "texts.txt", "model": make_tiny_bert(root / "bert")}


def _args(s: dict[str, Path], out: Path) -> list[str]:
    return ["encode", str(s["texts"]), "--model", str(s["model"]), "--pooler", "mean", "-o", str(out),
            "--shard-rows", "8", "--batch-size", "8", "--no-progress"]  # fmt: skip


def _recorded(out: Path) -> set[str]:
    """The parts the progress files of a killed run record as finished."""
    done: set[str] = set()
    for path in out.glob("progress*.json"):
        done |= {r["name"] for r in json.loads(path.read_text())["done"].values()}
    return done


@pytest.mark.slow
@pytest.mark.parametrize("nproc", [0, 2], ids=["one-process", "torchrun-2"])
def test_the_command_resumes_after_a_kill(cli: dict[str, Path], nproc: int) -> None:
    reference = cli["root"] / "reference"
    if not reference.exists():
        assert glot(0, *_args(cli, reference)).returncode == 0
    out = cli["root"] / f"killed-{nproc}"
    hook = "1:1" if nproc else "0:3"  # rank 1 after its first part / the one process after three
    killed = glot(nproc, *_args(cli, out), GLOT_TEST_EXIT_AFTER_SHARDS=hook)
    assert killed.returncode != 0 and not (out / "index.json").exists()
    kept = _recorded(out)
    assert kept and len(kept) < 8, kept
    before = {k: v for k, v in _mtimes(out).items() if k in kept}
    rerun = glot(nproc, *_args(cli, out), "--json", str(out) + ".json")
    assert rerun.returncode == 0, failure(rerun.stderr)
    assert json.loads(Path(str(out) + ".json").read_text())["parts_computed"] == 8 - len(kept)
    assert {k: v for k, v in _mtimes(out).items() if k in kept} == before  # not recomputed
    assert load(out).shape == (60, 32) and np.array_equal(load(out), load(reference))  # row for row
