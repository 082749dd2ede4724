"""The pooling-head leaderboard: every head x offline task x backbone, each head at its validation-chosen lr.

For each backbone and task the frozen states are cached once; every pooler then trains at each lr of the grid
on the selection seed (the first of ``--seeds``), the lr with the best VALIDATION accuracy is kept, and the
remaining seeds train at that lr. Reported: eval accuracy at the best-on-validation epoch per seed, the chosen
lr, trainable parameters (pooler + head) and train seconds per epoch. The eval split never picks anything.

Tasks: the stress test with lengths matched (``stress-<ratio>``, so no length cue), the diagnostics ``negation``
and ``roles`` (voice mixed), and ``tweets``. Synthetic tasks use ``glot compare``'s stress settings for the
poolers (tau auto, K = 4, P = 64, where a pooler takes them), tweets the package defaults.

    python benchmarks/leaderboard.py --models minilm,smollm2-135m      # the full board (many CPU hours)
    python benchmarks/leaderboard.py --markdown                         # train nothing: cells -> report

Resumable and incremental: each cell — one (model, task, head, lr, seed) run — is stored as its own JSON file
under ``--cells`` (default ``benchmarks/results/leaderboard-cells/``) the moment it finishes, and the report
(``--json`` and its ``.md``, i.e. ``benchmarks/results/leaderboard.{json,md}``) is rewritten from whatever
cells exist, missing ones marked. A rerun of the same command trains only the cells that are missing (a run
stopped mid-way resumes from its last epoch in its glot run folder under ``--runs``), and loads no backbone
when none is. A board keeps one set of settings (n_train, n_eval, data seed, epochs, patience, lrs, selection
seed, and the package's epoch-selection slack, ``TrainConfig.select_slack``): a run with other settings is
refused, so give it its own ``--json``. Parallel runs into one board (e.g. one per ``--models``) are safe; the grids they ask for are merged. A cell records the head's full settings;
when a head's defaults change, its old cells are stale (left out of the report, retrained by the next run, in
a fresh run folder). Timings are noisy on a shared machine.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import torch

from common import machine_info
from glot.io import atomic_write_json, atomic_write_text
from glot.training.config import DEFAULT_SELECT_SLACK
from leaderboard_cells import Board, aggregate, choose_lr, markdown, slug

RESULTS = Path(__file__).parent / "results"
SYNTHETIC = {"stress": {"match_lengths": True}, "negation": {}, "roles": {"voice": "mixed"}}
DEFAULT_TASKS = "stress-0.2,stress-0.5,stress-0.8,stress-0.9,negation,roles,tweets"
BATCH_SIZE = 32


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


def head_settings(task: str, pooler: str) -> dict[str, Any]:
    """The head's full settings on ``task`` as trained now (its defaults with the task's options): the cells'
    staleness check (leaderboard_cells.Board)."""
    from glot.pooling.poolers import pooler_class

    options = pooler_options(pooler, task_spec(task)[0] in SYNTHETIC)
    return pooler_class(pooler).settings(**options).options()


def settings_tag(settings: dict[str, Any]) -> str:
    """8 hex digits naming a head's settings: its run folders, so a changed default trains in a fresh one."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:8]


class Source:
    """One model's frozen backbone(s) and cached tasks, loaded only when a cell has to train (a rerun of a
    finished board loads nothing)."""

    def __init__(self, model: str, args: argparse.Namespace) -> None:
        self.model, self.args = model, args
        self.backbones: dict[int | None, Any] = {}
        self.tasks: dict[str, Any] = {}

    def backbone(self, max_length: int | None) -> Any:
        from glot.backbones.frozen import FrozenBackbone

        if max_length not in self.backbones:
            kw = {} if max_length is None else {"max_length": max_length}
            self.backbones[max_length] = FrozenBackbone.from_pretrained(self.model, **kw)
        return self.backbones[max_length]

    def cached(self, name: str) -> Any:
        from glot.cache.task import cache_task
        from glot.data import get_task

        if name not in self.tasks:
            base, options = task_spec(name)
            a = self.args
            task = get_task(base, **options, n_train=a.n_train, n_eval=a.n_eval, seed=a.data_seed)
            t0 = time.perf_counter()
            self.tasks[name] = cache_task(
                task, self.backbone(task.max_length), cache_dir=a.cache_dir, progress=False
            )
            print(f"[{self.model} {name}] cached in {time.perf_counter() - t0:.0f} s", flush=True)
        return self.tasks[name]


def resolve_poolers(board: Board, source: Source, requested: list[str]) -> list[str]:
    """``auto`` as the first-token pooler that fits the model (cls; eos on a decoder), recorded on the board."""
    if "auto" not in requested:
        return requested
    first = board.first_token(source.model)
    if first is None:
        first = "eos" if source.backbone(None).is_decoder else "cls"
        board.set_first_token(source.model, first)
    return list(dict.fromkeys(first if p == "auto" else p for p in requested))


def train_cell(
    source: Source, task: str, pooler: str, lr: float, seed: int, args: argparse.Namespace
) -> dict:
    """Train one (model, task, head, lr, seed) run in its glot run folder (which resumes) and return the cell."""
    from glot.training.config import TrainConfig
    from glot.training.loop import NonFiniteError, fit

    s, head = args.settings, head_settings(task, pooler)
    config = TrainConfig(pooler=pooler, pooler_options=pooler_options(pooler, task_spec(task)[0] in SYNTHETIC),
                         lr=lr, epochs=s["epochs"], patience=s["patience"], batch_size=s["batch_size"],
                         select_slack=s["select_slack"], seed=seed)  # fmt: skip
    tag = f"n{s['n_train']}-{s['n_eval']}-d{s['data_seed']}-e{s['epochs']}-p{s['patience']}-s{s['select_slack']}"
    run_dir = (args.runs / tag / slug(source.model) / task / pooler / settings_tag(head) / f"lr-{lr:g}"
               / f"seed-{seed}")  # fmt: skip
    cell: dict[str, Any] = {"model": source.model, "task": task, "pooler": pooler, "lr": lr, "seed": seed,
                            "head_settings": head, "run_dir": str(run_dir), "machine": machine_info()}  # fmt: skip
    t0 = time.perf_counter()
    try:
        m = fit(source.cached(task), config, run_dir, progress=False)
    except NonFiniteError as err:  # a diverged run is a result too (it never wins the lr choice)
        print(f"[{source.model} {task}] {pooler} lr {lr:g} seed {seed}: diverged", flush=True)
        return cell | {"diverged": True, "error": str(err)}
    print(f"[{source.model} {task}] {pooler} lr {lr:g} seed {seed}: val {100 * m['val']:.1f}, eval "
          f"{100 * m['eval']:.1f} ({time.perf_counter() - t0:.0f} s)", flush=True)  # fmt: skip
    return cell | {"diverged": False, "val": m["val"], "eval": m["eval"], "epochs_run": m["epochs_run"],
                   "best_val_epoch": m["best_val_epoch"], "train_seconds": m["train_seconds"],
                   "params": m["params"]["pooler"] + m["params"]["head"]}  # fmt: skip


def run_head(board: Board, source: Source, task: str, pooler: str, args: argparse.Namespace) -> int:
    """The lr grid on the selection seed, then every other seed at the chosen lr; only missing cells train.
    Each finished cell is stored at once and the report rewritten. Returns how many cells trained."""
    trained = 0

    def ensure(lr: float, seed: int) -> dict[str, Any]:
        nonlocal trained
        cell = board.get(source.model, task, pooler, lr, seed)
        if cell is None:
            cell = train_cell(source, task, pooler, lr, seed, args)
            board.put(cell)
            done = write_report(board.root, args.json)["cells"]
            print(f"  board: {done['finished']} of {done['planned']} runs finished", flush=True)
            trained += 1
        return cell

    s = board.settings
    grid = {lr: ensure(lr, s["selection_seed"]) for lr in s["lrs"]}
    lr = choose_lr({lr: None if c["diverged"] else c["val"] for lr, c in grid.items()})
    for seed in args.seeds[1:] if lr is not None else []:
        ensure(lr, seed)
    return trained


def run_board(args: argparse.Namespace) -> tuple[int, list[str]]:
    """Every missing cell of the grid the flags ask for; returns how many trained and the heads that failed.

    A head whose run raises (a bug, not a divergence) is reported with its traceback and skipped, so one broken
    head does not stop a board that runs for hours; its cells stay missing and the exit code says so."""
    board = Board.open(args.cells, args.settings, args.grid, head_settings)
    trained, failed = 0, []
    for model in args.models:
        source = Source(model, args)
        for task in args.tasks:
            for pooler in resolve_poolers(board, source, args.grid["poolers"]):
                try:
                    trained += run_head(board, source, task, pooler, args)
                except Exception:  # noqa: BLE001 - reported, and the run exits non-zero
                    traceback.print_exc()
                    failed.append(f"{model} {task} {pooler}")
    return trained, failed


def write_report(root: Path, json_path: Path) -> dict[str, Any]:
    """``--json`` (every head's numbers) and its ``.md`` from the cells that exist now, atomically."""
    # read afresh: parallel runs into one board add cells and grid
    data = aggregate(Board(root, head_settings))
    atomic_write_json(json_path, data)
    atomic_write_text(json_path.with_suffix(".md"), markdown(data))
    return data


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    split = lambda v: [x.strip() for x in v.split(",") if x.strip()]  # noqa: E731
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="minilm", type=split)
    p.add_argument("--tasks", default=DEFAULT_TASKS, type=split)
    p.add_argument("--poolers", default="all", type=split, help="a subset, or all (cls/eos as auto)")
    p.add_argument("--seeds", default="0,1,2", type=lambda v: [int(x) for x in split(v)],
                   help="the first one chooses each head's lr (on validation)")  # fmt: skip
    p.add_argument("--lrs", default="1e-3,3e-3,1e-2", type=lambda v: [float(x) for x in split(v)])
    p.add_argument("--n-train", type=int, default=2000)
    p.add_argument("--n-eval", type=int, default=500)
    p.add_argument("--data-seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--patience", type=int, default=3)
    p.add_argument("--cache-dir", default=None)
    p.add_argument("--runs", type=Path, default=Path("runs/leaderboard"), help="glot run folders (resumable)")
    p.add_argument("--json", type=Path, default=RESULTS / "leaderboard.json", help="report (.json + .md)")
    p.add_argument(
        "--cells", type=Path, default=None, help="cells folder (default: <--json>-cells beside it)"
    )
    p.add_argument("--markdown", action="store_true", help="train nothing: rewrite the report from the cells")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = p.parse_args(argv)
    if not args.seeds or len(set(args.seeds)) != len(args.seeds) or min(args.seeds) < 0:
        p.error(f"--seeds takes distinct integers >= 0, e.g. 0,1,2; got {args.seeds}")
    if not args.lrs or min(args.lrs) <= 0:
        p.error(f"--lrs takes positive learning rates, e.g. 1e-3,1e-2; got {args.lrs}")
    for task in args.tasks:
        task_spec(task)
    args.cells = args.cells or args.json.with_name(args.json.stem + "-cells")
    args.settings = {"n_train": args.n_train, "n_eval": args.n_eval, "data_seed": args.data_seed,
                     "epochs": args.epochs, "patience": args.patience, "batch_size": BATCH_SIZE,
                     "lrs": args.lrs, "selection_seed": args.seeds[0],
                     "select_slack": DEFAULT_SELECT_SLACK}  # fmt: skip
    args.grid = {"models": args.models, "tasks": args.tasks, "poolers": poolers(args.poolers),
                 "seeds": args.seeds}  # fmt: skip
    return args


def poolers(names: list[str]) -> list[str]:
    """``all`` as every registered head (cls / eos as ``auto``); every other name checked against the registry."""
    from glot.cli.compare import _all_poolers
    from glot.errors import InputError
    from glot.pooling.poolers import pooler_class

    expanded = [q for p in names for q in (_all_poolers().split(",") if p == "all" else [p])]
    try:
        [pooler_class(p) for p in expanded if p != "auto"]
    except InputError as err:
        raise SystemExit(f"--poolers: {err}") from None
    return list(dict.fromkeys(expanded))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.markdown and not (args.cells / "board.json").is_file():
        raise SystemExit(f"no board in {args.cells} yet; run without --markdown first (or pass --cells)")
    trained, failed = (0, []) if args.markdown else run_board(args)
    data = write_report(args.cells, args.json)
    cells = data["cells"]
    print(f"trained {trained} runs; the board has {cells['finished']} of {cells['planned']}; wrote {args.json} "
          f"and {args.json.with_suffix('.md')} (cells in {args.cells})")  # fmt: skip
    if failed:
        print(f"FAILED (traceback above; their cells are missing): {'; '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
