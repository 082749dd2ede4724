"""Model cards: Hub front matter (license, base_model, datasets, tags, metrics, model-index), no Python dict or
local path in the text, and usage snippets that run as copied (saved encoder and sentence-transformers export)."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

import glot
from glot.backbones.frozen import FrozenBackbone
from glot.cli import main
from glot.export import hub
from glot.export.card import model_card
from glot.export.encoder import Encoder
from glot.training.heads import build_head

sys.path.insert(0, str(Path(__file__).parent))
from optional import require  # noqa: E402
from tiny_models import make_tiny_bert  # noqa: E402

TEXTS = ["A sentence.", "Another one."]
MINILM = "sentence-transformers/all-MiniLM-L6-v2"


def _front_matter(card: str) -> dict[str, Any]:
    match = re.match(r"^---\n(.*?)\n---\n", card, re.S)
    assert match, card[:300]
    meta = yaml.safe_load(match.group(1))
    assert isinstance(meta, dict)
    return meta


def _snippet(card: str, language: str, folder: Path) -> str:
    """The card's first ``language`` code block with the placeholder path replaced by ``folder``."""
    block = re.search(rf"```{language}\n(.*?)```", card, re.S)
    assert block, card
    return block.group(1).replace("path/to/this/folder", str(folder))


def _no_dict_or_path(card: str, *paths: Path) -> None:
    assert "{'" not in card and "': " not in card, card  # no Python repr
    for path in paths:
        assert str(path) not in card, path


@pytest.fixture(scope="module")
def minilm_saved(minilm_path: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Encoder, Path]:
    torch.manual_seed(0)
    # the zoo alias, as `glot train --model minilm` loads it: the reference records the hub id
    backbone = FrozenBackbone.from_pretrained("minilm", dtype="float32", device="cpu", max_length=32)
    encoder = Encoder(backbone, glot.build_pooler("glot", backbone.hidden_size, tau=0.3, hidden_dim=16))
    info = {"task": "sst2", "data": {"source": "nyu-mll/glue", "path": "/home/someone/private/sst2.csv"},
            "metrics": {"val accuracy": 0.8125, "eval accuracy": 0.75}, "sizes": {"train": 200, "eval": 64},
            "hyperparameters": {"lr": 0.01, "cache_dir": "/home/someone/.cache/glot"}}  # fmt: skip
    head = build_head("single", encoder.out_dim, num_labels=2)
    folder = hub.save_pretrained(
        encoder, tmp_path_factory.mktemp("enc") / "model", head=head, training_info=info
    )
    return encoder, folder


def test_saved_card_front_matter(minilm_saved: tuple[Encoder, Path]) -> None:
    _, folder = minilm_saved
    card = (folder / "README.md").read_text()
    meta = _front_matter(card)
    assert meta["license"] == "apache-2.0" and meta["library_name"] == "glot-pooling"
    assert meta["base_model"] == MINILM and meta["datasets"] == ["nyu-mll/glue"]
    assert "glot" in meta["tags"] and meta["metrics"] == ["accuracy"]
    (result,) = meta["model-index"][0]["results"]
    assert result["task"]["type"] == "text-classification" and result["dataset"]["type"] == "nyu-mll/glue"
    assert result["metrics"] == [
        {"type": "accuracy", "value": 0.75, "name": "eval accuracy"}
    ]  # the reported one
    assert f"base model `{MINILM}` keeps its own licence: Apache-2.0" in card
    _no_dict_or_path(card, Path("/home/someone"), Path(str(glot.__file__)).parents[2])
    assert "task `sst2` from `nyu-mll/glue` (train: 200, eval: 64)" in card


def test_saved_card_usage_runs_as_copied(minilm_saved: tuple[Encoder, Path]) -> None:
    encoder, folder = minilm_saved
    card = (folder / "README.md").read_text()
    assert _snippet(card, "bash", folder).strip() == "pip install glot-pooling"
    scope: dict[str, Any] = {}
    exec(_snippet(card, "python", folder), scope)  # noqa: S102 - the card's own snippet
    want = encoder.encode(TEXTS, normalize=True, progress=False)
    np.testing.assert_allclose(scope["vectors"], want, atol=1e-6)
    assert scope["vectors"].shape == (2, encoder.out_dim)


def test_card_of_a_local_backbone_names_no_path_and_no_base_model(tmp_path: Path) -> None:
    tiny = make_tiny_bert(tmp_path / "models" / "bert")
    config = {"backbone": {"name_or_path": str(tiny), "hub_id": None, "layer": -1, "dtype": "float32"},
              "pooler": {"name": "mean", "trainable_parameters": 0, "options": None}, "embedding_dim": 32,
              "training": {"task": "stress", "data": {"seed": 0, "path": str(tmp_path / "x.csv")}}}  # fmt: skip
    card = model_card(config)
    meta = _front_matter(card)
    assert "base_model" not in meta and "datasets" not in meta and "model-index" not in meta
    assert meta["license"] == "apache-2.0"
    _no_dict_or_path(card, tmp_path)
    assert "# glot encoder on bert" in card and "Data: task `stress`." in card


def test_sentence_transformers_export_card(tmp_path: Path) -> None:
    require("sentence_transformers", "pip install 'glot-pooling[st]'")
    from glot.integrations.sentence_transformers import run_to_sentence_transformer

    tiny = make_tiny_bert(tmp_path / "models" / "bert")
    run = tmp_path / "run"
    argv = ["train", "--model", str(tiny), "--dtype", "float32", "--task", "stress", "--task-option", "seq_len=16", "--n-train", "40",
            "--n-eval", "16", "--max-length", "40", "--cache-dir", str(tmp_path / "cache"), "--pooler", "glot",
            "--hidden-dim", "8", "--epochs", "1", "--out", str(run), "--quiet"]  # fmt: skip
    assert main(argv) == 0
    out = run_to_sentence_transformer(run / "seed-0", tmp_path / "st")
    card = (out / "README.md").read_text()
    meta = _front_matter(card)
    assert meta["library_name"] == "sentence-transformers" and meta["license"] == "apache-2.0"
    assert "base_model" not in meta  # a local random backbone has no hub id
    (result,) = meta["model-index"][0]["results"]
    assert [m["name"] for m in result["metrics"]] == ["eval accuracy"]
    assert result["task"]["type"] == "text-classification"  # from the metric: the run's head classifies
    _no_dict_or_path(card, tmp_path)
    assert _snippet(card, "bash", out).strip() == "pip install 'glot-pooling[st]'"
    code = _snippet(card, "python", out)
    assert "trust_remote_code=True" in code
    scope: dict[str, Any] = {}
    exec(code, scope)  # noqa: S102 - the card's own snippet
    want = Encoder.from_pretrained(run / "seed-0").encode(TEXTS, normalize=True, progress=False)
    np.testing.assert_allclose(scope["embeddings"], want, atol=1e-5)  # the export computes what the run does
    assert tuple(scope["similarities"].shape) == (2, 2) and f"# (2, {want.shape[1]})" in code
