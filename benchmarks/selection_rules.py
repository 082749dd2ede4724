"""How the model-selection rule was chosen: replay stored runs under each rule and compare the eval score at
the epoch each rule keeps.

Every run folder stores its per-epoch validation score and (computed once, at the end) its per-epoch eval
score, so a rule that does not change which epochs are TRAINED can be judged on finished runs without training
again. The package's rule (``glot.training.selection``) keeps the latest epoch within ``select_slack``
validation examples of the best; early stopping counts from the last strict improvement of the best score
whatever the slack, so every slack trains the same epochs. The eval split is read here only to JUDGE rules on
runs that are not the ones docs/results.md reports as the issue checks (the leaderboard's runs).

    python benchmarks/selection_rules.py --runs /path/to/leaderboard/runs   # collect, then compare
    python benchmarks/selection_rules.py                                     # compare the stored histories

Output: benchmarks/results/selection_histories.json (the per-epoch scores of every run read, so the figures can
be recomputed without the run folders) and selection_rules.md (the comparison).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from scipy.stats import binomtest

from glot.io import atomic_write_json, atomic_write_text
from glot.training.selection import select_epoch, selection_tolerance

RESULTS = Path(__file__).parent / "results"
HISTORIES = RESULTS / "selection_histories.json"


def collect(folders: Sequence[Path]) -> list[dict[str, Any]]:
    """Every finished run's (pooler, task, metric, validation size, per-epoch val and eval) under ``folders``."""
    runs = []
    for folder in folders:
        for path in sorted(folder.rglob("metrics.json")):
            m = json.loads(path.read_text())
            history = m.get("history") or []
            if not history or any(h.get("val") is None or h.get("eval") is None for h in history):
                continue  # no validation or no eval: nothing to judge
            runs.append({
                "run": str(path.parent.relative_to(folder)), "pooler": m.get("pooler"), "task": m["task"],
                "metric": m["metric"], "n_val": m["sizes"]["val"],
                "val": [h["val"] for h in history], "eval": [h["eval"] for h in history],
            })  # fmt: skip
    return runs


def kept_epoch(run: dict[str, Any], slack: int) -> int:
    """The epoch (1-based) the package's rule keeps at ``slack``, replayed epoch by epoch as the loop does."""
    state: dict[str, Any] = {"best_epoch": 0, "best_val": None}
    tol = selection_tolerance(run["metric"], slack, run["n_val"])
    for epoch, val in enumerate(run["val"], start=1):
        select_epoch(state, epoch, val, tol)
    return int(state["best_epoch"])


def compare(runs: list[dict[str, Any]], slack: int, base: int = 0) -> dict[str, Any]:
    """Eval at the epoch kept with ``slack`` minus eval at the one kept with ``base``, per run; the mean, how
    many runs each rule wins and a two-sided sign test over the runs where they differ."""
    diffs = [r["eval"][kept_epoch(r, slack) - 1] - r["eval"][kept_epoch(r, base) - 1] for r in runs]
    better, worse = sum(d > 0 for d in diffs), sum(d < 0 for d in diffs)
    p = binomtest(better, better + worse).pvalue if better + worse else 1.0
    return {"runs": len(runs), "changed": better + worse, "better": better, "worse": worse, "p_sign": p,
            "mean_diff_points": 100 * sum(diffs) / max(len(diffs), 1)}  # fmt: skip


def report(runs: list[dict[str, Any]], slacks: Sequence[int]) -> str:
    lines = [
        "## Model selection: the latest epoch within N validation examples of the best vs exact ties\n",
        "Command and reading: docs/results.md, section 6d. Eval points gained by keeping the latest epoch within "
        "N validation examples of the best validation accuracy instead of the latest exactly tied one (N = 0), "
        "on the same runs (every N trains the same epochs); sign test over the runs where the two differ.\n",
        "| runs | N | runs changed | better | worse | mean eval gain (points) | sign test p |",
        "|---|---|---|---|---|---|---|",
    ]
    groups = {"all": runs} | {
        str(p): [r for r in runs if r["pooler"] == p] for p in sorted({r["pooler"] for r in runs})
    }
    for name, group in groups.items():
        for slack in slacks:
            c = compare(group, slack)
            lines.append(f"| {name} ({c['runs']}) | {slack} | {c['changed']} | {c['better']} | {c['worse']} | "
                         f"{c['mean_diff_points']:+.2f} | {c['p_sign']:.2g} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--runs", type=Path, nargs="*", help="run folders to collect (default: the stored histories)"
    )
    p.add_argument("--slacks", default="1,2", help="the slacks to compare with exact ties (0), e.g. 1,2")
    args = p.parse_args(argv)
    if args.runs:
        runs = collect(args.runs)
        atomic_write_json(HISTORIES, {"runs": runs})
    else:
        runs = json.loads(HISTORIES.read_text())["runs"]
    text = report([r for r in runs if r["metric"] == "accuracy"], [int(s) for s in args.slacks.split(",")])
    atomic_write_text(RESULTS / "selection_rules.md", text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
