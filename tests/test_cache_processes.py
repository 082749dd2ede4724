"""The cache across real processes: two concurrent builders of one key embed each text once in total and
get identical states; a builder SIGKILLed in the middle of writing a shard resumes to the clean build's
states, leaving no temp or partial files. Children load a tiny random BERT and log every text they embed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from tiny_models import make_tiny_bert  # noqa: E402

pytestmark = pytest.mark.slow

CHILD = r"""
import json, os, sys, time
from pathlib import Path

import numpy as np
import torch

torch.set_num_threads(1)
from glot.backbones.frozen import FrozenBackbone
from glot.cache import build_or_load

model, texts_file, cache_dir, log, out, mode, arg = sys.argv[1:]
texts = json.loads(Path(texts_file).read_text())
bb = FrozenBackbone.from_pretrained(model, dtype="float32")


class Counting:  # the real backbone, logging each text it embeds (one line per text, appended)
    hidden_size, max_length = bb.hidden_size, bb.max_length

    def fingerprint(self):
        return bb.fingerprint()

    @property
    def last_truncation(self):
        return bb.last_truncation

    def iter_packed(self, texts, batch_size=64, progress=True, desc=""):
        for idx, x, ptr in bb.iter_packed(texts, batch_size=batch_size, progress=False):
            with open(log, "a") as fh:
                fh.write("".join(texts[i] + "\n" for i in idx))
            time.sleep(float(arg) if mode == "concurrent" else 0.0)  # keep the lock held a while
            yield idx, x, ptr


if mode == "concurrent":  # barrier: both children start building at (nearly) the same moment
    ready = Path(out).parent.parent / "ready"
    ready.mkdir(exist_ok=True)
    (ready / str(os.getpid())).touch()
    deadline = time.monotonic() + 120
    while len(list(ready.iterdir())) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
if mode == "kill":  # hang half-way through writing shard 2's states: the parent kills us there
    real = np.lib.format.write_array

    def hanging(fh, array, **kw):
        if "shard-00002.npy" in str(getattr(fh, "name", "")):
            fh.write(b"\x93NUMPY half written")
            fh.flush()
            Path(arg).touch()
            time.sleep(600)
        return real(fh, array, **kw)

    np.lib.format.write_array = hanging
cached = build_or_load(Counting(), texts, cache_dir=cache_dir, dtype="float32", batch_size=2, shard_size=4,
                       progress=False)
x, ptr = cached.packed(range(len(texts)))
np.savez(out, x=x.numpy(), ptr=ptr.numpy(), path=str(cached.path))
"""


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("procs")
    texts = [f"sentence {i} : " + " ".join(["the quick brown fox", "a cat", "ok"][i % 3] for _ in range(i % 4 + 1))
             for i in range(24)]  # fmt: skip
    (root / "texts.json").write_text(json.dumps(texts))
    (root / "child.py").write_text(CHILD)
    return {"root": root, "model": make_tiny_bert(root / "bert"), "texts": root / "texts.json"}


def _child(s: dict[str, Path], cache: Path, name: str, mode: str, arg: str = "0") -> subprocess.Popen[bytes]:
    work = s["root"] / name
    work.mkdir(exist_ok=True)
    argv = [sys.executable, str(s["root"] / "child.py"), str(s["model"]), str(s["texts"]), str(cache),
            str(work / "log.txt"), str(work / "out.npz"), mode, arg]  # fmt: skip
    return subprocess.Popen(
        argv, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"}, stderr=subprocess.PIPE
    )


def _finish(proc: subprocess.Popen[bytes]) -> None:
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()[-2000:]


def _logged(s: dict[str, Path], name: str) -> list[str]:
    log = s["root"] / name / "log.txt"
    return log.read_text().splitlines() if log.exists() else []


def _result(s: dict[str, Path], name: str) -> dict[str, np.ndarray]:
    with np.load(s["root"] / name / "out.npz") as f:
        return {k: f[k] for k in f.files}


def _leftovers(cache: Path) -> list[str]:
    bad = [p for p in cache.rglob("*") if p.name.endswith((".tmp", ".partial")) or ".trash-" in p.name]
    return [str(p.relative_to(cache)) for p in bad]


def test_two_concurrent_builders_embed_each_text_once(setup: dict[str, Path]) -> None:
    cache = setup["root"] / "cache-concurrent"
    procs = [_child(setup, cache, name, "concurrent", "0.2") for name in ("a", "b")]
    for proc in procs:
        _finish(proc)
    texts = json.loads(setup["texts"].read_text())
    embedded = _logged(setup, "a") + _logged(setup, "b")
    assert sorted(embedded) == sorted(texts)  # every text exactly once, over both processes together
    a, b = _result(setup, "a"), _result(setup, "b")
    assert str(a["path"]) == str(b["path"])
    assert np.array_equal(a["ptr"], b["ptr"]) and np.array_equal(a["x"], b["x"])
    assert _leftovers(cache) == []


def test_sigkill_mid_write_then_rerun_equals_clean_build(setup: dict[str, Path]) -> None:
    cache, marker = setup["root"] / "cache-kill", setup["root"] / "hanging"
    proc = _child(setup, cache, "killed", "kill", str(marker))
    deadline = time.monotonic() + 300
    while not marker.exists():  # shards 0 and 1 are done and shard 2's temp file is half written
        assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
        assert time.monotonic() < deadline, "the child never reached shard 2"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    (partial,) = cache.glob("*.partial")
    assert len(json.loads((partial / "progress.json").read_text())["done"]) == 2
    assert list(partial.glob(".shard-00002.npy.*.tmp")), "the kill should leave the half-written temp file"

    _finish(_child(setup, cache, "resumed", "normal"))
    _finish(_child(setup, setup["root"] / "cache-clean", "clean", "normal"))
    texts = json.loads(setup["texts"].read_text())
    assert sorted(_logged(setup, "resumed")) == sorted(texts[8:])  # shards 0 and 1 were kept
    resumed, clean = _result(setup, "resumed"), _result(setup, "clean")
    assert np.array_equal(resumed["ptr"], clean["ptr"]) and np.array_equal(resumed["x"], clean["x"])
    assert _leftovers(cache) == []
    entry = Path(str(resumed["path"]))
    manifest = json.loads((entry / "manifest.json").read_text())
    assert {p.name for p in entry.iterdir()} == {"manifest.json", "offsets.npy",
                                                 *(r["name"] for r in manifest["shards"])}  # fmt: skip
