"""Refit the dense-vs-edge rule's constants (glot.pooling.path_rule) from bench_dense_gat.py runs.

Run: ``python benchmarks/fit_dense_rule.py RESULT.json [RESULT.json ...] [--validate RESULT.json ...]``.

Each row of a bench_dense_gat run holds both paths' median times and the terms the rule reads (GAT edges,
attention slots, buckets, layer width; rows from before those were recorded get them by rebuilding the run's
batches with ``bench_dense_gat.cases``). The fit is a grid search over the four constants of
:class:`glot.pooling.path_rule.PathCosts` minimising the time lost to wrong picks, sum over rows of
log(t_picked / t_faster), on the ``RESULT`` runs together; ``--validate`` runs are scored, never fitted on.
Every run is also scored with the constants glot ships for its precision and with 0.5's single fp32-fitted
rule, and each run is scored with constants fitted on the other runs alone (leave one run out), so the table says how well the rule carries to a run it
never saw. Writes ``dense_rule_fit.{json,md}`` to ``--out`` (default benchmarks/results).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from glot.backbones.dtypes import DTYPE_NAMES
from glot.pooling.path_rule import COSTS, PathCosts, RuleTerms, dense_wins, rule_terms
from report import RESULTS_DIR, command_line, md_table

#: The rule of glot-pooling 0.5: one set of constants for every precision, fitted to one AVX2 machine in fp32.
FIRST_RULE = PathCosts(edge_fixed=128.0, slot=3.84, slot_width=0.30, bucket=2e5)
#: The grid the constants are searched on (log-spaced; 0 allowed for the per-slot and per-bucket terms).
GRID = {
    "edge_fixed": [0.0, *np.geomspace(4, 1024, 17)],
    "slot": [0.0, *np.geomspace(0.25, 64, 17)],
    "slot_width": [0.0, *np.geomspace(0.01, 2.0, 17)],
    "bucket": [0.0, *np.geomspace(1e3, 1e7, 13)],
}


class Run:
    """One bench_dense_gat result file as arrays: terms per row and both paths' medians."""

    def __init__(self, path: Path) -> None:
        data = json.loads(path.read_text())
        self.path, self.rows = path, data["results"]
        self.dtype = data["args"].get("head_dtype", "fp32")
        self.machine = data["machine"]["cpu"]
        if any("slots" not in row for row in self.rows):
            _add_terms(self.rows, data["args"])
        self.edges = np.array([r["edges"] for r in self.rows], dtype=float)
        self.slots = np.array([r["slots"] for r in self.rows], dtype=float)
        self.buckets = np.array([r["buckets"] for r in self.rows], dtype=float)
        self.width = np.array([r["width"] for r in self.rows], dtype=float)
        self.t_edge = np.array([r["edge"]["median_s"] for r in self.rows])
        self.t_dense = np.array([r["dense"]["median_s"] for r in self.rows])

    def score(self, costs: PathCosts) -> dict[str, float]:
        """Rows within 10% of the faster path, the worst miss, and the time lost over the faster total."""
        picked, best = self.picked(np.array([costs]))[0], np.minimum(self.t_edge, self.t_dense)
        ratio = picked / best
        return {
            "rows": len(self.rows),
            "within_10pct": int((ratio <= 1.1).sum()),
            "worst": float(ratio.max()),
            "lost_pct": float(100 * (picked.sum() / best.sum() - 1)),
        }

    def picked(self, grid: np.ndarray) -> np.ndarray:
        """Time of the path each constant set picks on each row. Shapes: grid (G, 4) -> (G, rows)."""
        costs = PathCosts(*(grid[:, k, None] for k in range(4)))  # each (G, 1): broadcast against the rows
        dense = dense_wins(RuleTerms(self.edges, self.slots, self.buckets), self.width, costs)  # type: ignore[arg-type]
        return np.where(dense, self.t_dense, self.t_edge)


def _add_terms(rows: list[dict[str, Any]], run_args: dict[str, Any]) -> None:
    """Rebuild the run's batches (bench_dense_gat.cases) and record each row's rule terms and width."""
    from bench_dense_gat import cases
    from glot import build_pooler
    from glot.pooling.dense_gat import build_dense_graph

    for row, (name, options, x, ptr, _train) in zip(rows, cases(argparse.Namespace(**run_args)), strict=True):
        assert (row["case"], row["N"]) == (name, x.shape[0]), (row["case"], name)
        pooler = build_pooler("glot", x.shape[1], **options)
        conv = pooler.gnn.convs[0]
        terms: RuleTerms = rule_terms(build_dense_graph(x, ptr, pooler.config.graph))
        row.update(terms._asdict(), width=conv.heads * conv.out_channels)


def fit(runs: Sequence[Run]) -> PathCosts:
    """The grid point with the least summed log time lost over ``runs`` (ties: the first, i.e. smallest)."""
    grid = np.array(list(itertools.product(*GRID.values())))
    lost = np.zeros(len(grid))
    for run in runs:
        best = np.minimum(run.t_edge, run.t_dense)
        for chunk in range(0, len(grid), 20000):
            part = grid[chunk : chunk + 20000]
            lost[chunk : chunk + 20000] += np.log(run.picked(part) / best).sum(axis=1)
    return PathCosts(*(float(v) for v in grid[int(np.argmin(lost))]))


def report(
    fits: dict[str, PathCosts], runs: list[Run], held_out: list[Run], command: str
) -> tuple[str, list[dict[str, Any]]]:
    """Markdown and JSON rows: every run scored under glot's constants, the fit, and leave-one-out fits."""
    table, out = [], []
    for run in runs + held_out:
        dtype = run.dtype
        scores = {"shipped": run.score(COSTS[DTYPE_NAMES[dtype]]), "first rule (0.5)": run.score(FIRST_RULE)}
        if dtype != "fp32":
            scores["shipped fp32 constants"] = run.score(COSTS[torch.float32])
        scores["fit"] = run.score(fits[dtype])
        others = [r for r in runs if r is not run and r.dtype == dtype]
        if run in runs and others:
            scores["fit without this run"] = run.score(fit(others))
        role = "fitted on" if run in runs else "validation only"
        for name, s in scores.items():
            table.append([str(run.path), run.machine, dtype, role, name, f"{s['within_10pct']} / {s['rows']}",
                          f"{s['worst']:.2f}x", f"{s['lost_pct']:.1f}%"])  # fmt: skip
            out.append({"run": str(run.path), "dtype": dtype, "role": role, "constants": name, **s})
    cols = ["run", "cpu", "dtype", "role", "constants", "rows within 10% of the faster", "worst pick",
            "time lost vs always-faster"]  # fmt: skip
    text = "## Dense-vs-edge rule: fitted constants and how well they pick\n\n"
    text += f"Command: `{command}`.\n\n"
    text += (
        "Each bench_dense_gat run's 73 (or 45) rows hold both GAT paths' median times; a set of constants picks "
        "one path per row. 'rows within 10%' counts the rows whose pick is at most 1.1x the faster path; 'worst "
        "pick' is the largest such ratio; 'time lost' is the picked paths' total time over the faster paths' "
        "total. 'shipped' = the constants in glot.pooling.path_rule (where they were fitted and checked: its "
        "comments); 'first rule (0.5)' = the one fp32-fitted set 0.5 used at every precision; 'fit' = fitted by "
        "this command on the runs marked 'fitted on' (per precision); 'fit without this run' = fitted on the "
        "other runs of its precision alone, the out-of-sample check. Fitted constants:\n\n"
    )
    text += "".join(f"- {dtype}: `{costs}`\n" for dtype, costs in fits.items())
    text += "\n" + md_table(cols, table)
    return text, out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="bench_dense_gat result JSON files to fit on")
    parser.add_argument("--validate", nargs="*", type=Path, default=[], help="result files scored only")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    runs, held_out = [Run(p) for p in args.runs], [Run(p) for p in args.validate]
    fits = {
        dtype: fit([r for r in runs if r.dtype == dtype]) for dtype in dict.fromkeys(r.dtype for r in runs)
    }
    text, rows = report(fits, runs, held_out, command_line("fit_dense_rule.py", argv))
    print(text)
    if not args.no_write:
        from glot.io import atomic_write_json, atomic_write_text

        args.out.mkdir(parents=True, exist_ok=True)
        payload = {"fits": {k: v._asdict() for k, v in fits.items()}, "scores": rows}
        atomic_write_json(args.out / "dense_rule_fit.json", payload)
        atomic_write_text(args.out / "dense_rule_fit.md", text)
    return 0 if all(math.isfinite(r["lost_pct"]) for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
