"""glot.export.hub: save_pretrained / from_pretrained round trip, run folders, model card, push_to_hub file list."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import glot
from glot.backbones.frozen import FrozenBackbone
from glot.backbones.reference import resolve_local
from glot.export import hub
from glot.export.encoder import Encoder
from glot.training.heads import ContrastiveHead

TEXTS = [
    "the delivery contains not keys",
    "A quick brown fox jumps over the lazy dog.",
    "ok",
    "graphs over tokens",
]
SAVED_FILES = [
    "README.md",
    "glot_config.json",
    "head.safetensors",
    "head_config.json",
    "pooler/model.safetensors",
    "pooler/pooler_config.json",
]


@pytest.fixture(scope="module")
def encoder(minilm_path: str) -> Encoder:
    torch.manual_seed(0)
    backbone = FrozenBackbone.from_pretrained(minilm_path, dtype="float32", device="cpu", max_length=64)
    pooler = glot.build_pooler("glot", backbone.hidden_size, tau=0.3, hidden_dim=32)
    return Encoder(backbone, pooler)


@pytest.fixture(scope="module")
def saved(encoder: Encoder, tmp_path_factory: pytest.TempPathFactory) -> Path:
    head = ContrastiveHead(encoder.out_dim)
    info = {
        "data": "MS MARCO (query, positive) pairs",
        "metrics": {"val_mrr@10": 0.3125},
        "hyperparameters": {"lr": 2e-4},
    }
    return hub.save_pretrained(
        encoder, tmp_path_factory.mktemp("enc") / "model", head=head, training_info=info
    )


def test_round_trip_gives_identical_embeddings(encoder: Encoder, saved: Path) -> None:
    loaded = hub.from_pretrained(saved)
    want = encoder.encode(TEXTS, progress=False)
    got = loaded.encode(TEXTS, progress=False)
    np.testing.assert_array_equal(got, want)
    assert loaded.backbone.max_length == 64 and loaded.backbone.dtype == torch.float32


def test_saved_folder_layout_config_and_head(encoder: Encoder, saved: Path) -> None:
    assert hub.upload_files(saved) == SAVED_FILES
    config = json.loads((saved / hub.CONFIG_NAME).read_text())
    ref = config["backbone"]
    assert ref["name_or_path"] == encoder.backbone.name
    assert {k: ref[k] for k in ("dtype", "layer", "max_length", "padding_side", "append_eos", "prompt")} == {
        "dtype": "float32", "layer": -1, "max_length": 64, "padding_side": "right", "append_eos": False,
        "prompt": None,
    }  # fmt: skip
    assert config["pooler"]["name"] == "glot" and config["embedding_dim"] == encoder.out_dim
    head = hub.load_head(saved)
    assert isinstance(head, ContrastiveHead) and head.temperature == pytest.approx(0.07)


def test_model_card_has_usage_metrics_and_citation(saved: Path) -> None:
    card = (saved / "README.md").read_text()
    for needle in ("library_name: glot-pooling", "from glot.export.hub import from_pretrained", "val_mrr@10", "0.3125",
                   "MS MARCO", "arXiv", "2603.03389", "@inproceedings"):  # fmt: skip
        assert needle in card, needle


def test_push_to_hub_dry_run_lists_files_and_skips_hidden(saved: Path) -> None:
    (saved / ".glot_config.json.123.tmp").write_text("partial")
    try:
        assert hub.push_to_hub(saved, "me/glot-minilm", dry_run=True) == SAVED_FILES
    finally:
        (saved / ".glot_config.json.123.tmp").unlink()


@pytest.mark.filterwarnings("ignore:the backbone is recorded as the local path")
def test_push_to_hub_calls_hf_api(saved: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub

    calls: list[tuple[str, dict]] = []

    class FakeApi:
        def __init__(self, token: str | None = None) -> None:
            calls.append(("init", {"token": token}))

        def create_repo(self, **kw: object) -> None:
            calls.append(("create_repo", kw))

        def upload_folder(self, **kw: object) -> None:
            calls.append(("upload_folder", kw))

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    files = hub.push_to_hub(saved, "me/glot-minilm", private=True, token="t")
    assert files == SAVED_FILES
    (_, create), (_, upload) = calls[1], calls[2]
    assert create["repo_id"] == "me/glot-minilm" and create["private"] is True and create["exist_ok"] is True
    assert upload["allow_patterns"] == SAVED_FILES and upload["folder_path"] == str(saved)
    assert 'from_pretrained("me/glot-minilm")' in (saved / "README.md").read_text()


def test_save_without_head_removes_stale_head(encoder: Encoder, tmp_path: Path) -> None:
    encoder.save_pretrained(
        tmp_path, head=ContrastiveHead(encoder.out_dim)
    )  # Encoder delegates to glot.export.hub
    hub.save_pretrained(encoder, tmp_path)
    assert hub.upload_files(tmp_path) == [f for f in SAVED_FILES if not f.startswith("head")]
    assert hub.load_head(tmp_path) is None


def test_training_run_folder_loads(encoder: Encoder, minilm_path: str, tmp_path: Path) -> None:
    run = tmp_path / "seed-0"
    encoder.pooler.save_pretrained(run / "pooler")  # type: ignore[attr-defined]
    run_config = {  # the shape glot.training.loop writes: backbone = glot.export.hub.backbone_reference(backbone)
        "backbone": hub.backbone_reference(encoder.backbone),
        "task": {"name": "msmarco", "metric": "mrr@10", "info": "MS MARCO pairs"},
        "train": {"lr": 2e-4, "epochs": 2, "pooler": "glot"},
    }
    (run / "run_config.json").write_text(json.dumps(run_config))
    (run / "metrics.json").write_text(json.dumps({"metric": "mrr@10", "val": 0.25, "eval": 0.5}))
    loaded = hub.from_pretrained(run)
    np.testing.assert_array_equal(
        loaded.encode(TEXTS[:2], progress=False), encoder.encode(TEXTS[:2], progress=False)
    )
    info = hub.run_training_info(run)
    assert (
        info["metrics"] == {"val mrr@10": 0.25, "eval mrr@10": 0.5} and info["hyperparameters"]["epochs"] == 2
    )
    (tmp_path / "seed-1").mkdir()
    (tmp_path / "seed-1" / "run_config.json").write_text(json.dumps(run_config))
    with pytest.raises(ValueError, match="several seeds"):
        hub.from_pretrained(tmp_path)


def test_run_config_with_backbone_name_and_kwargs(encoder: Encoder, minilm_path: str, tmp_path: Path) -> None:
    encoder.pooler.save_pretrained(tmp_path / "pooler")  # type: ignore[attr-defined]
    (tmp_path / "run_config.json").write_text(
        json.dumps({"backbone": minilm_path, "dtype": "float32", "max_length": 64})
    )
    with pytest.raises(FileNotFoundError, match="unfinished run"):  # exports read finished runs only
        hub.read_reference(tmp_path)
    (tmp_path / "metrics.json").write_text("{}")
    ref, pooler_dir = hub.read_reference(tmp_path)
    assert (
        ref["name_or_path"] == minilm_path and ref["max_length"] == 64 and pooler_dir == tmp_path / "pooler"
    )


def test_push_warns_about_local_backbone_path(saved: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub

    class Quiet:
        def __init__(self, token: str | None = None) -> None: ...
        def create_repo(self, **kw: object) -> None: ...
        def upload_folder(self, **kw: object) -> None: ...

    monkeypatch.setattr(huggingface_hub, "HfApi", Quiet)
    with pytest.warns(UserWarning, match="backbone_name"):
        hub.push_to_hub(saved, "me/glot-minilm")


def test_errors_name_the_problem(encoder: Encoder, saved: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="neither a saved glot encoder"):
        Encoder.from_pretrained(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="glot_config.json"):
        hub.from_pretrained(tmp_path)
    config = json.loads((saved / hub.CONFIG_NAME).read_text())
    config["backbone"]["num_layers"] = 12
    (tmp_path / hub.CONFIG_NAME).write_text(json.dumps(config))
    with pytest.raises(ValueError, match="num_layers"):
        hub.load_backbone(config["backbone"])


def test_hub_id_resolves_offline_to_a_packaged_copy_with_the_same_weights(
    encoder: Encoder, tmp_path: Path
) -> None:
    hub_id = (
        "sentence-transformers/all-MiniLM-L6-v2"  # packaged here as the zoo model `minilm`; HF_HUB_OFFLINE=1
    )
    saved = hub.save_pretrained(encoder, tmp_path / "enc", backbone_name=hub_id)
    loaded = hub.from_pretrained(saved)
    assert (
        loaded.backbone.name == hub_id
    )  # the identity it was saved under, served by the verified local copy
    np.testing.assert_array_equal(loaded.encode(TEXTS, progress=False), encoder.encode(TEXTS, progress=False))
    config = json.loads((saved / hub.CONFIG_NAME).read_text())
    config["backbone"]["fingerprint"]["weights"]["sha256"] = "0" * 64  # other weights: no local copy matches
    (saved / hub.CONFIG_NAME).write_text(json.dumps(config))
    assert resolve_local(config["backbone"]) is None
    with pytest.raises(OSError):  # goes to the Hub, which is offline: never a silent stand-in
        hub.from_pretrained(saved)


def test_saved_paths_never_leave_the_folder(saved: Path, tmp_path: Path) -> None:
    import shutil

    folder = tmp_path / "copy"
    shutil.copytree(saved, folder)
    config = json.loads((folder / hub.CONFIG_NAME).read_text())
    outside = tmp_path / "elsewhere"
    shutil.copytree(saved / "pooler", outside)
    for bad in ("../elsewhere", str(outside)):
        (folder / hub.CONFIG_NAME).write_text(
            json.dumps({**config, "pooler": {**config["pooler"], "path": bad}})
        )
        with pytest.raises(ValueError, match="pooler path"):
            hub.from_pretrained(folder)
    (folder / hub.CONFIG_NAME).write_text(json.dumps(config))
    shutil.rmtree(folder / "pooler")
    (folder / "pooler").symlink_to(outside)  # a symlink out of the folder is refused the same way
    with pytest.raises(ValueError, match="leaves the folder"):
        hub.read_reference(folder)
    (folder / "pooler").unlink()
    shutil.copytree(outside, folder / "pooler")
    (folder / "pooler" / "model.safetensors").unlink()  # so is a file inside the pooler folder linking out
    (folder / "pooler" / "model.safetensors").symlink_to(outside / "model.safetensors")
    with pytest.raises(ValueError, match="leaves the folder"):
        hub.from_pretrained(folder)


def test_run_folder_paths_never_leave_the_folder(encoder: Encoder, tmp_path: Path) -> None:
    run, outside = tmp_path / "run", tmp_path / "outside"
    encoder.pooler.save_pretrained(outside)  # type: ignore[attr-defined]
    run.mkdir()
    (run / "run_config.json").write_text(json.dumps({"backbone": hub.backbone_reference(encoder.backbone)}))
    (run / "metrics.json").write_text("{}")
    (run / "pooler").symlink_to(outside)
    with pytest.raises(ValueError, match="leaves the folder"):
        hub.read_reference(run)
    (run / "pooler").unlink()
    (run / "head_config.json").symlink_to(tmp_path / "elsewhere.json")
    with pytest.raises(ValueError, match="head config path"):
        hub.from_pretrained(run)


def test_upload_refuses_symlinks_out_of_the_folder(saved: Path, tmp_path: Path) -> None:
    import shutil

    folder = tmp_path / "copy"
    shutil.copytree(saved, folder)
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the Hub")
    (folder / "notes.txt").symlink_to(secret)
    with pytest.raises(ValueError, match="notes.txt"):
        hub.upload_files(folder)
    with pytest.raises(ValueError, match="leaves the folder"):
        hub.push_to_hub(folder, "me/x", dry_run=True)
    (folder / "notes.txt").unlink()
    (folder / "linked").symlink_to(tmp_path)  # a symlinked folder pointing out: refused too
    with pytest.raises(ValueError, match="linked"):
        hub.upload_files(folder)
    (folder / "linked").unlink()
    (folder / "card.md").symlink_to(folder / "README.md")  # inside the folder: uploaded as the file
    assert "card.md" in hub.upload_files(folder)


def test_transform_round_trip_and_untrusted_transform_config(encoder: Encoder, tmp_path: Path) -> None:
    from glot.training.heads import STSHead

    torch.manual_seed(1)
    head = STSHead(encoder.out_dim, proj_dim=4)
    with_p = Encoder(encoder.backbone, encoder.pooler, transform=head.embedding_transform())
    with pytest.raises(ValueError, match="does not apply it"):  # the head's P would be silently dropped
        hub.save_pretrained(encoder, tmp_path / "bad", head=head)
    saved = hub.save_pretrained(with_p, tmp_path / "enc", head=head)
    loaded = hub.from_pretrained(saved)
    assert loaded.out_dim == 4 and json.loads((saved / hub.CONFIG_NAME).read_text())["embedding_dim"] == 4
    np.testing.assert_array_equal(loaded.encode(TEXTS, progress=False), with_p.encode(TEXTS, progress=False))
    config_path = saved / "transform" / "transform_config.json"
    config = json.loads(config_path.read_text())
    for bad, message in ((5, "does not fit"), (10**9, "in/out_features"), ("4", "in/out_features")):
        config_path.write_text(json.dumps({**config, "out_features": bad}))
        with pytest.raises(ValueError, match=message):
            hub.from_pretrained(saved)


def test_hub_repo_download_with_cache_symlinks_loads(
    encoder: Encoder, saved: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub

    repo = tmp_path / "models--me--glot-minilm"  # the Hub cache layout: snapshot files link into blobs/
    snapshot = repo / "snapshots" / "abc123"
    for index, file in enumerate(hub.upload_files(saved)):
        blob = repo / "blobs" / f"blob{index}"
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes((saved / file).read_bytes())
        (snapshot / file).parent.mkdir(parents=True, exist_ok=True)
        (snapshot / file).symlink_to(blob)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda **kw: str(snapshot))
    loaded = hub.from_pretrained("me/glot-minilm")
    np.testing.assert_array_equal(loaded.encode(TEXTS, progress=False), encoder.encode(TEXTS, progress=False))
    with pytest.raises(ValueError, match="leaves the folder"):  # without the cache bound, the links escape
        hub.read_reference(snapshot)
