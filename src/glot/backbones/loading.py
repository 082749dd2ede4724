"""Finding and loading a backbone's weights: a zoo alias, local folder or hub id -> (model, tokenizer, source).

:meth:`glot.backbones.frozen.FrozenBackbone.from_pretrained` calls :func:`load_model`, then wraps the result.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, AutoTokenizer, PreTrainedTokenizerBase

from glot.backbones import introspect as _hf
from glot.backbones.dtypes import FROM_PRETRAINED_DTYPE_KW, resolve_dtype
from glot.backbones.identity import default_device
from glot.progress import library_bars


def load_model(
    name_or_path: str,
    *,
    dtype: str | torch.dtype,
    device: str | torch.device | None,
    revision: str | None,
    trust_remote_code: bool,
    device_map: str | dict[str, Any] | None = None,
) -> tuple[nn.Module, PreTrainedTokenizerBase, str]:
    """The model (its encoder for encoder-decoders, KV cache off for decoders) on ``device`` in ``dtype``, its
    tokenizer, and the resolved source (a zoo alias becomes its folder). ``device_map`` ("auto" or a
    transformers device map): Accelerate places the layers over the visible GPUs (and CPU) instead of
    ``device``. Shapes: none."""
    from glot.backbones import zoo

    dev = torch.device(device) if device is not None else default_device()
    torch_dtype = resolve_dtype(dtype, dev)
    source = str(zoo.resolve(str(name_or_path)))
    kw: dict[str, Any] = {"revision": revision, "trust_remote_code": trust_remote_code}
    config = AutoConfig.from_pretrained(source, **kw)
    if _hf.detect_decoder(config):
        config.use_cache = False
    tokenizer = AutoTokenizer.from_pretrained(source, **kw)
    load_kw: dict[str, Any] = {**kw, FROM_PRETRAINED_DTYPE_KW: torch_dtype}  # one mapping: typed as Any
    if device_map is not None:
        load_kw["device_map"] = device_map
    with library_bars():  # "Loading weights" only where glot's own bars draw
        model = AutoModel.from_pretrained(source, config=config, **load_kw)
    if getattr(config, "is_encoder_decoder", False):
        model = model.get_encoder()
    if device_map is None:  # with a device map, Accelerate placed the layers (inputs go to the first)
        model.to(dev)
    return model, tokenizer, source
