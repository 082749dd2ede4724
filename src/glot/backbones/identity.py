"""What a frozen backbone *is*, apart from running it: its settings validated, and its fingerprint.

:class:`glot.backbones.frozen.FrozenBackbone` checks its constructor arguments here and describes itself with
:func:`fingerprint` (everything that changes the token states; the cache key is built from it, see
:mod:`glot.cache.key`). Running the model (tokens -> states, batching, windows) stays in ``frozen.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import transformers

from glot import distributed
from glot.backbones import introspect as _hf
from glot.backbones.dtypes import dtype_name
from glot.errors import InputError, InputTypeError

if TYPE_CHECKING:
    from glot.backbones.frozen import FrozenBackbone

_SPECIALS = ("pad", "eos", "bos", "unk", "cls", "sep", "mask")


def fingerprint(backbone: FrozenBackbone) -> dict[str, Any]:
    """JSON-serialisable description of everything that changes ``backbone``'s states (for cache keys).

    Weights: a local folder is identified by a content digest of its weight, config and tokenizer files (see
    ``glot.backbones.introspect.file_digest``: whole files up to 256 MiB, larger ones sampled), a hub model by
    its revision or resolved commit, a model built in memory by a digest of its parameters.

    ``long`` (the chunking settings) is present only for ``long="chunk"``, so truncating backbones keep the
    keys they had before chunking existed. Shapes: none.
    """
    tok = backbone.tokenizer
    out: dict[str, Any] = {
        "format": 1,
        "name": backbone.name,
        "source": source_kind(backbone.source),
        "weights": backbone._weights_id(),
        "model_class": type(backbone.model).__name__,
        "model_type": getattr(backbone.config, "model_type", None),
        "hidden_size": backbone.hidden_size,
        "num_layers": backbone.num_layers,
        "layer": layer_names(backbone._layers),
        "dtype": dtype_name(backbone.dtype),
        "max_length": backbone.max_length,
        "padding_side": backbone.padding_side,
        "append_eos": backbone.append_eos,
        "prompt": backbone.prompt,
        "tokenizer": {
            "class": type(tok).__name__,
            "vocab_size": len(tok),
            "special_ids": {s: getattr(tok, f"{s}_token_id", None) for s in _SPECIALS},
        },
        "transformers": transformers.__version__,
        "torch": torch.__version__.split("+")[0],
    }
    if backbone.long != "truncate":
        out["long"] = {"mode": backbone.long, "overlap": backbone.chunk_overlap}
    return out


def source_kind(source: str | None) -> str:
    """Where weights came from; a local folder's path is left out so identical weights key alike anywhere."""
    if source is None:
        return "memory"
    return "local" if Path(source).is_dir() else f"hub:{source}"


def default_device() -> torch.device:
    """Where a backbone loads without ``device=``: :func:`glot.distributed.device` (this rank's GPU, else cpu)."""
    return distributed.device()


def check_layers(layer: int | Sequence[int], n_layers: int | None) -> tuple[int, ...]:
    """One hidden_states index or a list of distinct ones, each normalised as :func:`check_layer`."""
    if not isinstance(layer, Sequence):
        return (check_layer(layer, n_layers),)
    layers = tuple(check_layer(i, n_layers) for i in layer)
    if not layers or len(set(layers)) != len(layers):
        raise InputError(f"layer must list distinct hidden_states indices, got {list(layer)}")
    return layers


def layer_names(layers: tuple[int, ...]) -> int | str | list[int | str]:
    """The fingerprint's ``layer``: one index as before (so single-layer cache keys do not change), else a list."""
    names: list[int | str] = [i if i >= 0 else "last" for i in layers]
    return names[0] if len(names) == 1 else names


def check_layer(layer: int, n_layers: int | None) -> int:
    """Normalise a hidden_states index to -1 (last layer) or 0..n_layers-1. Raises ValueError if out of range."""
    if isinstance(layer, bool) or not isinstance(layer, int):
        raise InputTypeError(f"layer must be an int index into hidden_states, got {type(layer).__name__}")
    if n_layers is None:
        return layer
    lo, hi = -(n_layers + 1), n_layers
    if not lo <= layer <= hi:
        raise InputError(
            f"layer must be in [{lo}, {hi}] for a model with {n_layers} layers "
            f"(0 = embeddings, {hi} or -1 = last layer), got {layer}"
        )
    index = layer % (n_layers + 1)
    return -1 if index == n_layers else index


def resolve_max_length(
    max_length: int | None,
    limit: int | None,
    model: Any,
    tokenizer: Any,
    source: str | None,
    revision: str | None,
) -> tuple[int, str]:
    """``max_length`` checked against the position ``limit``, and where it came from; None = the model's own
    configured limit (``glot.backbones.introspect.configured_max_length``)."""
    if max_length is None:
        max_length, origin = _hf.configured_max_length(model.config, model, tokenizer, source, revision)
    else:
        origin = "max_length argument"
    return check_max_length(max_length, limit), origin


def check_padding_side(tokenizer: Any, padding_side: str | None) -> str:
    """'left' or 'right' (None = the tokenizer's own), set on the tokenizer."""
    side = padding_side if padding_side is not None else tokenizer.padding_side
    if side not in ("left", "right"):
        raise InputError(f"padding_side must be 'left' or 'right', got {side!r}")
    tokenizer.padding_side = side
    return str(side)


def check_max_length(max_length: int, limit: int | None) -> int:
    if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 2:
        raise InputError(f"max_length must be an int >= 2, got {max_length!r}")
    if limit is not None and max_length > limit:
        raise InputError(f"max_length={max_length} exceeds the model's {limit} position embeddings")
    return max_length


def check_eos(tokenizer: Any, is_decoder: bool, append_eos: bool | None) -> bool:
    """``append_eos`` resolved (None: True for decoders with an EOS token); refused without an EOS token."""
    has_eos = tokenizer.eos_token_id is not None
    if append_eos is None:
        return is_decoder and has_eos
    if append_eos and not has_eos:
        raise InputError(
            f"append_eos=True but tokenizer {type(tokenizer).__name__} has no eos token; "
            "set tokenizer.eos_token or pass append_eos=False"
        )
    return bool(append_eos)
