"""Head precision: the pooler under bfloat16 autocast where the hardware runs bf16 natively (issue 12 item 3).

``TrainConfig.head_dtype`` (``--head-dtype``) is ``"auto"``, ``"fp32"`` or ``"bf16"``. Under ``"bf16"`` the
pooler's forward (GNN layers and readout; training and inference) runs inside ``torch.autocast(bfloat16)``:

- the weights stay float32 (the optimizer updates fp32 master weights; autocast casts a bf16 copy per matmul,
  and the gradients reaching the weights are fp32), so a checkpoint is the same fp32 file either way;
- only the matmuls (``Linear``, ``bmm``) run in bf16. Softmaxes stay fp32: GATConv's attention logits mix its
  bf16 messages with fp32 attention vectors, which promotes them to fp32, and the readout computes its
  softmax on fp32 scores (:class:`glot.pooling.readout.AttentionReadout`); segment sums of fp32 terms are fp32;
- the pooled embedding leaves the pooler as float32, and the task head and its loss run in float32 outside
  autocast: they are one small matmul, and their outputs (logits, cosine similarities scaled by a
  temperature) are where bf16's 8-bit mantissa would show.

``"auto"`` picks bf16 exactly where :func:`glot.backbones.dtypes.auto_dtype` does for the backbone (one
capability probe, :func:`glot.backbones.dtypes.cpu_bf16_features`): a CPU with avx512_bf16 or AMX, or a CUDA
GPU with bf16; fp32 elsewhere (emulated bf16 is slower). ``benchmarks/bench_bf16.py`` measures the rule: on an
AMD EPYC with avx512_bf16 and no AMX a GLOT train step is faster in bf16, and with the bf16 instructions masked
(``ONEDNN_MAX_CPU_ISA=AVX2``) it is slower. Asking for ``"bf16"`` where it is not native is refused.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch
from torch import Tensor, nn

from glot.backbones.dtypes import auto_dtype, cpu_bf16_features
from glot.errors import InputError
from glot.pooling.packing import pad_singletons
from glot.training.config import HEAD_DTYPES, TrainConfig

__all__ = [
    "HEAD_DTYPES",
    "MixedPrecisionPooler",
    "autocast",
    "native_bf16",
    "pool",
    "resolve_head_dtype",
    "saved_head_dtype",
]


def native_bf16(device: torch.device | str = "cpu") -> bool:
    """Whether ``device`` runs bf16 matmuls natively (the same probe as the backbone's ``dtype="auto"``)."""
    return auto_dtype(torch.device(device)) == torch.bfloat16


def _hardware(device: torch.device) -> str:
    if device.type == "cuda":
        return f"CUDA device {torch.cuda.get_device_name(device)!r}"
    features = ", ".join(cpu_bf16_features()) or "neither avx512_bf16 nor AMX"
    return f"this {device.type} ({features})"


def resolve_head_dtype(spec: Any, device: torch.device | str = "cpu") -> str:
    """``"auto"`` -> ``"bf16"`` where :func:`native_bf16`, else ``"fp32"``; ``"fp32"``/``"bf16"`` as given.

    ``"bf16"`` on a device without native bf16 raises a one-line InputError naming the flag and the fix.
    """
    if spec not in HEAD_DTYPES:
        raise InputError(f"head_dtype must be one of {', '.join(HEAD_DTYPES)} (--head-dtype), got {spec!r}")
    where = torch.device(device)
    if spec == "auto":
        return "bf16" if native_bf16(where) else "fp32"
    if spec == "bf16" and not native_bf16(where):
        raise InputError(
            f"head_dtype 'bf16' (--head-dtype bf16) needs native bfloat16 (a CPU with avx512_bf16 or AMX, or a "
            f"CUDA GPU with bf16), but {_hardware(where)} emulates it (slower); use --head-dtype auto or fp32"
        )
    return str(spec)


def keyed(config: TrainConfig, device: torch.device | str) -> tuple[TrainConfig, dict[str, str]]:
    """``config`` with ``head_dtype`` resolved on the training ``device`` (what the run key records: "auto" would
    let a run resume on a machine that computes other numbers; "auto" on CUDA is bf16), and the ``precision``
    entry of the run's metrics."""
    resolved = config.replace(head_dtype=resolve_head_dtype(config.head_dtype, device))
    return resolved, {"head_dtype": resolved.head_dtype, "requested": config.head_dtype}


def saved_head_dtype(recorded: Any) -> str:
    """The head dtype a loaded run / saved encoder runs at: what it recorded, except that ``"bf16"`` becomes
    ``"auto"`` (bf16 where this machine has it, else fp32: a model trained in bf16 stays usable everywhere),
    and that folders written before glot recorded one (None) keep the fp32 they were trained in."""
    if recorded is None:
        return "fp32"
    return "auto" if recorded == "bf16" else str(recorded)


def autocast(head_dtype: str, device: torch.device | str = "cpu") -> AbstractContextManager[Any]:
    """The autocast region of a resolved head dtype: bf16 autocast for ``"bf16"``, nothing for ``"fp32"``."""
    assert head_dtype in ("fp32", "bf16"), head_dtype  # resolve "auto" first (resolve_head_dtype)
    if head_dtype == "fp32":
        return nullcontext()
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)


def _device(module: nn.Module) -> torch.device:
    param = next(module.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def pool(pooler: Any, x: Tensor, ptr: Tensor, head_dtype: str, graph: Any = None) -> Tensor:
    """``pooler.forward_packed(x, ptr, graph=graph)`` at ``head_dtype`` (resolved), returned as float32.

    Under bf16 on a CPU the batch's token count is first rounded up with one-token sentences
    (:func:`glot.pooling.packing.pad_singletons`: oneDNN sets up its bf16 kernels per new matmul shape) and
    their outputs dropped; the real sentences' vectors are those of the unpadded batch up to bf16 rounding.
    Shapes: x (N, D), ptr (B + 1,) -> (B, out_dim) float32.
    """
    batch, device = ptr.numel() - 1, _device(pooler)
    if head_dtype == "bf16" and device.type == "cpu":
        x, ptr = pad_singletons(x, ptr)
        graph = None if graph is None else graph.padded(ptr)
    with autocast(head_dtype, device):
        z = pooler.forward_packed(x, ptr) if graph is None else pooler.forward_packed(x, ptr, graph=graph)
    return z[:batch].float()


class MixedPrecisionPooler(nn.Module):
    """A pooler seen through :func:`pool` at a resolved head dtype, for code that calls ``forward_packed``
    (validation and eval predictions). It holds the pooler itself: same parameters, nothing copied.

    Shapes: ``forward_packed(x (N, D), ptr (B + 1,))`` -> (B, out_dim) float32.
    """

    def __init__(self, pooler: nn.Module, head_dtype: str) -> None:
        super().__init__()
        assert head_dtype in ("fp32", "bf16"), head_dtype
        self.pooler, self.head_dtype = pooler, head_dtype

    @property
    def out_dim(self) -> int:
        return int(self.pooler.out_dim)  # type: ignore[arg-type]

    def forward_packed(self, x: Tensor, ptr: Tensor, *, graph: Any = None) -> Tensor:
        return pool(self.pooler, x, ptr, self.head_dtype, graph)

    def fixed_key(self) -> str | None:
        """The pooler's :meth:`~glot.pooling.base.Pooler.fixed_key` at this head dtype (None if not fixed)."""
        inner: Any = self.pooler  # a Pooler (nn.Module's attribute lookup cannot tell mypy so)
        key: str | None = inner.fixed_key()
        return None if key is None else f"{key} at {self.head_dtype}"


def for_run(pooler: Any, recorded: Any) -> Any:
    """``pooler`` at the head dtype a run recorded (``train.head_dtype``, read by :func:`saved_head_dtype`) on
    this machine: how a reloaded run scores (``glot eval``) what it scored while training."""
    return at_head_dtype(pooler, resolve_head_dtype(saved_head_dtype(recorded), _device(pooler)))


def at_head_dtype(pooler: Any, head_dtype: str) -> Any:
    """``pooler`` itself for ``"fp32"`` (bit-identical to a plain forward), a :class:`MixedPrecisionPooler`
    for ``"bf16"``."""
    return pooler if head_dtype == "fp32" else MixedPrecisionPooler(pooler, head_dtype)
