"""glot.backbones.reference: record a frozen backbone as a reference, load the same one back, refuse another."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from glot.backbones.frozen import FrozenBackbone
from glot.backbones.reference import backbone_reference, check_backbone, load_backbone, resolve_local
from glot.errors import InputError

sys.path.insert(0, str(Path(__file__).parent))
from tiny_models import make_tiny_bert  # noqa: E402

TEXTS = ["the quick brown fox", "a cat sat on the mat", "good movie"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> FrozenBackbone:
    path = make_tiny_bert(tmp_path_factory.mktemp("ref") / "bert")
    return FrozenBackbone.from_pretrained(
        str(path), dtype="float32", device="cpu", max_length=16, prompt="see {text}"
    )


def test_reference_records_what_rebuilds_the_same_states(tiny: FrozenBackbone) -> None:
    ref = backbone_reference(tiny)
    assert json.loads(json.dumps(ref)) == ref  # plain JSON
    assert ref["name_or_path"] == tiny.name and ref["dtype"] == "float32"
    assert (ref["max_length"], ref["prompt"], ref["layer"]) == (16, "see {text}", -1)
    assert (ref["hidden_size"], ref["num_layers"], ref["model_type"]) == (32, 2, "bert")
    loaded = load_backbone(ref, device="cpu")
    assert (loaded.name, loaded.max_length, loaded.prompt) == (tiny.name, 16, "see {text}")
    x, ptr = tiny.embed_packed(TEXTS)
    x2, ptr2 = loaded.embed_packed(TEXTS)
    assert torch.equal(ptr, ptr2)
    torch.testing.assert_close(x2, x)


def test_overrides_replace_recorded_settings(tiny: FrozenBackbone) -> None:
    loaded = load_backbone(backbone_reference(tiny), max_length=8, device="cpu")
    assert loaded.max_length == 8 and loaded.prompt == "see {text}"


@pytest.mark.parametrize(("key", "value"), [("hidden_size", 64), ("num_layers", 12), ("model_type", "llama")])
def test_a_backbone_of_another_shape_is_refused(tiny: FrozenBackbone, key: str, value) -> None:
    ref = {**backbone_reference(tiny), key: value}
    with pytest.raises(InputError, match=rf"has {key}=.* trained on a backbone with {key}={value!r}"):
        check_backbone(tiny, ref)
    with pytest.raises(InputError, match=key):
        load_backbone(ref, device="cpu")


def test_unrecorded_fields_are_not_checked(tiny: FrozenBackbone) -> None:
    check_backbone(tiny, {"name_or_path": tiny.name, "hidden_size": None})


def test_a_zoo_alias_records_its_hub_id_and_a_nameless_backbone_is_refused() -> None:
    alias = SimpleNamespace(name="minilm", hidden_size=384)
    assert backbone_reference(alias)["hub_id"] == "sentence-transformers/all-MiniLM-L6-v2"
    hub_id = backbone_reference(alias, "sentence-transformers/all-MiniLM-L6-v2")["hub_id"]
    assert hub_id == "sentence-transformers/all-MiniLM-L6-v2"
    assert backbone_reference(SimpleNamespace(name="/some/folder", hidden_size=8))["hub_id"] is None
    with pytest.raises(InputError, match="backbone has no name; pass backbone_name="):
        backbone_reference(SimpleNamespace(name=None, hidden_size=8))


def test_resolve_local_returns_only_a_verified_copy(tiny: FrozenBackbone) -> None:
    ref = backbone_reference(tiny, "org/not-installed")
    assert ref["fingerprint"]["weights"]["sha256"]  # recorded: a copy elsewhere can be verified
    assert resolve_local(ref) is None  # neither a zoo model nor in the (offline) Hub cache
    assert resolve_local(backbone_reference(tiny)) is None  # a local folder is used as it is
