"""``glot cache``: run a frozen backbone once over every unique text of a task and store the token states."""

from __future__ import annotations

import argparse
import time
import warnings
from typing import TYPE_CHECKING, Any

from glot.cli.common import add_json_argument, maybe_write_json, print_table, truncation_message, warn
from glot.cli.options import add_model_arguments, add_task_arguments, cli_device, load_backbone, load_task

# torch, transformers, PyG and the modules built on them are imported inside the functions (lazy command
# loading): `glot cache --help` loads none of them (tests/test_imports.py).

if TYPE_CHECKING:
    pass

HELP = "run a frozen backbone over a task once and store its token states"

# Several processes: `torchrun --nproc_per_node N -m glot cache ...` (or `accelerate launch -m glot cache ...`)
# splits the missing shards over the ranks (glot.distributed, glot.cache.build); rank 0 prints and writes --json.


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    add_task_arguments(parser)
    parser.add_argument("--batch-size", type=int, default=64, help="backbone batch size (default 64)")
    parser.add_argument(
        "--shard-size",
        type=int,
        default=1024,
        help="texts per cache shard file (default 1024); under torchrun the shards are the unit of work split "
        "over the ranks, so use several shards per rank",
    )
    from glot.training.config import DEVICE_RULE  # no torch

    parser.add_argument(
        "--device", default="auto",
        help=f"where the backbone runs: {DEVICE_RULE} (default auto; --device-map auto overrides it)",
    )  # fmt: skip
    add_json_argument(parser)


def _long(backbone: Any) -> str:
    """How texts longer than max_length were handled (the --long setting)."""
    return "truncate" if backbone.long == "truncate" else f"chunk (overlap {backbone.chunk_overlap})"


def run(args: argparse.Namespace) -> int:
    from glot import distributed

    with distributed.process_group():
        return _run(args, distributed.is_main(), distributed.world_size())


def _run(args: argparse.Namespace, main: bool, ranks: int) -> int:
    from glot.backbones.tokenize import TruncationWarning
    from glot.cache import resolve_cache_root
    from glot.cache.task import cache_task

    cli_device(args.device)  # --device cuda without CUDA: one line before anything is read or written
    resolve_cache_root(args.cache_dir)  # a bad --cache-dir fails here, before any model is loaded
    task = load_task(args)
    backbone = load_backbone(args, args.max_length or task.max_length)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TruncationWarning)  # reported once below, with the CLI's fix
        cached = cache_task(
            task, backbone, cache_dir=args.cache_dir, dtype=args.cache_dtype, batch_size=args.batch_size,
            shard_size=args.shard_size, progress=not args.no_progress,
        )  # fmt: skip
    seconds = time.perf_counter() - start
    states = cached.states
    size_mb = sum(int(r["bytes"]) for r in states.manifest["shards"]) / 2**20
    info = {
        "task": task.name, "model": args.model, "path": str(states.path), "key": cached.cache_key,
        "texts": len(states), "tokens": states.num_tokens, "dim": states.dim, "dtype": states.dtype,
        "size_mb": round(size_mb, 1), "seconds": round(seconds, 1), "max_length": states.truncated_at,
        "truncated": states.num_truncated, "long": _long(backbone),
        "windowed": int((states.lengths > backbone.max_length).sum()) if backbone.long == "chunk" else 0,
        "ranks": ranks, "shards": len(states.manifest["shards"]), "shards_computed": len(states.built_shards or []),
        "splits": {name: len(ids["texts"]) for name, ids in cached.ids.items()},
    }  # fmt: skip
    if not main:  # rank 0 reports for the group
        return 0
    rows = [[k, v] for k, v in info.items() if k != "splits"]
    rows += [[f"examples ({name})", n] for name, n in info["splits"].items()]
    print_table(f"hidden-state cache: {args.model} on {task.name}", ["", "value"], rows)
    message = truncation_message(
        states.num_truncated, len(states), states.truncated_at, getattr(backbone, "length_limit", None)
    )
    if message:
        warn(message)
    maybe_write_json(args.json, info)
    return 0
