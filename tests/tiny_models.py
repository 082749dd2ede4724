"""Tiny random BERT-like and Llama-like models with word-level tokenizers, built offline for tests.

Both are saved with ``save_pretrained`` so they load through ``AutoModel``/``AutoTokenizer`` exactly like a hub
model. Weights are random but seeded: the same folder content on every call.

    from tests.tiny_models import make_tiny_bert, make_tiny_llama   # or: from tiny_models import ...
    path = make_tiny_bert(tmp_path / "bert")
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
from transformers import BertConfig, BertModel, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

_WORD_TEXT = (
    "the a an and or but not no never without excluding is are was were be been it this that these those "
    "i you he she we they my your our their of in on at to from for with by about over under near "
    "delivery contains folder includes box keys reports files tickets documents alerts quick brown fox "
    "jumps lazy dog river bank sentence means one word graph graphs token tokens pooler see which words "
    "relate each other good bad great movie film love hate very really so ok yes cat sat mat "
    ". , ! ? : ; \" '"
)
WORDS = tuple(_WORD_TEXT.split())

HIDDEN = 32
LAYERS = 2
MAX_POSITIONS = 128


def _word_tokenizer(specials: list[str], unk: str) -> Tokenizer:
    vocab = {tok: i for i, tok in enumerate([*specials, *dict.fromkeys(WORDS)])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=unk))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()]
    )
    return tok


def _save(model: torch.nn.Module, tokenizer: PreTrainedTokenizerFast, out: Path) -> Path:
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    tmp.rename(out)
    return out


def make_tiny_bert(directory: str | os.PathLike[str]) -> Path:
    """A 2-layer, 32-wide random BERT encoder with a word-level tokenizer ([CLS] text [SEP]), saved to
    ``directory`` (reused if already there). Returns the folder."""
    out = Path(directory)
    if (out / "config.json").exists():
        return out
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = _word_tokenizer(specials, "[UNK]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", 2), ("[SEP]", 3)],
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]",
        mask_token="[MASK]", model_max_length=MAX_POSITIONS,
    )  # fmt: skip
    config = BertConfig(
        vocab_size=tok.get_vocab_size(), hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=4,
        intermediate_size=2 * HIDDEN, max_position_embeddings=MAX_POSITIONS, pad_token_id=0,
    )  # fmt: skip
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = BertModel(config)
    return _save(model, fast, out)


def make_tiny_llama(directory: str | os.PathLike[str]) -> Path:
    """A 2-layer, 32-wide random Llama decoder (saved as LlamaForCausalLM) whose word-level tokenizer adds
    <s> in front and has NO pad token, like many decoder tokenizers. Returns the folder."""
    out = Path(directory)
    if (out / "config.json").exists():
        return out
    specials = ["<unk>", "<s>", "</s>"]
    tok = _word_tokenizer(specials, "<unk>")
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        model_max_length=MAX_POSITIONS,
    )
    config = LlamaConfig(
        vocab_size=tok.get_vocab_size(), hidden_size=HIDDEN, intermediate_size=2 * HIDDEN,
        num_hidden_layers=LAYERS, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=MAX_POSITIONS, bos_token_id=1, eos_token_id=2, pad_token_id=None,
        tie_word_embeddings=True,
    )  # fmt: skip
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = LlamaForCausalLM(config)
    return _save(model, fast, out)
