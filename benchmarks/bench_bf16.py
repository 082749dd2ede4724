"""Pooler + head in bf16 vs fp32 (``head_dtype``, issue 12 item 3): accuracy over seeds and step time, side by side.

Run: ``nice -n 10 python benchmarks/bench_bf16.py --threads 1 [--quick]`` (full run ~25 min on 2 busy cores).

Accuracy: MiniLM states (backbone dtype "auto", one cache per task shared by both head dtypes), trained exactly
as ``glot train`` trains (``glot.training.loop.fit``), seeds 0-2, ``head_dtype`` fp32 vs bf16 with everything
else equal: the stress test at distractor ratio 0.9 with the demo's settings (``glot compare`` defaults: lr 1e-2,
10 epochs, GLOT tau 0.6, K 4, P 64; ``--stress-n-train`` generated examples) and tweets (``glot train``
defaults: lr 2e-4, 3 epochs, GLOT defaults K 2, P 256). GLOT and AdaPool. Per pair of runs (same seed) the
difference bf16 - fp32 is reported beside the seed spread of fp32.

Step time: one training step (pooler + head forward, cross-entropy, backward, Adam), and a forward under
no_grad, on real batches of those caches (stress: B = 32, the demo's; tweets: B = 128), fp32 vs bf16
interleaved (``compare_times``). The timing also runs in a child process with the CPU's bf16 instructions masked
(``ONEDNN_MAX_CPU_ISA=AVX2``, ``ATEN_CPU_CAPABILITY=avx2``): the class of CPUs without native bf16, where
``head_dtype="auto"`` keeps fp32. The rule ``auto`` follows is what these two measurements show.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from common import add_common_arguments, apply_quick, apply_threads, compare_times, machine_info
from glot.backbones.dtypes import cpu_bf16_features
from glot.training import precision
from glot.training.config import TrainConfig
from report import args_json, check_out, command_line, fmt_ms, header, md_table, write_results

STRESS_GLOT = {"tau": 0.6, "num_layers": 4, "hidden_dim": 64}  # glot compare's stress defaults
MASKED_ENV = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}


def tasks(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Task name -> how to build it, its batch size for timing and its training configs per pooler."""
    from glot.data import get_task

    stress = TrainConfig(lr=1e-2, epochs=args.stress_epochs)
    return {
        "stress 0.9": {
            "build": lambda: get_task("stress", distractor_ratio=0.9, n_train=args.stress_n_train, n_eval=500),
            "batch": 32,
            "configs": {"glot": stress.replace(pooler_options=STRESS_GLOT), "adapool": stress.replace(
                pooler="adapool")},
        },
        "tweets": {
            "build": lambda: get_task("tweets", n_train=args.tweets_n_train, n_eval=args.tweets_n_eval),
            "batch": 128,
            "configs": {"glot": TrainConfig(epochs=args.tweets_epochs),
                        "adapool": TrainConfig(pooler="adapool", epochs=args.tweets_epochs)},
        },
    }  # fmt: skip


def cached_task(build: Any) -> Any:
    from glot.backbones.frozen import FrozenBackbone
    from glot.cache.task import cache_task

    task = build()
    backbone = FrozenBackbone.from_pretrained("minilm", max_length=task.max_length)
    return cache_task(task, backbone, progress=False)


# ---------------------------------------------------------------------------------------------- accuracy
def accuracy(
    cached: Any, configs: dict[str, TrainConfig], seeds: list[int], root: Path
) -> list[dict[str, Any]]:
    from glot.training.loop import fit

    rows = []
    for pooler, config in configs.items():
        runs: dict[str, list[dict[str, Any]]] = {"fp32": [], "bf16": []}
        for seed in seeds:
            for dtype in runs:  # same seed, fp32 then bf16: a pair
                run = root / cached.task.name / pooler / dtype / f"seed-{seed}"
                m = fit(cached, config.replace(seed=seed, head_dtype=dtype), run, progress=False)
                runs[dtype].append(m)
                print(f"{cached.task.name} {pooler} {dtype} seed {seed}: eval {m['eval']:.4f} "
                      f"({m['train_seconds']:.1f} s)", flush=True)  # fmt: skip
        acc = {d: [100 * m["eval"] for m in ms] for d, ms in runs.items()}
        secs = {d: [m["train_seconds"] for m in ms] for d, ms in runs.items()}
        diffs = [b - a for a, b in zip(acc["fp32"], acc["bf16"], strict=True)]
        rows.append({"pooler": pooler, "accuracy": acc, "train_seconds": secs, "diff": diffs,
                     "metric": cached.task.metric})  # fmt: skip
    return rows


# ---------------------------------------------------------------------------------------------- timing
def step_contenders(cached: Any, config: TrainConfig, batch: int, train: bool) -> dict[str, Any]:
    """fp32 and bf16 step (or no_grad forward) on the first ``batch`` training rows, shared weights."""
    from glot.training.loop import build_models

    pooler, head = build_models(cached, config)
    rows = np.arange(batch)
    x, ptr = cached.states.packed(cached.ids["train"]["texts"][rows])
    labels = torch.as_tensor(cached.task.splits["train"].labels[rows])
    params = [*pooler.parameters(), *head.parameters()]
    opt = torch.optim.Adam(params, lr=1e-4)

    def make(dtype: str) -> Any:
        def step() -> None:
            if not train:
                with torch.no_grad():
                    head(precision.pool(pooler, x, ptr, dtype))
                return
            loss = F.cross_entropy(head(precision.pool(pooler, x, ptr, dtype)), labels)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        return step

    return {"fp32": make("fp32"), "bf16": make("bf16"), "N": int(x.shape[0])}


def timing(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    for name, spec in tasks(args).items():
        cached = cached_task(spec["build"])
        for pooler, config in spec["configs"].items():
            for train in (True, False):
                fns = step_contenders(cached, config, spec["batch"], train)
                n = fns.pop("N")
                times = compare_times(fns, repeats=args.repeats, warmup=2, clock=args.clock)
                rows.append({"task": name, "pooler": pooler, "stage": "train step" if train else "forward",
                             "B": spec["batch"], "N": n, "fp32": times["fp32"], "bf16": times["bf16"],
                             "speedup": times["fp32"]["median_s"] / times["bf16"]["median_s"]})  # fmt: skip
                print(f"{name} {pooler} {rows[-1]['stage']}: fp32 {fmt_ms(times['fp32'])} ms, bf16 "
                      f"{fmt_ms(times['bf16'])} ms", flush=True)  # fmt: skip
    return rows


def masked_timing(argv: Sequence[str] | None, args: argparse.Namespace) -> dict[str, Any]:
    """The timing in a child process with the CPU's bf16 (and AVX-512) instructions masked."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "timing.json"
        given = list(sys.argv[1:] if argv is None else argv)
        cmd = [
            sys.executable,
            __file__,
            *given,
            "--repeats",
            str(args.masked_repeats),
            "--timing-only",
            str(out),
        ]
        subprocess.run(cmd, check=True, env={**os.environ, **MASKED_ENV})
        return dict(json.loads(out.read_text()))


# ---------------------------------------------------------------------------------------------- report
def _mean_std(values: list[float]) -> str:
    std = statistics.stdev(values) if len(values) > 1 else float("nan")
    return f"{statistics.mean(values):.1f} ± {std:.1f}"


def markdown(acc: dict[str, list[dict[str, Any]]], native: list[dict[str, Any]], masked: dict[str, Any] | None,
             info: dict[str, Any], command: str, args: argparse.Namespace) -> str:  # fmt: skip
    flags = ", ".join(cpu_bf16_features()) or "none"
    text = header("bf16 pooler + head (head_dtype)", command, info, args)
    text += (f"CPU bf16 features: {flags}; `head_dtype=\"auto\"` resolves to "
             f"**{precision.resolve_head_dtype('auto')}** here (auto = bf16 on CUDA with bf16 and on CPUs with "
             "avx512_bf16 or AMX, fp32 elsewhere: compare the two step-time tables). Under bf16 only the "
             "GNN / readout matmuls run in bf16; weights, graph construction, softmaxes, the pooled embedding, the "
             f"head and its loss stay fp32. Seeds {args.seeds}.\n\n")  # fmt: skip
    rows = []
    for task, results in acc.items():
        for r in results:
            d = r["diff"]
            rows.append([task, r["pooler"], _mean_std(r["accuracy"]["fp32"]), _mean_std(r["accuracy"]["bf16"]),
                         f"{statistics.mean(d):+.2f} [{min(d):+.2f}, {max(d):+.2f}]",
                         " / ".join(f"{x:.1f}" for x in r["accuracy"]["fp32"]),
                         " / ".join(f"{x:.1f}" for x in r["accuracy"]["bf16"]),
                         f"{statistics.median(r['train_seconds']['fp32']):.0f} / "
                         f"{statistics.median(r['train_seconds']['bf16']):.0f}"])  # fmt: skip
    if rows:
        text += (
            "Accuracy (eval, %; mean ± sample std over seeds) and training time (median s). A pair of runs "
            "shares its seed, data and initial weights; bf16 rounding still sends training down another path, "
            "so read each difference against the fp32 spread over seeds.\n\n"
        )
        text += md_table(["task", "pooler", "fp32", "bf16", "bf16 - fp32 per seed: mean [min, max]",
                          "fp32 per seed", "bf16 per seed", "train s fp32 / bf16"], rows)  # fmt: skip
        text += "\n"
    for title, timed in (("native bf16 (this CPU)", native),
                         ("bf16 instructions masked (ONEDNN_MAX_CPU_ISA=AVX2, ATEN_CPU_CAPABILITY=avx2)",
                          (masked or {}).get("timing"))):  # fmt: skip
        if not timed:
            continue
        repeats = args.repeats if timed is native else args.masked_repeats
        text += f"Step time, {title}: ms, median [min-max] of {repeats} interleaved repeats.\n\n"
        text += md_table(["task", "pooler", "stage", "B", "tokens", "fp32 ms", "bf16 ms", "fp32 / bf16"],
                         [[t["task"], t["pooler"], t["stage"], t["B"], t["N"], fmt_ms(t["fp32"]), fmt_ms(t["bf16"]),
                           f"{t['speedup']:.2f}x"] for t in timed])  # fmt: skip
        text += "\n"
    return text


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--stress-n-train", type=int, default=1000, help="generated examples (demo: 2000)")
    parser.add_argument("--stress-epochs", type=int, default=10)
    parser.add_argument("--tweets-n-train", type=int, default=2000)
    parser.add_argument("--tweets-n-eval", type=int, default=1000)
    parser.add_argument("--tweets-epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--masked-repeats", type=int, default=5, help="repeats of the masked-bf16 timing")
    parser.add_argument("--no-accuracy", action="store_true", help="timing only")
    parser.add_argument("--no-masked", action="store_true", help="skip the masked-bf16 timing child")
    parser.add_argument("--timing-only", type=Path, default=None, help=argparse.SUPPRESS)  # child: JSON here
    args = parser.parse_args(argv)
    apply_quick(args, argv, seeds=[0], stress_n_train=200, stress_epochs=1, tweets_n_train=300,
                tweets_n_eval=200, tweets_epochs=1, repeats=3, masked_repeats=2)  # fmt: skip
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    apply_threads(args)
    if args.timing_only is not None:  # the masked child: timing only, as JSON
        out = {
            "timing": timing(args),
            "machine": machine_info(),
            "torch_capability": torch.backends.cpu.get_cpu_capability(),
        }
        args.timing_only.write_text(json.dumps(out))
        return 0
    check_out(args)
    info = machine_info() | {"cpu_bf16_features": list(cpu_bf16_features())}
    acc: dict[str, list[dict[str, Any]]] = {}
    if not args.no_accuracy:
        with tempfile.TemporaryDirectory() as root:
            for name, spec in tasks(args).items():
                acc[name] = accuracy(cached_task(spec["build"]), spec["configs"], args.seeds, Path(root))
    native = timing(args)
    masked = None if args.no_masked else masked_timing(argv, args)
    text = markdown(acc, native, masked, info, command_line("bench_bf16.py", argv), args)
    print(text)
    if not args.no_write:
        data = {"machine": info, "args": args_json(args), "accuracy": acc, "timing": native, "masked": masked}
        write_results("bf16", data, text, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
