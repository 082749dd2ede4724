"""The pooling-head leaderboard: every head x offline task x backbone, each head at its validation-chosen lr.

For each backbone and task the frozen states are cached once; every pooler then trains at each lr of the grid
on the selection seed (the first of ``--seeds``), the lr with the best VALIDATION accuracy is kept, and the
remaining seeds train at that lr. Reported: eval accuracy at the best-on-validation epoch per seed, the chosen
lr, trainable parameters (pooler + head) and train seconds per epoch. The eval split never picks anything.

Tasks: the stress test with lengths matched (``stress-<ratio>``, so no length cue), the diagnostics ``negation``
and ``roles`` (voice mixed), and ``tweets``. Synthetic tasks use ``glot compare``'s stress settings for the
poolers (tau 0.6, K = 4, P = 64, where a pooler takes them), tweets the package defaults.

    python benchmarks/leaderboard.py --models minilm,smollm2-135m --seeds 0,1,2      # the full board
    python benchmarks/leaderboard.py --markdown                                        # JSON -> .md only

Writes ``benchmarks/results/leaderboard.json`` after every pooler (a rerun resumes: finished runs under
``--runs`` are reused) and ``leaderboard.md``. Timings are noisy on a shared machine.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import torch

from common import machine_info
from glot.io import atomic_write_json, atomic_write_text, read_json

RESULTS = Path(__file__).parent / "results"
SYNTHETIC = {"stress": {"match_lengths": True}, "negation": {}, "roles": {"voice": "mixed"}}
DEFAULT_TASKS = "stress-0.2,stress-0.5,stress-0.8,stress-0.9,negation,roles,tweets"


def task_spec(name: str) -> tuple[str, dict[str, Any]]:
    """``stress-0.9`` -> ("stress", {distractor_ratio 0.9, match_lengths}); diagnostics and tweets as named."""
    base, _, ratio = name.partition("-")
    if base in SYNTHETIC:
        options = dict(SYNTHETIC[base])
        if ratio:
            options["distractor_ratio"] = float(ratio)
        return base, options
    if base == "tweets" and not ratio:
        return "tweets", {}
    raise SystemExit(
        f"unknown leaderboard task {name!r}; use stress-<ratio>, negation[-<ratio>], roles, tweets"
    )


def pooler_options(pooler: str, synthetic: bool) -> dict[str, Any]:
    from glot.cli.compare import STRESS_POOLER_DEFAULTS
    from glot.pooling.poolers import pooler_class

    taken = pooler_class(pooler).options
    return {k: v for k, v in STRESS_POOLER_DEFAULTS.items() if k in taken} if synthetic else {}


def run_head(
    cached: Any, pooler: str, synthetic: bool, args: argparse.Namespace, out: Path
) -> dict[str, Any]:
    """Select the lr on the first seed's validation accuracy, then train every seed at it."""
    from glot.training.config import TrainConfig
    from glot.training.loop import train

    def config(lr: float) -> TrainConfig:
        return TrainConfig(pooler=pooler, pooler_options=pooler_options(pooler, synthetic), lr=lr,
                           epochs=args.epochs, patience=args.patience, batch_size=32)  # fmt: skip

    seeds = args.seeds
    grid = {lr: train(cached, config(lr), out / f"lr-{lr:g}", seeds[:1], progress=False) for lr in args.lrs}
    val = {lr: res["per_seed"][0]["val"] for lr, res in grid.items()}
    lr = max(val, key=lambda v: (val[v], -v))  # ties: the smaller lr
    res = train(cached, config(lr), out / f"lr-{lr:g}", seeds, progress=False)
    per = res["per_seed"]
    return {
        "lr": lr, "val_by_lr": {f"{k:g}": v for k, v in val.items()},
        "accuracy": [m["eval"] for m in per], "val": [m["val"] for m in per], "seeds": list(seeds),
        "epochs_run": [m["epochs_run"] for m in per],
        "seconds_per_epoch": sum(m["train_seconds"] / max(1, m["epochs_run"]) for m in per) / len(per),
        "params": per[0]["params"]["pooler"] + per[0]["params"]["head"],
    }  # fmt: skip


def board(args: argparse.Namespace) -> dict[str, Any]:
    from glot.backbones.frozen import FrozenBackbone
    from glot.cache.task import cache_task
    from glot.cli.compare import _all_poolers
    from glot.data import get_task

    path = args.json
    data = read_json(path) if path.exists() and not args.fresh else {"entries": []}
    done = {(e["model"], e["task"], e["pooler"]) for e in data["entries"]}
    data.update(settings={k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                machine=machine_info())  # fmt: skip
    for model in args.models:
        backbones: dict[Any, Any] = {}
        for name in args.tasks:
            base, options = task_spec(name)
            n = {"n_train": args.n_train, "n_eval": args.n_eval, "seed": args.data_seed}
            task = get_task(base, **options, **n)
            if task.max_length not in backbones:
                kw = {} if task.max_length is None else {"max_length": task.max_length}
                backbones[task.max_length] = FrozenBackbone.from_pretrained(model, **kw)
            backbone = backbones[task.max_length]
            t0 = time.perf_counter()
            cached = cache_task(task, backbone, cache_dir=args.cache_dir, progress=False)
            print(f"[{model} {name}] cached in {time.perf_counter() - t0:.0f} s", flush=True)
            names = args.poolers if args.poolers != ["all"] else _all_poolers().split(",")
            for pooler in [
                "eos" if p == "auto" and backbone.is_decoder else "cls" if p == "auto" else p for p in names
            ]:
                if (model, name, pooler) in done:
                    continue
                t0 = time.perf_counter()
                out = args.runs / model / name / pooler
                entry = {"model": model, "task": name, "pooler": pooler,
                         **run_head(cached, pooler, base in SYNTHETIC, args, out)}  # fmt: skip
                entry["wall_seconds"] = time.perf_counter() - t0
                data["entries"].append(entry)
                atomic_write_json(path, data)
                acc = ", ".join(f"{100 * a:.1f}" for a in entry["accuracy"])
                print(
                    f"[{model} {name}] {pooler}: lr {entry['lr']:g}, eval {acc} ({entry['wall_seconds']:.0f} s)",
                    flush=True,
                )
    return data


# ---------------------------------------------------------------------------------------------- markdown
def _cell(values: list[float]) -> str:
    from glot.training.metrics import format_mean_std

    return format_mean_std(values, digits=1, scale=100)


def _verdicts(entries: list[dict[str, Any]], tasks: list[str]) -> list[str]:
    """Per task: GLOT against the best other head, with a Welch test (claims need >= 3 seeds)."""
    import numpy as np

    from glot.training.metrics import compare_means

    lines = []
    for task in tasks:
        rows = {e["pooler"]: 100 * np.asarray(e["accuracy"]) for e in entries if e["task"] == task}
        if "glot" not in rows or len(rows) < 2:
            continue
        best = max((p for p in rows if p != "glot"), key=lambda p: float(rows[p].mean()))
        test = compare_means(rows["glot"], rows[best])
        lines.append(f"- {task}: glot {_cell(list(rows['glot'] / 100))} vs best other head {best} "
                     f"{_cell(list(rows[best] / 100))}: {test['gap']:+.1f} points, {test['verdict']}"
                     + (f" (Welch p = {test['p']:.2g})" if test.get("p") is not None else ""))  # fmt: skip
    return lines


def markdown(data: dict[str, Any]) -> str:
    s = data["settings"]
    parts = ["## Pooling-head leaderboard\n",
             f"Eval accuracy (%) at the best-on-validation epoch, mean ± std over seeds {s['seeds']}; each head at "
             f"its validation-chosen lr from {s['lrs']} (chosen on seed {s['seeds'][0]}); {s['n_train']} train / "
             f"{s['n_eval']} eval examples per task, at most {s['epochs']} epochs (patience {s['patience']}). "
             "params = pooler + task head (synthetic tasks use the stress settings, tweets the defaults, hence two counts); s/epoch = mean train seconds per epoch over the tasks (noisy: shared "
             "CPU).\n"]  # fmt: skip
    for model in dict.fromkeys(e["model"] for e in data["entries"]):
        entries = [e for e in data["entries"] if e["model"] == model]
        tasks = list(dict.fromkeys(e["task"] for e in entries))
        cols = ["head", *tasks, "params", "s/epoch"]
        lines = [f"\n### {model}\n", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        for pooler in dict.fromkeys(e["pooler"] for e in entries):
            mine = {e["task"]: e for e in entries if e["pooler"] == pooler}
            cells = [
                _cell(mine[t]["accuracy"]) + f" <sub>{mine[t]['lr']:g}</sub>" if t in mine else "—"
                for t in tasks
            ]
            secs = sum(e["seconds_per_epoch"] for e in mine.values()) / len(mine)
            params = " / ".join(
                dict.fromkeys(f"{mine[t]['params']:,}" for t in tasks if t in mine)
            )  # task order
            lines.append(f"| {pooler} | " + " | ".join(cells) + f" | {params} | {secs:.1f} |")
        parts += ["\n".join(lines), "\n\nThe small number under each cell is the chosen lr.\n\n",
                  "\n".join(_verdicts(entries, tasks)), "\n"]  # fmt: skip
    return "".join(parts)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="minilm", type=lambda v: v.split(","))
    p.add_argument("--tasks", default=DEFAULT_TASKS, type=lambda v: v.split(","))
    p.add_argument("--poolers", default="all", type=lambda v: v.split(","))
    p.add_argument("--seeds", default="0,1,2", type=lambda v: [int(x) for x in v.split(",")])
    p.add_argument("--lrs", default="1e-3,3e-3,1e-2", type=lambda v: [float(x) for x in v.split(",")])
    p.add_argument("--n-train", type=int, default=2000)
    p.add_argument("--n-eval", type=int, default=500)
    p.add_argument("--data-seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--patience", type=int, default=3)
    p.add_argument("--cache-dir", default=None)
    p.add_argument("--runs", type=Path, default=Path("runs/leaderboard"))
    p.add_argument("--json", type=Path, default=RESULTS / "leaderboard.json")
    p.add_argument("--fresh", action="store_true", help="ignore entries already in --json")
    p.add_argument("--markdown", action="store_true", help="only regenerate the .md from --json")
    p.add_argument(
        "--merge", default=None, help="comma-separated JSON files of partial boards to merge into --json"
    )
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.merge:
        parts = [read_json(Path(f)) for f in args.merge.split(",")]
        data = {**parts[0], "entries": [e for part in parts for e in part["entries"]]}
        atomic_write_json(args.json, data)
    else:
        data = read_json(args.json) if args.markdown else board(args)
    atomic_write_text(args.json.with_suffix(".md"), markdown(data))
    print(f"wrote {args.json} and {args.json.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
