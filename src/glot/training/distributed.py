"""Data-parallel training over ``torch.distributed``: the hooks the one training loop calls.

``torchrun --nproc_per_node N -m glot train ...`` starts N copies of the same run. Every rank builds the same
models from the same seed, draws the same (seed, epoch) order and walks the same GLOBAL batches of
``batch_size`` rows (``--batch-size`` stays the global batch: N processes take the same optimizer steps as one).
Each rank reads and pools only its contiguous part of a batch (:func:`part`: sizes differ by at most one);
the pooled vectors are all-gathered, and every rank applies the task head and its loss to the WHOLE global
batch, with autograd flowing only into its own part (:func:`pool_batch`). So the loss is the global batch's
own loss (the per-example mean over all B rows, in-batch negatives included, whatever the ranks' counts), and
after :func:`reduce_gradients` sums the pooler's (and a fine-tuned backbone's) gradients over ranks and
averages the head's (each rank computed the head's full gradient), every rank holds the gradient one process
would compute. The optimizer steps are then identical on every rank, and the numbers match a one-process run
with the same global batch up to float summation order.

Validation and eval predictions are sharded the same way (:func:`predict`): each rank pools its part of the
rows, the pooled vectors are gathered and every rank applies the head to all rows, so every rank scores the
same predictions. Rank 0 alone writes run folders, checkpoints and results (:func:`glot.distributed.on_main`:
the others wait for its result, and raise its error if it failed); on resume every rank reads the checkpoint it wrote, so the
run folder must be on a file system every rank sees (one machine, or a shared mount).

Every rank trains on its own device (``TrainConfig.device``, :func:`glot.distributed.device`: cuda:LOCAL_RANK
with CUDA, where the default group is nccl): the pooled vectors and the all-reduced gradients live there and go
over the default group. CPU tensors under an nccl default (``--device cpu`` on a GPU machine) go over a gloo
twin of it. In a one-process run every hook is the plain computation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn

from glot import distributed
from glot.cache.task import COLUMNS, CachedTask
from glot.training import sources

if TYPE_CHECKING:
    from glot.pooling.poolers import Pooler
    from glot.training.heads import TaskHead
    from glot.training.setup import Setup
    from glot.training.sources import StateSource

__all__ = ["part", "pool_batch", "predict", "reduce_gradients"]

_GLOO: dict[int, Any] = {}  # id of the default group -> the gloo group for CPU tensors under nccl


def _group(tensor: Tensor) -> Any:
    """The group ``tensor`` is exchanged over: the default one (None), except for a CPU tensor under an nccl
    default, which goes over a gloo twin of it."""
    if dist.get_backend() != "nccl" or tensor.device.type != "cpu":
        return None
    default = id(dist.distributed_c10d._get_default_group())
    if default not in _GLOO:
        _GLOO[default] = dist.new_group(backend="gloo")
    return _GLOO[default]


def _bounds(n: int) -> list[int]:
    """Start of each rank's contiguous part of ``n`` rows (+ ``n``): sizes differ by at most one."""
    base, extra = divmod(n, distributed.world_size())
    return [r * base + min(r, extra) for r in range(distributed.world_size() + 1)]


def part(rows: np.ndarray) -> np.ndarray:
    """This rank's contiguous part of ``rows`` (all of them in a one-process run). Shapes: (B,) -> (b_r,)."""
    bounds, r = _bounds(len(rows)), distributed.rank()
    return rows[bounds[r] : bounds[r + 1]]


def _gather_rows(local: Tensor, n: int) -> list[Tensor]:
    """Every rank's ``local`` rows, in rank order, for a global batch of ``n`` rows split by :func:`part`.

    Shapes: local (k, b_r, P) -> per rank (k, b_q, P), detached (padded to the largest part for the collective).
    """
    bounds = _bounds(n)
    sizes = [hi - lo for lo, hi in zip(bounds, bounds[1:], strict=False)]
    k, _, width = local.shape
    padded = local.detach().new_zeros(k, max(sizes), width)
    padded[:, : local.shape[1]] = local.detach()
    out = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(out, padded.contiguous(), group=_group(padded))
    return [t[:, :size] for t, size in zip(out, sizes, strict=True)]


def _columns(setup_task: Any, split: str) -> int:
    data = setup_task.splits[split]
    return sum(getattr(data, c) is not None for c in COLUMNS)


def pool_batch(pooler: Pooler, setup: Setup, split: str, chunk: np.ndarray) -> Tensor:
    """Pooled vectors of a global batch (every text column, column after column), as the head wants them:
    this rank's rows with autograd, the other ranks' rows as gathered constants. ``pooler`` is
    ``setup.pooler`` as the loop runs it (e.g. under the run's head dtype).

    Shapes: chunk (B,) rows of a split with k text columns -> (k B, P).
    """
    if not distributed.active():
        return sources.pool_rows(pooler, setup.source, split, chunk)
    mine, k = part(chunk), _columns(setup.task, split)
    if len(mine):
        z = sources.pool_rows(pooler, setup.source, split, mine).view(k, len(mine), -1)
    else:  # a global batch smaller than the world: this rank pools nothing
        z = torch.zeros(k, 0, setup.pooler.out_dim, device=setup.source.device)
    parts = _gather_rows(z, len(chunk))
    parts[distributed.rank()] = z
    return torch.cat(parts, dim=1).reshape(k * len(chunk), -1)


def reduce_gradients(setup: Setup) -> None:
    """Make every rank's gradients the one-process gradient of the global batch (see the module doc): sum
    the pooler's and backbone's (each rank's part contributed its own), average the head's (each rank
    computed all of it). One flat all-reduce; a no-op in a one-process run."""
    if not distributed.active():
        return
    head = {id(p) for p in setup.head.parameters()}
    params = [p for _, group in setup.param_groups(1.0) for p in group]
    world = distributed.world_size()
    grads = []
    for p in params:
        g = p.grad if p.grad is not None else torch.zeros_like(p)  # a rank that pooled nothing
        grads.append((g / world if id(p) in head else g).reshape(-1))
    flat = torch.cat(grads)
    dist.all_reduce(flat, group=_group(flat))
    offset = 0
    for p in params:
        p.grad = flat[offset : offset + p.numel()].view_as(p).clone()
        offset += p.numel()


class _Stack(nn.Module):
    """A stand-in head for :func:`glot.training.sources.head_outputs`: returns the pooled columns stacked."""

    def forward(self, *columns: Tensor) -> Tensor:
        return torch.stack(columns)


def predict(
    pooler: Pooler,
    head: TaskHead,
    source: CachedTask | StateSource,
    split: str,
    rows: np.ndarray,
    metric: str,
    batch: int,
) -> Tensor:
    """:func:`glot.training.sources.predict` with the rows shared among the ranks: each pools its part, the
    pooled vectors are gathered and every rank applies ``head`` to all rows (identical predictions on every
    rank). Shapes: as :func:`glot.training.sources.predict`."""
    if not distributed.active():
        return sources.predict(pooler, head, source, split, rows, metric, batch)
    if isinstance(source, CachedTask):
        src: StateSource = sources.CacheSource(source, device=sources.model_device(head))
    else:
        src = source
    mine, k = part(rows), _columns(_task_of(src), split)
    if len(mine):
        local = sources.head_outputs(pooler, cast("TaskHead", _Stack()), src, split, mine, batch)
    else:
        local = torch.zeros(k, 0, pooler.out_dim, device=src.device)
    columns = torch.cat(_gather_rows(local, len(rows)), dim=1)
    head.eval()
    with torch.no_grad():
        output = head(*columns)
    return output.float().cpu() if metric == "mrr" else torch.as_tensor(head.predict(output))


def _task_of(source: Any) -> Any:
    """The object whose ``splits`` hold the source's text columns (a CachedTask's task, or the source)."""
    return source.cached.task if isinstance(source, sources.CacheSource) else source
