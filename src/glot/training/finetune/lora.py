"""Where LoRA goes: target discovery from the module tree and the PEFT ``LoraConfig``.

Targets are every linear layer INSIDE the repeated transformer blocks (never a list of model names).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from glot.errors import InputError
from glot.training.finetune.options import FinetuneOptions

_BLOCK_LEAF_TYPES: tuple[type[nn.Module], ...] = (nn.Linear,)


@dataclass
class LoraTargets:
    """Where LoRA goes: leaf names of the linear layers inside the transformer blocks, and the blocks' list."""

    family: str  # "bert-like", "llama-like" or "generic" (informational)
    target_modules: list[str]
    layers_pattern: str  # name of the ModuleList holding the blocks ("layer" for BERT, "layers" for Llama)
    num_layers: int


def _block_list(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """The ModuleList of repeated transformer blocks: the longest ModuleList whose items share one type."""
    best: tuple[str, nn.ModuleList] | None = None
    for name, module in model.named_modules():
        same_type = isinstance(module, nn.ModuleList) and len({type(m) for m in module}) == 1
        if same_type and (best is None or len(module) > len(best[1])):
            best = (name, module)
    if best is None:
        raise InputError(f"cannot find the transformer blocks (a ModuleList) in {type(model).__name__}")
    return best


def lora_targets(model: nn.Module) -> LoraTargets:
    """Choose LoRA targets from the module tree: every linear layer inside the repeated transformer blocks.

    Gives query/key/value/dense for BERT-like encoders and q/k/v/o/gate/up/down_proj for Llama-like decoders.
    """
    name, blocks = _block_list(model)
    types = _BLOCK_LEAF_TYPES + _conv1d_types()
    leaves = sorted({n.rsplit(".", 1)[-1] for n, m in blocks[0].named_modules() if isinstance(m, types)})
    if not leaves:
        raise InputError(f"the blocks {name!r} of {type(model).__name__} contain no linear layer for LoRA")
    if {"query", "key", "value"} <= set(leaves):
        family = "bert-like"
    elif {"q_proj", "k_proj", "v_proj", "gate_proj"} <= set(leaves):
        family = "llama-like"
    else:
        family = "generic"
    return LoraTargets(family, leaves, name.rsplit(".", 1)[-1], len(blocks))


def _conv1d_types() -> tuple[type[nn.Module], ...]:
    from transformers.pytorch_utils import Conv1D  # GPT-2 style "linear" layers

    return (Conv1D,)


def _lora_config(model: nn.Module, options: FinetuneOptions) -> Any:
    from peft import LoraConfig

    targets = lora_targets(model)
    return LoraConfig(
        r=options.r, lora_alpha=options.alpha, lora_dropout=options.dropout, bias="none",
        target_modules=targets.target_modules, layers_pattern=targets.layers_pattern,
        layers_to_transform=list(range(targets.num_layers)),
        fan_in_fan_out=any(isinstance(m, _conv1d_types()) for m in model.modules()),
    )  # fmt: skip
