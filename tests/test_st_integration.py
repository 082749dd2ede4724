"""sentence-transformers integration: GLOTPooling in a SentenceTransformer (encode, save/reload, training
with a frozen Transformer), the unpadded (flash-attention varlen) input path, and run export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from optional import require  # noqa: E402

require("sentence_transformers", "pip install 'glot-pooling[st]'")

from sentence_transformers import (  # noqa: E402
    SentenceTransformer,
    SentenceTransformerTrainer,
    SentenceTransformerTrainingArguments,
)
from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss  # noqa: E402
from sentence_transformers.sentence_transformer.modules import Normalize, Transformer  # noqa: E402

import glot  # noqa: E402
from glot.integrations.sentence_transformers import (  # noqa: E402
    GLOTPooling,
    freeze_backbone,
    run_to_sentence_transformer,
)
from glot.integrations.st_export import _prompt_prefix  # noqa: E402

TEXTS = [
    "the delivery contains not keys",
    "A quick brown fox jumps over the lazy dog.",
    "ok",
    "graphs over tokens",
]
PAIRS = [
    ("what is a cat", "a cat is a small furry pet"),
    ("capital of france", "paris is the capital of france"),
    ("how to bake bread", "mix flour, water and yeast, then bake"),
    ("sort a python list", "use sorted() or list.sort()"),
    ("weather today", "it is sunny and warm outside"),
    ("tallest mountain", "everest is the highest mountain on earth"),
]


def _model(minilm_path: str, **options: object) -> SentenceTransformer:
    torch.manual_seed(0)
    pooling = GLOTPooling(384, "glot", tau=0.3, hidden_dim=32, **options)
    return SentenceTransformer(modules=[Transformer(minilm_path), pooling, Normalize()], device="cpu")


def test_encode_save_reload_identical(minilm_path: str, tmp_path: Path) -> None:
    model = _model(minilm_path)
    emb = model.encode(TEXTS, convert_to_numpy=True)
    assert emb.shape == (4, model[1].get_embedding_dimension()) == (4, 384 + 2 * 32)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    model.save(str(tmp_path))
    assert sorted(p.name for p in (tmp_path / "1_GLOTPooling").iterdir()) == [
        "glot_pooling.json", "model.safetensors", "pooler_config.json",
    ]  # fmt: skip
    with pytest.raises(ValueError, match="trust_remote_code"):
        SentenceTransformer(str(tmp_path), device="cpu")  # sentence-transformers >= 6 refuses custom modules
    reloaded = SentenceTransformer(str(tmp_path), device="cpu", trust_remote_code=True)
    np.testing.assert_array_equal(reloaded.encode(TEXTS, convert_to_numpy=True), emb)
    pooler = glot.load_pooler(tmp_path / "1_GLOTPooling")  # the module folder is a plain glot pooler folder
    assert pooler.out_dim == emb.shape[1]


def test_unpadded_varlen_features_match_padded() -> None:
    torch.manual_seed(0)
    module = GLOTPooling(16, "glot", tau=0.2, hidden_dim=8).eval()
    hidden = torch.randn(3, 5, 16)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 1, 1, 0, 0]])
    padded = module({"token_embeddings": hidden, "attention_mask": mask})["sentence_embedding"]
    flat = hidden[mask.bool()].unsqueeze(0)  # what Transformer(unpad_inputs) hands on: (1, N, D)
    cu = torch.tensor([0, 5, 7, 10], dtype=torch.int32)
    packed = module({"token_embeddings": flat, "cu_seq_lens_q": cu})["sentence_embedding"]
    torch.testing.assert_close(packed, padded)


def test_layer_option_and_constructor_errors() -> None:
    hidden = [torch.randn(2, 3, 8) for _ in range(3)]
    module = GLOTPooling(8, "mean", layer=1)
    out = module(
        {"token_embeddings": hidden[-1], "all_layer_embeddings": hidden, "attention_mask": torch.ones(2, 3)}
    )
    torch.testing.assert_close(out["sentence_embedding"], hidden[1].mean(dim=1))
    with pytest.raises(ValueError, match="output_hidden_states"):
        module({"token_embeddings": hidden[-1], "attention_mask": torch.ones(2, 3)})
    with pytest.raises(ValueError, match="embedding_dimension is required"):
        GLOTPooling(pooler="glot")
    with pytest.raises(TypeError, match="only apply"):
        GLOTPooling(pooler=glot.build_pooler("mean", 8), tau=0.3)
    with pytest.raises(ValueError, match="input_dim=8"):
        GLOTPooling(16, glot.build_pooler("mean", 8))
    assert GLOTPooling(word_embedding_dimension=8, pooler="max").embedding_dimension == 8


def test_trainer_updates_only_glot_weights(minilm_path: str, tmp_path: Path) -> None:
    from datasets import Dataset

    model = _model(minilm_path)
    assert freeze_backbone(model) == freeze_backbone(model) == sum(p.numel() for p in model[0].parameters())
    assert len(model[0]._forward_pre_hooks) == 1
    before = {k: v.clone() for k, v in model.state_dict().items()}
    data = Dataset.from_dict({"anchor": [a for a, _ in PAIRS], "positive": [p for _, p in PAIRS]})
    args = SentenceTransformerTrainingArguments(
        output_dir=str(tmp_path), per_device_train_batch_size=3, max_steps=2, learning_rate=1e-2,
        save_strategy="no", report_to=[], use_cpu=True, seed=0, disable_tqdm=True,
    )  # fmt: skip
    SentenceTransformerTrainer(
        model=model, args=args, train_dataset=data, loss=MultipleNegativesRankingLoss(model)
    ).train()
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed, "the GLOT pooler did not train"
    assert all(k.startswith("1.pooler.") for k in changed), sorted(changed)[:5]
    assert not model[0].training, "a frozen Transformer must stay in eval mode (no dropout on its states)"


def test_run_export_matches_glot_encoder(minilm_path: str, tmp_path: Path) -> None:
    from glot.backbones.frozen import FrozenBackbone
    from glot.export import hub
    from glot.export.encoder import Encoder

    torch.manual_seed(0)
    backbone = FrozenBackbone.from_pretrained(minilm_path, dtype="float32", device="cpu", max_length=64)
    encoder = Encoder(backbone, glot.build_pooler("glot", 384, tau=0.3, hidden_dim=32))
    hub.save_pretrained(encoder, tmp_path / "glot")
    out = run_to_sentence_transformer(tmp_path / "glot", tmp_path / "st")
    model = SentenceTransformer(str(out), device="cpu", trust_remote_code=True)
    assert model.max_seq_length == 64
    want = encoder.encode(TEXTS, progress=False, normalize=True)
    np.testing.assert_allclose(model.encode(TEXTS, convert_to_numpy=True), want, atol=2e-5)


def test_prompt_templates_map_to_prefixes() -> None:
    assert _prompt_prefix("query: {text}", allow_mismatch=False) == "query: "
    assert _prompt_prefix(None, allow_mismatch=False) is None
    with pytest.raises(ValueError, match="prefixes"):
        _prompt_prefix('This sentence : "{text}" means in one word:"', allow_mismatch=False)
    assert _prompt_prefix('"{text}" means', allow_mismatch=True) is None
