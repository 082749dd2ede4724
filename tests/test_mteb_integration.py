"""MTEB integration offline: GLOTMTEBEncoder on local STS and classification tasks, its ModelMeta, the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from optional import require  # noqa: E402

require("mteb", "pip install 'glot-pooling[mteb]'")

import mteb  # noqa: E402
from datasets import Dataset, DatasetDict  # noqa: E402
from mteb.abstasks.classification import AbsTaskClassification  # noqa: E402
from mteb.abstasks.sts import AbsTaskSTS  # noqa: E402
from mteb.abstasks.task_metadata import TaskMetadata  # noqa: E402

import glot  # noqa: E402
from glot.backbones.frozen import FrozenBackbone  # noqa: E402
from glot.export.encoder import Encoder  # noqa: E402
from glot.integrations.mteb import GLOTMTEBEncoder  # noqa: E402

COMMON: dict[str, Any] = {
    "description": "A tiny local task for offline tests of glot's MTEB integration.",
    "reference": "https://arxiv.org/abs/2603.03389",
    "dataset": {"path": "glot/local-test", "revision": "0"},
    "category": "t2t",
    "eval_splits": ["test"],
    "eval_langs": ["eng-Latn"],
    "date": ("2024-01-01", "2024-12-31"),
    "dialect": [],
    "domains": ["Written"],
    "task_subtypes": [],
    "license": "mit",
    "annotations_creators": "derived",
    "modalities": ["text"],
    "sample_creation": "created",
    "bibtex_citation": "",
}
STS = [
    ("a man is playing a guitar", "a man plays the guitar", 4.8),
    ("a dog runs in the park", "a cat sleeps on the sofa", 0.6),
    ("the stock market fell sharply", "shares dropped a lot today", 4.0),
    ("she is cooking pasta", "a woman is making dinner", 3.2),
    ("kids play football outside", "the weather is cold in winter", 0.2),
    ("the train was late again", "the train arrived late", 4.4),
]
ANIMALS = ["the cat purrs", "a dog barks loudly", "the horse runs", "birds sing at dawn", "a cow eats grass",
           "the fish swims", "a lion roars", "the sheep graze", "an owl hoots", "the rabbit hops"]  # fmt: skip
FINANCE = ["stocks fell today", "the bank raised rates", "bond yields rose", "the market rallied",
           "inflation is high", "profits beat forecasts", "the euro weakened", "oil prices jumped",
           "the fund lost money", "taxes will rise"]  # fmt: skip


class LocalSTS(AbsTaskSTS):
    metadata = TaskMetadata(type="STS", name="GlotLocalSTS", main_score="cosine_spearman", **COMMON)
    min_score = 0
    max_score = 5

    def load_data(self, num_proc: int | None = None, **kwargs: Any) -> None:
        cols = {"sentence1": [a for a, _, _ in STS], "sentence2": [b for _, b, _ in STS],
                "score": [s for _, _, s in STS]}  # fmt: skip
        self.dataset = DatasetDict({"test": Dataset.from_dict(cols)})
        self.data_loaded = True


class LocalClassification(AbsTaskClassification):
    metadata = TaskMetadata(
        type="Classification", name="GlotLocalClassification", main_score="accuracy", **COMMON
    )
    n_experiments = 2
    samples_per_label = 6

    def load_data(self, num_proc: int | None = None, **kwargs: Any) -> None:
        def split(lo: int, hi: int) -> Dataset:
            texts = ANIMALS[lo:hi] + FINANCE[lo:hi]
            return Dataset.from_dict({"text": texts, "label": [0] * (hi - lo) + [1] * (hi - lo)})

        self.dataset = DatasetDict({"train": split(0, 6), "test": split(6, 10)})
        self.data_loaded = True


@pytest.fixture(scope="module")
def encoder(minilm_path: str) -> Encoder:
    torch.manual_seed(0)
    backbone = FrozenBackbone.from_pretrained(minilm_path, dtype="float32", device="cpu", max_length=64)
    return Encoder(backbone, glot.build_pooler("glot", 384, tau=0.3, hidden_dim=32))


def test_model_meta(encoder: Encoder) -> None:
    model = GLOTMTEBEncoder(
        encoder, languages=["eng-Latn"], license="apache-2.0", training_datasets={"MSMARCO"}
    )
    meta = model.mteb_model_meta
    assert meta is not None
    assert meta.name == f"glot/{Path(encoder.backbone.name).name}-glot"
    assert meta.embed_dim == encoder.out_dim == 384 + 2 * 32
    assert meta.similarity_fn_name is not None and meta.similarity_fn_name.value == "cosine"
    assert meta.n_parameters == 22_713_216 + encoder.pooler.num_parameters()  # type: ignore[attr-defined]
    assert meta.open_weights and meta.framework == ["PyTorch"] and meta.max_tokens == 64
    assert len(meta.revision or "") == 12 and meta.citation and "2603.03389" in meta.citation
    torch.manual_seed(1)  # other weights than the fixture's pooler (built after manual_seed(0))
    other = GLOTMTEBEncoder(Encoder(encoder.backbone, glot.build_pooler("glot", 384, tau=0.3, hidden_dim=32)))
    assert other.mteb_model_meta is not None and other.mteb_model_meta.revision != meta.revision


def test_encode_is_normalised_and_ordered(encoder: Encoder) -> None:
    from torch.utils.data import DataLoader

    texts = [a for a, _, _ in STS]
    loader = DataLoader(Dataset.from_dict({"text": texts}), batch_size=4)
    model = GLOTMTEBEncoder(encoder)
    out = model.encode(loader, task_metadata=LocalSTS.metadata, hf_split="test", hf_subset="default")
    assert out.dtype == np.float32 and out.shape == (len(texts), encoder.out_dim)
    np.testing.assert_allclose(out, encoder.encode(texts, progress=False, normalize=True), atol=1e-6)


def test_mteb_evaluate_local_sts_and_classification(encoder: Encoder) -> None:
    model = GLOTMTEBEncoder(encoder, languages=["eng-Latn"])
    result = mteb.evaluate(model, [LocalSTS(), LocalClassification()], cache=None, show_progress_bar=False)
    scores = {r.task_name: r.get_score() for r in result.task_results}
    assert set(scores) == {"GlotLocalSTS", "GlotLocalClassification"}
    assert -1.0 <= scores["GlotLocalSTS"] <= 1.0
    assert scores["GlotLocalClassification"] >= 0.75  # topic separation is easy even for an untrained pooler


def test_cli_mteb_offline(encoder: Encoder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from glot.cli import main
    from glot.export import hub

    hub.save_pretrained(encoder, tmp_path / "enc")
    monkeypatch.setattr(mteb, "get_tasks", lambda tasks: [LocalSTS()] if tasks == ["GlotLocalSTS"] else [])
    out = tmp_path / "res.json"
    code = main(["mteb", "--run", str(tmp_path / "enc"), "--tasks", "GlotLocalSTS", "--json", str(out),
                 "--out", str(tmp_path / "cache")])  # fmt: skip
    assert code == 0
    data = json.loads(out.read_text())
    assert [r["task"] for r in data["results"]] == ["GlotLocalSTS"] and data["results"][0][
        "metric"
    ] == "cosine_spearman"
    assert any((tmp_path / "cache").rglob("GlotLocalSTS.json"))
    assert main(["mteb", "--run", str(tmp_path / "enc"), "--tasks", " , "]) == 2


def test_cli_mteb_hub_task_offline_is_one_line(
    encoder: Encoder, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from glot.cli import main
    from glot.export import hub

    hub.save_pretrained(encoder, tmp_path / "enc")
    code = main(["mteb", "--run", str(tmp_path / "enc"), "--tasks", "STS12"])  # HF_HUB_OFFLINE=1 (conftest)
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    (line,) = [x for x in err.splitlines() if x.startswith("glot:")]
    assert "'STS12'" in line and "Hugging Face Hub" in line and "docs/integrations.md" in line


def test_cli_mteb_without_mteb_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import sys

    from glot.cli import main

    monkeypatch.setitem(sys.modules, "mteb", None)
    assert main(["mteb", "--run", str(tmp_path), "--tasks", "STS12"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and 'pip install "glot-pooling[mteb]"' in err
