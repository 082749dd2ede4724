"""Rank / world helpers on ``torch.distributed``, for runs launched by ``torchrun`` or ``accelerate launch``.

Both launchers start one process per device and tell each its place through environment variables
(``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``); :func:`process_group` reads them
and initialises the default process group (``nccl`` when CUDA is available, ``gloo`` on CPU). A plain
``python -m glot`` / ``glot`` run sets none of them and everything here degrades to one process: rank 0 of a
world of 1, :func:`barrier` a no-op, :func:`shard` the whole list.

Typical use (what ``glot cache`` / ``glot encode`` do)::

    with distributed.process_group():
        part = distributed.shard(range(n), weights=lengths)   # this rank's share, length-balanced
        ...                                                    # work on it, on distributed.device()
        distributed.barrier()
        if distributed.is_main():
            ...                                                # one rank verifies / writes the result

Collectives (:func:`barrier`, :func:`all_gather_object`, :func:`broadcast_object`) must be called by every
rank in the same order, as in torch.distributed itself.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, NoReturn

import torch
import torch.distributed as dist

from glot.errors import InputError

#: Environment variables the launchers set; WORLD_SIZE > 1 means "launched as one of several processes".
ENV_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InputError(
            f"environment variable {name}={raw!r} is not an int; unset it or launch with torchrun / accelerate"
        ) from None
    if value < 0:
        raise InputError(f"environment variable {name}={value} is negative; unset it or launch with torchrun")
    return value


def env_world_size() -> int:
    """WORLD_SIZE from the launcher's environment (1 when not launched by torchrun / accelerate)."""
    return max(1, _env_int("WORLD_SIZE", 1))


def launched() -> bool:
    """True when this process is one of several started by a launcher (WORLD_SIZE > 1)."""
    return env_world_size() > 1


def is_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's global rank: from the process group if initialised, else RANK from the env, else 0."""
    return dist.get_rank() if is_initialized() else _env_int("RANK", 0)


def world_size() -> int:
    """Number of processes: from the process group if initialised, else WORLD_SIZE from the env, else 1."""
    return dist.get_world_size() if is_initialized() else env_world_size()


def local_rank() -> int:
    """Rank on this machine (LOCAL_RANK; 0 without a launcher): picks this process's GPU."""
    return _env_int("LOCAL_RANK", 0)


def is_main() -> bool:
    """True on rank 0 (and in a one-process run): the rank that prints, verifies and writes shared files."""
    return rank() == 0


def active() -> bool:
    """True when collectives mean something: a process group is initialised with more than one rank."""
    return is_initialized() and dist.get_world_size() > 1


def device(spec: str | torch.device | None = None) -> torch.device:
    """THE device rule: where this rank computes (backbone, pooler + head, their batches).

    ``None`` / ``"auto"``: ``cuda:<LOCAL_RANK>`` when CUDA is available, else the CPU. ``"cpu"``; ``"cuda"``
    (this rank's GPU); ``"cuda:N"`` (one process only: under a launcher every rank has its own GPU). CUDA asked
    for where there is none, an out-of-range index or another string is a one-line InputError naming the value.
    """
    if spec is None or spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank() % max(1, torch.cuda.device_count()))
        return torch.device("cpu")
    try:
        wanted = torch.device(spec)
    except (RuntimeError, TypeError):
        wanted = torch.device("meta")  # not a device torch knows: refused below
    if wanted.type == "cpu":
        return torch.device("cpu")
    if wanted.type != "cuda":
        raise InputError(f"device must be auto, cpu, cuda or cuda:N (--device), got {str(spec)!r}")
    if not torch.cuda.is_available():
        raise InputError(
            f"device {str(spec)!r} (--device {spec}) needs CUDA, but torch {torch.__version__} sees no CUDA GPU "
            "here; use --device auto or cpu (device='auto' / 'cpu')"
        )
    if wanted.index is None:
        return device("auto")
    if launched():
        raise InputError(
            f"device {str(spec)!r}: under torchrun every rank uses its own GPU (cuda:LOCAL_RANK); pass --device "
            "cuda or auto"
        )
    if wanted.index >= torch.cuda.device_count():
        raise InputError(
            f"device {str(spec)!r} (--device {spec}): this machine has {torch.cuda.device_count()} CUDA "
            f"device(s), cuda:0 to cuda:{torch.cuda.device_count() - 1}; pass one of them, or auto"
        )
    return wanted


def default_backend() -> str:
    """``nccl`` when CUDA is available (one GPU per rank), else ``gloo``."""
    return "nccl" if torch.cuda.is_available() and dist.is_nccl_available() else "gloo"


@contextmanager
def process_group(backend: str | None = None, timeout_s: float = 1800.0) -> Iterator[bool]:
    """Initialise the default process group from the launcher's env vars for the ``with`` block, and destroy
    it afterwards (only if this call created it). Yields True when running distributed (world > 1).

    Without a launcher (WORLD_SIZE unset or 1) nothing is initialised and it yields False; a group someone
    else initialised (e.g. Accelerate's ``Accelerator()``) is used as it is and left alone.
    """
    if is_initialized():
        yield dist.get_world_size() > 1
        return
    if not launched():
        yield False
        return
    missing = [v for v in ("MASTER_ADDR", "MASTER_PORT") if not os.environ.get(v)]
    if missing:
        raise InputError(
            f"WORLD_SIZE={env_world_size()} but {', '.join(missing)} unset; launch with "
            "`torchrun --nproc_per_node N -m glot ...` or `accelerate launch -m glot ...`"
        )
    chosen = backend or default_backend()
    if torch.cuda.is_available():  # so a plain "cuda" (the backbones' default) means this rank's GPU
        torch.cuda.set_device(device())
    dist.init_process_group(backend=chosen, timeout=timedelta(seconds=timeout_s))
    try:
        yield True
    finally:
        if is_initialized():
            dist.destroy_process_group()


def exit_rank(code: int) -> NoReturn:
    """End a launched rank's process after its command returned ``code``: run the ``atexit`` handlers (log
    and temp-file clean-up), flush stdout / stderr, then ``os._exit(code)``, skipping the interpreter's
    finalization and the C++ static destructors.

    Why: with torch 2.13 a gloo rank sometimes died at that stage with SIGABRT ("terminate called without an
    active exception"; the faulthandler dump showed the main thread with no Python frame left and the abort on
    a thread without Python state), after its work was finished and written and its process group destroyed;
    torchrun then reported the whole run as failed. It showed in 2 of 3 full test suites on a Zen 4 machine
    (and once in an earlier pass), never in about 70 launches of the same commands alone. Only the ``glot``
    entry point (``python -m glot``) of a launched rank calls this; ``glot.cli.main`` in-process returns.
    """
    import atexit
    import contextlib
    import sys

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe or stream: nothing left to deliver
            stream.flush()
    os._exit(code)


def barrier() -> None:
    """Wait until every rank gets here (a no-op in a one-process run)."""
    if not active():
        return
    if dist.get_backend() == "nccl":
        dist.barrier(device_ids=[device().index or 0])
    else:
        dist.barrier()


def all_gather_object(obj: Any) -> list[Any]:
    """Every rank's ``obj`` (picklable, small), in rank order; ``[obj]`` in a one-process run."""
    if not active():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank (picklable, small); ``obj`` itself in a one-process run."""
    if not active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def split(indices: Sequence[int], weights: Sequence[float] | None = None, parts: int = 1) -> list[list[int]]:
    """Split ``indices`` into ``parts`` disjoint lists with balanced total weight (deterministic).

    Without ``weights`` the lists are contiguous runs whose sizes differ by at most one. With ``weights``
    (one per index, e.g. text lengths) the heaviest items are placed first, each on the currently lightest
    part (ties: lowest part), which keeps every part within one item's weight of the mean. Each list is
    returned in ascending order of position in ``indices``.
    """
    idx = list(indices)
    if isinstance(parts, bool) or not isinstance(parts, int) or parts < 1:
        raise InputError(f"parts must be a positive int, got {parts!r}")
    if weights is None:
        base, extra = divmod(len(idx), parts)
        bounds = [p * base + min(p, extra) for p in range(parts + 1)]
        return [idx[bounds[p] : bounds[p + 1]] for p in range(parts)]
    w = [float(x) for x in weights]
    if len(w) != len(idx):
        raise InputError(f"split got {len(idx)} indices but {len(w)} weights; pass one weight per index")
    loads = [0.0] * parts
    owner = [0] * len(idx)
    for pos in sorted(range(len(idx)), key=lambda j: (-w[j], j)):
        p = min(range(parts), key=lambda q: (loads[q], q))
        owner[pos] = p
        loads[p] += w[pos]
    return [[idx[j] for j in range(len(idx)) if owner[j] == p] for p in range(parts)]


def shard(
    indices: Sequence[int],
    weights: Sequence[float] | None = None,
    *,
    for_rank: int | None = None,
    world: int | None = None,
) -> list[int]:
    """This rank's share of ``indices`` under :func:`split` (every rank computes the same split, so the
    shares are disjoint and together cover ``indices``). ``for_rank`` / ``world`` default to this process's."""
    r = rank() if for_rank is None else for_rank
    n = world_size() if world is None else world
    assert 0 <= r < n, f"rank {r} outside a world of {n}"
    return split(indices, weights, n)[r]


# ---------------------------------------------------------------------------------------------- failures
class RankError(RuntimeError):
    """Raised on the other ranks when one rank failed inside :func:`on_main` / :func:`everywhere` (that rank
    raises its own exception, with its traceback), so no rank is left waiting in a collective."""


def _failure(err: BaseException) -> tuple[str, str, bool]:
    from glot.errors import GlotError

    return (type(err).__name__, str(err), isinstance(err, GlotError))


def _reraise(failures: list[tuple[int, tuple[str, str, bool]]]) -> None:
    """On a rank that did not fail itself: raise one error naming the first failed rank (InputError when that
    rank's error was a user error, so the CLI prints it as one line)."""
    r, (name, message, user) = failures[0]
    if user:
        raise InputError(f"rank {r}: {message}")
    raise RankError(f"rank {r} failed with {name}: {message}")


def on_main(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run ``fn`` on rank 0 only and return its (picklable) result on every rank. If it raises, rank 0
    re-raises it and every other rank raises :class:`RankError` (InputError for a user error)."""
    if not active():
        return fn(*args, **kwargs)
    result: Any = None
    failure: tuple[str, str, bool] | None = None
    error: BaseException | None = None
    if is_main():
        try:
            result = fn(*args, **kwargs)
        except Exception as err:  # sent to the other ranks, then re-raised here
            error, failure = err, _failure(err)
    ok, value = broadcast_object((failure is None, result if failure is None else failure))
    if error is not None:
        raise error
    if not ok:
        _reraise([(0, value)])
    return value


def everywhere(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run ``fn`` on every rank, then check that all succeeded: a rank that raised re-raises its exception,
    the others raise :class:`RankError` (InputError for a user error) naming it. Returns this rank's result."""
    if not active():
        return fn(*args, **kwargs)
    try:
        result, error = fn(*args, **kwargs), None
    except Exception as err:  # gathered, then re-raised here
        result, error = None, err
    failures = all_gather_object(None if error is None else _failure(error))
    if error is not None:
        raise error
    bad = [(r, f) for r, f in enumerate(failures) if f is not None]
    if bad:
        _reraise(bad)
    return result
