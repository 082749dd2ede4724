"""A learned mix of several hidden layers (sentence-transformers' WeightedLayerPooling, softmax-normalised).

A token state that stacks ``n`` hidden layers side by side (width ``n * D``, layer by layer) becomes
``sum_l softmax(w)_l * h_l`` of width ``D``. The weights start equal (the plain mean of the layers) and train
with the head. Every pooler takes it (option ``mix_layers``; 1 = one layer, no mix, no parameter).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from glot.errors import InputError


def check_stacking(mix_layers: int, layer: object) -> None:
    """A pooler that mixes ``mix_layers`` > 1 layers needs states stacking exactly that many (the backbone's
    ``layer`` list, as its fingerprint records it); otherwise one layer would be cut into fake "layers"."""
    stacked = len(layer) if isinstance(layer, list) else 1
    if mix_layers > 1 and mix_layers != stacked:
        raise InputError(
            f"mix_layers={mix_layers} but the cached states stack {stacked} layer(s) (layer={layer!r}); pass "
            f"--layer with {mix_layers} indices (e.g. --layer 4,5,6 --mix-layers 3) or drop --mix-layers"
        )


def mixed_width(input_dim: int, mix_layers: int) -> int:
    """Width D of one layer when ``mix_layers`` layers are stacked in a state of width ``input_dim``."""
    if input_dim % mix_layers:
        raise InputError(
            f"input_dim={input_dim} is not a multiple of mix_layers={mix_layers}; stacked token states hold "
            "mix_layers hidden layers of width D side by side (width mix_layers x D)"
        )
    return input_dim // mix_layers


class LayerMix(nn.Module):
    """Softmax-weighted sum of stacked layers. Shapes: x (N, n * D) -> (N, D); weights (n,)."""

    def __init__(self, num_layers: int) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(num_layers))

    def weights(self) -> Tensor:
        """The layers' mixing weights, summing to 1. Shapes: (n,)."""
        return torch.softmax(self.logits, dim=0)

    def forward(self, x: Tensor) -> Tensor:
        n = self.logits.numel()
        stacked = x.reshape(x.shape[0], n, x.shape[1] // n)
        return torch.einsum("nld,l->nd", stacked, self.weights().to(x.dtype))
