"""FrozenBackbone's default max_length is the model's own configured limit (as sentence-transformers uses it),
and every call counts and reports the texts it cut."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer, RobertaConfig, RobertaModel

from glot.backbones import introspect as _hf
from glot.backbones.frozen import FrozenBackbone
from glot.backbones.tokenize import Truncation, TruncationWarning

sys.path.insert(0, str(Path(__file__).parent))
from tiny_models import MAX_POSITIONS, make_tiny_bert  # noqa: E402

LONG = " ".join(f"word{i} graphs over tokens relate the words of a sentence ." for i in range(40))


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(make_tiny_bert(tmp_path_factory.mktemp("tiny") / "bert"))


def test_default_comes_from_the_tokenizer_then_the_positions(tiny_bert: str) -> None:
    bb = FrozenBackbone.from_pretrained(tiny_bert, dtype="float32")
    assert (bb.max_length, bb.max_length_origin) == (MAX_POSITIONS, "tokenizer.model_max_length")
    tok = AutoTokenizer.from_pretrained(tiny_bert)
    tok.model_max_length = int(1e30)  # transformers' "no limit" sentinel must not be taken for a limit
    bb = FrozenBackbone(bb.model, tok)
    assert (bb.max_length, bb.max_length_origin) == (MAX_POSITIONS, "config.max_position_embeddings")
    assert FrozenBackbone(bb.model, tok, max_length=16).max_length == 16
    with pytest.raises(ValueError, match="exceeds the model's 128 position"):
        FrozenBackbone(bb.model, tok, max_length=129)


def test_roberta_positions_leave_out_the_padding_offset(tiny_bert: str) -> None:
    tok = AutoTokenizer.from_pretrained(tiny_bert)
    tok.model_max_length = int(1e30)
    config = RobertaConfig(vocab_size=len(tok), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                           intermediate_size=32, max_position_embeddings=34, pad_token_id=1)  # fmt: skip
    torch.manual_seed(0)
    bb = FrozenBackbone(RobertaModel(config), tok)
    assert bb.max_length == bb.length_limit == 32  # 34 positions - (padding_idx 1 + 1)
    with pytest.warns(TruncationWarning, match="cut to max_length=32 tokens; the model takes no more"):
        x, ptr = bb.embed_packed([" ".join(["the"] * 100)])  # runs: position ids stay inside the table
    assert int(ptr[-1]) == 32 and bb.last_truncation == Truncation(1, 1, 32)


def test_fallback_when_nothing_bounds_the_length(tiny_bert: str, monkeypatch: pytest.MonkeyPatch) -> None:
    bb = FrozenBackbone.from_pretrained(tiny_bert, dtype="float32")
    tok = AutoTokenizer.from_pretrained(tiny_bert)
    tok.model_max_length = int(1e30)
    monkeypatch.setattr(_hf, "max_positions", lambda config: None)
    assert FrozenBackbone(bb.model, tok).max_length == _hf.FALLBACK_MAX_LENGTH == 512


def test_truncation_is_counted_and_warned_once_per_call(tiny_bert: str) -> None:
    bb = FrozenBackbone.from_pretrained(tiny_bert, dtype="float32", max_length=10)
    texts = ["ok", "the quick brown fox jumps over the lazy dog near the river bank", "a cat sat", LONG]
    with pytest.warns(TruncationWarning, match=r"^2 of 4 texts were cut to max_length=10 tokens") as rec:
        batches = list(bb.iter_packed(texts, batch_size=2, progress=False))
    assert len(rec) == 1 and bb.last_truncation == Truncation(2, 4, 10)
    lengths = {int(i): int(p[j + 1] - p[j]) for idx, _, p in batches for j, i in enumerate(idx)}
    assert lengths[1] == lengths[3] == 10 and lengths[0] == 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bb.embed_packed(["ok", "a cat sat"])  # nothing cut: no warning
    assert bb.last_truncation == Truncation(0, 2, 10)


@pytest.mark.slow
def test_encoder_over_minilm_matches_sentence_transformers(minilm_path: str) -> None:
    st = pytest.importorskip("sentence_transformers")
    from glot import Encoder
    from glot.pooling.poolers import build_pooler

    bb = FrozenBackbone.from_pretrained("minilm", dtype="float32")
    assert (bb.max_length, bb.max_length_origin) == (256, "sentence_bert_config.json max_seq_length")
    words = " ".join(f"graph{i} tokens relate words" for i in range(33))
    assert 180 <= len(bb.tokenizer(words)["input_ids"]) <= 256  # ~200 tokens: cut at 128 before the fix
    ours = Encoder(bb, build_pooler("mean", bb.hidden_size)).encode([words, "ok"], progress=False)
    ref = st.SentenceTransformer(minilm_path, device="cpu")
    expected = ref.encode(
        [words, "ok"], convert_to_numpy=True
    )  # mean pooling (+ Normalize: cosine ignores it)
    cos = (ours * expected).sum(1) / (np.linalg.norm(ours, axis=1) * np.linalg.norm(expected, axis=1))
    assert cos.min() > 0.9999, cos
    assert bb.last_truncation == Truncation(0, 2, 256)
    with pytest.warns(TruncationWarning, match="1 of 2 texts were cut to max_length=256"):
        x, ptr = bb.embed_packed([LONG * 2, "ok"])
    assert int(ptr[1] - ptr[0]) == 256 and bb.last_truncation == Truncation(1, 2, 256)
