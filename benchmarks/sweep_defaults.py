"""How the training defaults were chosen: lr x input normalisation for every pooler on the packaged backbones.

Runs every (backbone, task, pooler, normalize, lr) on the packaged tasks and records the VALIDATION accuracy
only (the split carved from train, as every run selects its epoch): the eval split is dropped from the cached
task before training, so no eval label is read. Tasks: the stress test at 90% distractors with the
length-matched generator (glot compare's architecture: K = 4, P = 64, tau = auto) and the tweets task
(the package defaults: K = 2, P = 256, tau = auto). Each run trains up to ``--epochs`` with early stopping
(``--patience``) and keeps the best-on-validation epoch, as ``glot train`` does.

    python benchmarks/sweep_defaults.py --models minilm,smollm2-135m --lrs 3e-4,1e-3,3e-3,1e-2

Output: benchmarks/results/sweep_defaults.json (every run, written after each one, so a partial sweep is
kept; runs already in ``--runs`` are reused) and sweep_defaults.md (the tables).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

from common import machine_info  # type: ignore[import-not-found]
from glot.backbones.frozen import FrozenBackbone
from glot.cache.task import CachedTask, cache_task
from glot.data import get_task
from glot.io import atomic_write_json, atomic_write_text
from glot.training.config import DEFAULT_LR, DEFAULT_LR_PLATEAU, TrainConfig
from glot.training.loop import NonFiniteError, fit

RESULTS = Path(__file__).parent / "results"
STRESS_ARCH = {"num_layers": 4, "hidden_dim": 64}  # glot compare's (the paper's stress settings)
LEARNED = ("adapool", "mlp", "glot")
#: Mean validation accuracies this close count as a tie: about one text of a 200-text validation split, far
#: below the seed spread of a single run. A tie keeps the package default (no change without evidence).
TIE = 0.005
SWEEP_NOTE = (
    "Command and reading: docs/results.md, section 6c. Validation accuracy only (the eval split is dropped before "
    "training); each cell lists the seeds' runs, seed 0 first, with the epochs each ran (early stopping). An lr "
    "with a p<N> suffix halves after N epochs without a validation gain (--lr-plateau N); the others are "
    "constant.\n"
)


def load_task(name: str, n_train: int, n_eval: int) -> Any:
    if name == "stress":
        return get_task(
            "stress", distractor_ratio=0.9, match_lengths=True, seed=0, n_train=n_train, n_eval=n_eval
        )
    return get_task(name, seed=0, n_train=n_train, n_eval=n_eval)


def train_only(cached: CachedTask) -> CachedTask:
    """The cached task without its eval split: the sweep never reads an eval label."""
    return CachedTask(task=cached.task, states=cached.states, ids={"train": cached.ids["train"]},
                      backbone=cached.backbone)  # fmt: skip


def pooler_options(task: str, pooler: str, normalize: str) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if pooler in LEARNED:
        options["normalize"] = normalize
    if pooler in ("mlp", "glot") and task == "stress":
        options |= STRESS_ARCH
    if pooler == "glot":
        options["tau"] = "auto"
    return options


def lr_label(lr: float, plateau: int) -> str:
    """The sweep's name of a learning-rate setting: the lr, and ``p<N>`` when it halves after N epochs without
    a validation gain (``--lr-plateau``), e.g. ``0.003`` (constant) or ``0.003p2``."""
    return f"{lr:g}" + (f"p{plateau}" if plateau else "")


def label_order(label: str) -> tuple[float, int]:
    lr, _, plateau = label.partition("p")
    return float(lr), int(plateau or 0)


def run_one(cached: CachedTask, task: str, pooler: str, normalize: str, lr: float, args: argparse.Namespace,
            seed: int, folder: Path) -> dict[str, Any]:  # fmt: skip
    config = TrainConfig(pooler=pooler, pooler_options=pooler_options(task, pooler, normalize), lr=lr,
                         lr_plateau=args.lr_plateau, epochs=args.epochs, patience=args.patience,
                         seed=seed)  # fmt: skip
    start = time.perf_counter()
    try:
        m = fit(cached, config, folder, progress=False)
    except NonFiniteError as err:
        return {"diverged": True, "error": str(err), "seconds": time.perf_counter() - start}
    return {
        # the best validation score reached (the kept epoch may be one example below it: select_slack)
        "diverged": False, "val": max(h["val"] for h in m["history"]), "best_val_epoch": m["best_val_epoch"],
        "epochs_run": m["epochs_run"],
        "val_per_epoch": [h["val"] for h in m["history"]], "input_fit": m.get("input_fit"),
        "train_seconds": m["train_seconds"], "sizes": m["sizes"],
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="minilm,smollm2-135m,mpnet,gemma3-270m")
    p.add_argument("--tasks", default="stress,tweets")
    p.add_argument("--poolers", default="mean,adapool,mlp,glot")
    p.add_argument(
        "--normalize", default="standardize", help="for the learned poolers, e.g. none,standardize"
    )
    p.add_argument("--lrs", default="1e-3,3e-3,1e-2")
    p.add_argument(
        "--lr-plateau",
        type=int,
        default=0,
        help="halve the lr after N epochs without a validation gain (0 = off)",
    )
    p.add_argument("--seeds", default="0")
    p.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    p.add_argument("--patience", type=int, default=TrainConfig.patience)
    p.add_argument("--n-train", default="stress=800,tweets=2000", help="train examples per task")
    p.add_argument("--runs", type=Path, default=Path("runs/sweep-defaults"))
    p.add_argument("--out", type=Path, default=RESULTS / "sweep_defaults.json")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    sizes = {k: int(v) for k, v in (kv.split("=") for kv in args.n_train.split(","))}
    done: dict[str, Any] = json.loads(args.out.read_text())["runs"] if args.out.exists() else {}
    for model in args.models.split(","):
        for task_name in args.tasks.split(","):
            task = load_task(task_name, sizes[task_name], max(1, sizes[task_name] // 4))
            backbone = FrozenBackbone.from_pretrained(model, max_length=task.max_length)
            cached = train_only(cache_task(task, backbone, progress=False))
            for pooler in args.poolers.split(","):
                norms = args.normalize.split(",") if pooler in LEARNED else ["none"]
                for normalize in norms:
                    for lr in args.lrs.split(","):
                        for seed in (int(s) for s in args.seeds.split(",")):
                            label = lr_label(float(lr), args.lr_plateau)
                            key = f"{model}|{task_name}|{pooler}|{normalize}|{label}|{seed}"
                            folder = args.runs / key.replace("|", "/")
                            done[key] = run_one(
                                cached, task_name, pooler, normalize, float(lr), args, seed, folder
                            )
                            print(key, json.dumps({k: done[key].get(k) for k in ("val", "epochs_run", "diverged")}),
                                  flush=True)  # fmt: skip
                            write(args, done)
    return 0


def write(args: argparse.Namespace, runs: dict[str, Any]) -> None:
    meta = {k: v for k, v in vars(args).items() if k not in ("runs", "out")}
    atomic_write_json(args.out, {"machine": machine_info(), "settings": meta, "runs": runs})
    atomic_write_text(args.out.with_suffix(".md"), tables(runs))


def tables(runs: dict[str, Any]) -> str:
    """Validation accuracy (%) per (backbone, task, pooler, normalize) x lr; 'div' = diverged."""
    rows: dict[tuple[str, ...], dict[str, str]] = {}
    lrs: list[str] = []
    for key, r in runs.items():
        model, task, pooler, normalize, lr, seed = key.split("|")
        lrs += [lr] if lr not in lrs else []
        cell = "div" if r["diverged"] else f"{100 * r['val']:.1f} ({r['epochs_run']} ep)"
        rows.setdefault((model, task, pooler, normalize), {})[lr + "|" + seed] = cell
    lrs.sort(key=label_order)
    head = "| backbone | task | pooler | normalize | " + " | ".join(f"lr {lr}" for lr in lrs) + " |"
    out = [
        "## Defaults sweep: validation accuracy % (epochs run)\n",
        SWEEP_NOTE,
        head,
        "|" + "---|" * (4 + len(lrs)),
    ]
    for (model, task, pooler, normalize), cells in rows.items():
        vals = [" / ".join(v for k, v in sorted(cells.items()) if k.split("|")[0] == lr) or "-" for lr in lrs]
        out.append(f"| {model} | {task} | {pooler} | {normalize} | " + " | ".join(vals) + " |")
    return "\n".join(out + choice(runs, lrs)) + "\n"


def choice(runs: dict[str, Any], lrs: list[str]) -> list[str]:
    """Which default lr the sweep supports: over every (backbone, task, learned pooler, normalize, seed) run at
    every lr of the grid, each lr's mean validation accuracy (a diverged run counts as 0), its worst run and how
    many runs it is within 1 point of that run's best lr; then the best lr and those tied with it (``TIE``)."""
    groups: dict[tuple[str, ...], dict[str, float]] = {}
    for key, r in runs.items():
        model, task, pooler, normalize, lr, seed = key.split("|")
        if pooler in LEARNED:
            groups.setdefault((model, task, pooler, normalize, seed), {})[lr] = (
                0.0 if r["diverged"] else r["val"]
            )
    full = {g: v for g, v in groups.items() if set(v) == set(lrs)}
    if not full:
        return []
    best = {g: max(v.values()) for g, v in full.items()}
    out = ["", f"Over the {len(full)} learned-pooler runs with every lr of the grid (a diverged run counts as 0):", "",
           "| lr | mean val % | worst val % | within 1 point of the run's best lr | diverged |", "|---|---|---|---|---|"]  # fmt: skip
    mean = {lr: sum(v[lr] for v in full.values()) / len(full) for lr in lrs}
    for lr in lrs:
        near = sum(v[lr] >= best[g] - 0.01 for g, v in full.items())
        div = sum(runs[f"{g[0]}|{g[1]}|{g[2]}|{g[3]}|{lr}|{g[4]}"]["diverged"] for g in full)
        worst = min(v[lr] for v in full.values())
        out.append(f"| {lr} | {100 * mean[lr]:.1f} | {100 * worst:.1f} | {near} of {len(full)} | {div} |")
    top = max(lrs, key=lambda lr: (mean[lr], -label_order(lr)[0]))
    tied = [lr for lr in lrs if mean[lr] >= mean[top] - TIE]
    default = lr_label(DEFAULT_LR, DEFAULT_LR_PLATEAU)
    verdict = "is among them: the sweep supports it" if default in tied else "is NOT among them: change it"
    out += ["", f"Best mean validation accuracy: lr {top}; within {100 * TIE:.1f} points of it (a tie at this "
            f"sweep's noise): {', '.join(tied)}. The package default (lr {default}) {verdict}."]  # fmt: skip
    return out


if __name__ == "__main__":
    sys.exit(main())
