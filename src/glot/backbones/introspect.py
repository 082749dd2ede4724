"""Hugging Face model introspection used by :mod:`glot.backbones.frozen`: architecture kind, depth, width, tokenizer
padding, and a content digest of a local model folder (for cache keys).

Everything is decided from the model's config and files, never from a list of model names.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import PretrainedConfig, PreTrainedTokenizerBase
from transformers.models.auto.modeling_auto import (
    MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
    MODEL_FOR_MASKED_LM_MAPPING_NAMES,
)
from transformers.utils import cached_file

from glot.errors import InputError
from glot.io import sha256_file

_CAUSAL_SUFFIXES = ("ForCausalLM", "LMHeadModel")


def text_config(config: PretrainedConfig) -> PretrainedConfig:
    """The text part of a (possibly multimodal) config; the config itself for text-only models."""
    getter = getattr(config, "get_text_config", None)
    return getter() if callable(getter) else config


def detect_decoder(config: PretrainedConfig) -> bool:
    """True for causal (decoder-only) language models, False for bidirectional encoders.

    Order: encoder-decoder models count as encoders (their encoder is used); ``config.is_decoder`` wins; a
    model type that also has a masked-LM head (BERT, RoBERTa, ...) is an encoder; architectures ending in
    ``ForCausalLM``/``LMHeadModel`` or a type in transformers' causal-LM mapping is a decoder.
    """
    if getattr(config, "is_encoder_decoder", False):
        return False
    if getattr(config, "is_decoder", False):
        return True
    tc = text_config(config)
    model_type = getattr(tc, "model_type", None) or getattr(config, "model_type", None)
    if model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES:
        return False
    architectures = getattr(config, "architectures", None) or []
    if any(str(a).endswith(_CAUSAL_SUFFIXES) for a in architectures):
        return True
    return model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES


def _first_int(config: PretrainedConfig, names: tuple[str, ...]) -> int | None:
    for name in names:
        value = getattr(config, name, None)
        if isinstance(value, int):
            return value
    return None


def num_layers(config: PretrainedConfig) -> int | None:
    """Number of transformer blocks (hidden_states then has num_layers + 1 entries), or None if unknown."""
    return _first_int(text_config(config), ("num_hidden_layers", "n_layer", "num_layers"))


def hidden_width(config: PretrainedConfig) -> int | None:
    """Width D of the token states, or None if the config does not say."""
    return _first_int(text_config(config), ("hidden_size", "n_embd", "d_model", "dim"))


def max_positions(config: PretrainedConfig) -> int | None:
    """Longest sequence the position embeddings support, or None if unbounded/unknown."""
    return _first_int(text_config(config), ("max_position_embeddings", "n_positions"))


#: Used when neither sentence_bert_config.json, the tokenizer nor the config bounds the sequence length.
FALLBACK_MAX_LENGTH = 512
_UNBOUNDED = 10**6  # tokenizers without a limit report transformers' VERY_LARGE_INTEGER (int(1e30))


def position_limit(config: PretrainedConfig, model: nn.Module) -> int | None:
    """Longest input the model's position embeddings take: ``max_position_embeddings``, minus the
    ``padding_idx + 1`` positions RoBERTa-style models reserve (514 -> 512 for RoBERTa / XLM-R)."""
    limit = max_positions(config)
    if limit is not None and derives_positions_from_ids(model):
        limit -= int(getattr(model, "embeddings").padding_idx) + 1  # noqa: B009
    return limit


def _sentence_bert_max_length(source: str | None, revision: str | None) -> int | None:
    """``max_seq_length`` from a sentence-transformers ``sentence_bert_config.json`` (local folder or the hub
    cache; never an error: a model without one simply has none)."""
    if source is None:
        return None
    path: Path | str | None = Path(source) / "sentence_bert_config.json"
    if not Path(source).is_dir():
        try:
            path = cached_file(
                source, "sentence_bert_config.json", revision=revision,
                _raise_exceptions_for_missing_entries=False, _raise_exceptions_for_connection_errors=False,
            )  # fmt: skip
        except Exception:  # any hub/cache trouble: fall through to the tokenizer's limit
            path = None
    try:
        value = json.loads(Path(path).read_text()).get("max_seq_length") if path else None
    except (OSError, ValueError, AttributeError):
        return None
    return value if type(value) is int and value >= 2 else None


def configured_max_length(
    config: PretrainedConfig,
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    source: str | None,
    revision: str | None = None,
) -> tuple[int, str]:
    """The model's own sequence limit and where it came from, first found of: sentence_bert_config.json
    ``max_seq_length`` (what sentence-transformers uses), ``tokenizer.model_max_length`` (unless it is the
    "no limit" sentinel), the position embeddings (:func:`position_limit`), :data:`FALLBACK_MAX_LENGTH`.
    Never more than the position embeddings allow."""
    limit = position_limit(config, model)
    tok = getattr(tokenizer, "model_max_length", None)
    candidates = (
        (_sentence_bert_max_length(source, revision), "sentence_bert_config.json max_seq_length"),
        (tok if type(tok) is int and 2 <= tok < _UNBOUNDED else None, "tokenizer.model_max_length"),
        (limit, "config.max_position_embeddings"),
        (FALLBACK_MAX_LENGTH, "glot's fallback"),
    )
    value, origin = next((v, o) for v, o in candidates if v is not None)
    return (min(value, limit), origin) if limit is not None else (value, origin)


def ensure_pad_token(tokenizer: PreTrainedTokenizerBase) -> str | None:
    """Give a tokenizer without a pad token one by reusing its EOS (else UNK) token; never adds a token.

    Returns the token it set, or None when the tokenizer already had one. Padding positions are masked out,
    so which existing token fills them does not matter, and the embedding matrix is left untouched.
    """
    if tokenizer.pad_token is not None:
        return None
    for candidate in (tokenizer.eos_token, tokenizer.unk_token, tokenizer.sep_token):
        if candidate is not None:
            tokenizer.pad_token = candidate
            return str(candidate)
    raise InputError(
        f"tokenizer {type(tokenizer).__name__} has no pad, eos, unk or sep token to pad with; "
        "set tokenizer.pad_token to an existing token before building the backbone"
    )


def forward_params(model: nn.Module) -> set[str]:
    """Named parameters of ``model.forward`` (so only accepted inputs are passed)."""
    return set(inspect.signature(model.forward).parameters)


def derives_positions_from_ids(model: nn.Module) -> bool:
    """True for RoBERTa-style embeddings that compute position ids from input ids and a padding index.

    Those models already handle left padding and expect positions offset by ``padding_idx + 1``, so glot must
    not pass 0-based ``position_ids`` to them.
    """
    embeddings = getattr(model, "embeddings", None)
    return embeddings is not None and getattr(embeddings, "padding_idx", None) is not None


_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".h5", ".msgpack")
_TEXT_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
               "vocab.txt", "vocab.json", "merges.txt", "tokenizer.model", "spiece.model",
               "sentencepiece.bpe.model", "added_tokens.json")  # fmt: skip
_FULL_HASH_LIMIT = 256 * 2**20
_SAMPLE = 2**20
_DIGEST_CACHE: dict[tuple[str, int, int], str] = {}


def file_digest(path: Path) -> str:
    """sha256 of a file, cached in memory by (path, size, mtime).

    Files up to 256 MiB are hashed whole. Larger ones hash their size plus the first, middle and last MiB:
    enough to tell different checkpoints apart (headers and tensors differ everywhere after training) while
    keeping the cost of a cache lookup near zero for multi-GB weights.
    """
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key in _DIGEST_CACHE:
        return _DIGEST_CACHE[key]
    if stat.st_size <= _FULL_HASH_LIMIT:
        _DIGEST_CACHE[key] = sha256_file(path)
        return _DIGEST_CACHE[key]
    h = hashlib.sha256(f"sampled:{stat.st_size}".encode())
    with path.open("rb") as fh:
        for offset in (0, stat.st_size // 2, stat.st_size - _SAMPLE):
            fh.seek(offset)
            h.update(fh.read(_SAMPLE))
    _DIGEST_CACHE[key] = h.hexdigest()
    return _DIGEST_CACHE[key]


def folder_digest(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """Digest of the files in a local model folder that change its outputs (weights, config, tokenizer).

    Returns {"sha256": combined hex digest, "files": number of files hashed}.
    """
    root = Path(folder)
    chosen = sorted(
        p for p in root.rglob("*")
        if p.is_file() and (p.name in _TEXT_FILES or p.name.endswith(_WEIGHT_SUFFIXES))
    )  # fmt: skip
    combined = hashlib.sha256()
    for p in chosen:
        combined.update(f"{p.relative_to(root).as_posix()}\0{file_digest(p)}\n".encode())
    return {"sha256": combined.hexdigest(), "files": len(chosen)}


def module_digest(model: nn.Module) -> dict[str, Any]:
    """sha256 over the names, dtypes, shapes and bytes of a model's parameters and buffers (in-memory models)."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}\0{t.dtype}\0{tuple(t.shape)}\n".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return {"sha256": h.hexdigest(), "files": 0}


def weights_identity(
    model: nn.Module, source: str | None, revision: str | None
) -> dict[str, Any] | str | None:
    """What identifies a backbone's weights: a local folder's content digest, a hub model's revision (or the
    commit transformers resolved it to), or the parameter digest of a model built in memory."""
    if source is not None and Path(source).is_dir():
        return folder_digest(source)
    if source is not None:
        config = getattr(model, "config", None)
        return revision or getattr(config, "_commit_hash", None)
    return module_digest(model)
