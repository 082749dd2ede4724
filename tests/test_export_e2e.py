"""End to end: what training measured is what every export computes.

An STS run is trained the way a user trains one (``glot train --task pairs.csv`` with the real MiniLM backbone
on a 0-1-scored similarity CSV built from real tweets), then its eval pairs are scored through each export:
``glot.Encoder.from_pretrained(run)`` and a hub folder saved from it, ``glot encode --run`` (cosine of the saved
vectors), ``GLOTMTEBEncoder`` through ``mteb.evaluate`` on an offline STS task of the same pairs, and
``run_to_sentence_transformer`` reloaded by sentence-transformers. Each must give the run's reported eval
Spearman (within 0.01): the trained STS projection P (y = cos(P z_a, P z_b)) is part of the exported geometry.
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from glot.cli import main
from glot.export.encoder import Encoder

TOLERANCE = 0.01


def _tweets_by_sentiment() -> dict[int, list[str]]:
    from glot.data.tweets import default_path, read_tweets

    try:
        texts, labels = read_tweets(default_path())
    except FileNotFoundError as err:
        pytest.skip(str(err))
    by: dict[int, list[str]] = {0: [], 1: [], 2: []}
    for text, label in zip(texts, labels.tolist(), strict=True):
        clean = " ".join(text.split())  # one line per text for `glot encode`
        if 20 <= len(clean) <= 140:
            by[int(label)].append(clean)
    return by


def _score(a: int, b: int) -> float:
    """1.0 same sentiment, 0.5 neutral (1) against a polar one, 0.0 negative against positive."""
    if a == b:
        return 1.0
    return 0.5 if 1 in (a, b) else 0.0


def write_sts_csv(path: Path, n_train: int = 400, n_eval: int = 120, seed: int = 0) -> list[dict[str, Any]]:
    """A 0-1-scored pair CSV (columns text, text_pair, score, split) from the offline tweets; returns its rows."""
    by = _tweets_by_sentiment()
    rng = random.Random(seed)
    rows = []
    for split, n in (("train", n_train), ("eval", n_eval)):
        for _ in range(n):
            a, b = rng.randrange(3), rng.randrange(3)
            rows.append({"text": rng.choice(by[a]), "text_pair": rng.choice(by[b]), "score": _score(a, b),
                         "split": split})  # fmt: skip
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["text", "text_pair", "score", "split"])
        writer.writeheader()
        writer.writerows(rows)
    return rows


def _cosine_spearman(a: np.ndarray, b: np.ndarray, scores: list[float]) -> float:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return float(spearmanr((a * b).sum(axis=1), scores).statistic)


#: (backbone --dtype, --head-dtype) of the run: both precisions on every machine, whatever ``auto`` picks on its
#: CPU (bf16 where it has avx512_bf16 / AMX). sentence-transformers casts every module after the Transformer
#: to the backbone's dtype, so the bf16 run's export pools with bf16 weights.
PRECISIONS = {"fp32": ("float32", "fp32"), "bf16": ("bfloat16", "bf16")}


@pytest.fixture(scope="module", params=list(PRECISIONS))
def sts_run(
    minilm_path: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> dict[str, Any]:
    root = tmp_path_factory.mktemp(f"sts-{request.param}")
    rows = write_sts_csv(root / "pairs.csv")
    dtype, head_dtype = PRECISIONS[request.param]
    # lr pinned: the check that the projection matters needs it trained well away from its init, whatever
    # the package default becomes (at lr 1e-3 and 4 epochs the two geometries differ by only 0.004)
    code = main(["train", "--task", str(root / "pairs.csv"), "--model", "minilm", "--epochs", "4", "--lr", "3e-3",
                 "--max-length", "64", "--dtype", dtype, "--head-dtype", head_dtype,
                 "--cache-dir", str(root / "cache"), "--out", str(root / "run"), "--no-progress"])  # fmt: skip
    assert code == 0
    run = root / "run" / "seed-0"
    metrics = json.loads((run / "metrics.json").read_text())
    eval_rows = [r for r in rows if r["split"] == "eval"]
    assert metrics["sizes"]["eval"] == len(eval_rows)
    return {"precision": request.param, "root": root, "run": run, "reported": float(metrics["eval"]), "a": [r["text"] for r in eval_rows],
            "b": [r["text_pair"] for r in eval_rows], "scores": [r["score"] for r in eval_rows]}  # fmt: skip


def _encoder_spearman(encoder: Encoder, data: dict[str, Any]) -> float:
    a = np.asarray(encoder.encode(data["a"], progress=False))
    b = np.asarray(encoder.encode(data["b"], progress=False))
    return _cosine_spearman(a, b, data["scores"])


def test_encoder_and_hub_folder_reproduce_the_run(sts_run: dict[str, Any]) -> None:
    encoder = Encoder.from_pretrained(sts_run["run"])
    assert encoder.transform is not None and encoder.out_dim == encoder.transform.out_features
    got = _encoder_spearman(encoder, sts_run)
    assert abs(got - sts_run["reported"]) < TOLERANCE
    untrained_geometry = Encoder(encoder.backbone, encoder.pooler)  # the defect: the projection dropped
    assert abs(_encoder_spearman(untrained_geometry, sts_run) - sts_run["reported"]) > TOLERANCE
    folder = encoder.save_pretrained(sts_run["root"] / "hub")
    assert (folder / "transform" / "model.safetensors").is_file()
    assert "projection (896 -> 896" in (folder / "README.md").read_text()
    assert abs(_encoder_spearman(Encoder.from_pretrained(folder), sts_run) - sts_run["reported"]) < TOLERANCE


def test_glot_encode_reproduces_the_run(sts_run: dict[str, Any], tmp_path: Path) -> None:
    vectors = []
    for column in ("a", "b"):
        (tmp_path / f"{column}.txt").write_text("\n".join(sts_run[column]) + "\n", encoding="utf-8")
        out = tmp_path / f"{column}.npy"
        code = main(["encode", str(tmp_path / f"{column}.txt"), "--run", str(sts_run["root"] / "run"),
                     "--seed", "0", "-o", str(out), "--no-progress"])  # fmt: skip
        assert code == 0
        vectors.append(np.load(out))
    assert vectors[0].shape == (len(sts_run["a"]), 384 + 2 * 256)  # GLOT JK-cat width; P keeps it
    got = _cosine_spearman(vectors[0], vectors[1], sts_run["scores"])
    assert abs(got - sts_run["reported"]) < TOLERANCE


def test_mteb_encoder_reproduces_the_run(sts_run: dict[str, Any]) -> None:
    mteb = pytest.importorskip("mteb")
    from datasets import Dataset, DatasetDict
    from mteb.abstasks.sts import AbsTaskSTS
    from mteb.abstasks.task_metadata import TaskMetadata

    from glot.integrations.mteb import GLOTMTEBEncoder

    try:
        from tests.test_mteb_integration import COMMON
    except ImportError:  # pytest run from inside tests/
        from test_mteb_integration import COMMON  # type: ignore[no-redef]

    class PairsSTS(AbsTaskSTS):
        metadata = TaskMetadata(type="STS", name="GlotTweetPairsSTS", main_score="cosine_spearman", **COMMON)
        min_score = 0
        max_score = 1

        def load_data(self, num_proc: int | None = None, **kwargs: Any) -> None:
            cols = {"sentence1": sts_run["a"], "sentence2": sts_run["b"], "score": sts_run["scores"]}
            self.dataset = DatasetDict({"test": Dataset.from_dict(cols)})
            self.data_loaded = True

    model = GLOTMTEBEncoder.from_pretrained(sts_run["run"])
    result = mteb.evaluate(model, [PairsSTS()], cache=None, show_progress_bar=False)
    assert abs(result.task_results[0].get_score() - sts_run["reported"]) < TOLERANCE


def test_sentence_transformer_export_reproduces_the_run(sts_run: dict[str, Any]) -> None:
    pytest.importorskip("sentence_transformers")
    from sentence_transformers import SentenceTransformer

    from glot.integrations.sentence_transformers import run_to_sentence_transformer

    out = run_to_sentence_transformer(sts_run["run"], sts_run["root"] / "st")
    model = SentenceTransformer(str(out), trust_remote_code=True, device="cpu")
    assert any(type(m).__name__ == "Dense" for m in model)  # the projection P travels as a Dense module
    with torch.no_grad():
        a = model.encode(sts_run["a"], convert_to_numpy=True)
        b = model.encode(sts_run["b"], convert_to_numpy=True)
    assert abs(_cosine_spearman(a, b, sts_run["scores"]) - sts_run["reported"]) < TOLERANCE
