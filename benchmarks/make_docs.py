"""Assemble docs/benchmarks.md from every ``benchmarks/results/*.md`` file.

Run: ``python benchmarks/make_docs.py`` after any benchmark run. Known sections come in a fixed order (``ORDER``);
any other result file follows, alphabetically. Each result file is a self-contained markdown section that starts
with ``## <title>`` (see ``report.write_results``). Runs on another machine go to ``benchmarks/results/<name>/``
(``--out``) and come last, under that machine's heading (``OTHER_MACHINES``), their headings one level down.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from glot.io import atomic_write_text

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
DOCS = HERE.parent / "docs" / "benchmarks.md"
ORDER = [
    "summary",
    "startup",
    "readme",
    "malloc",
    "pooler",
    "step",
    "dense_gat",
    "dense_rule_fit",
    "shapes",
    "kernels",
    "bf16",
    "encode",
    "long",
    "long_task",
    "cache",
    "int8",
    "distributed",
    "distributed_train",
    "efficiency",
    "gpu_heads",
]

#: Result folders of other machines (benchmarks/results/<name>/): name -> the heading their sections go under.
OTHER_MACHINES = {
    "avx2": "Second machine: an AVX2-only AMD EPYC (no native bf16, so `auto` picks fp32 everywhere)",
    "zen5": "Third machine: an AMD EPYC of family 26 (Zen 5) with avx512_bf16, no AMX",
    "xeon512": "Fourth machine: an Intel Xeon with AVX-512 but no avx512_bf16 or AMX (`auto` picks fp32)",
    "zen4": "Fifth machine: an AMD EPYC of family 25, model 17 (Zen 4) with avx512_bf16, no AMX (`auto` picks bf16)",
}

INTRO = """# Benchmarks

Speed and memory of glot-pooling, measured by the scripts in `benchmarks/` (one per section below; each runs as
`python benchmarks/<script>.py [--quick]`, and five also as `glot bench pooler|encode|long|gpu|efficiency` from a
checkout). Every section names its machine (CPU model, cores, torch /
PyG versions), its command, and gives medians with [min-max] over repeated runs; ratios are measured side by
side in one process, contenders interleaved per repeat. Tests never assert timings.

Every benchmark section below is a full run (no `--quick`) on a 2-core machine shared with other jobs. In the
efficiency section the two backbones come from two runs (MiniLM first; SmolLM2-135M later with
`--keep-other-backbones`); each backbone's contenders were measured side by side in one run. Rerun on a quiet
machine with `python benchmarks/<script>.py` (efficiency ~45 min, long documents ~13 min, the others a few minutes each), then
`python benchmarks/make_docs.py`.

| Section | Script | What it measures |
|---|---|---|
| Start-up | `bench_startup.py` | `import glot`, `glot --help`, `glot train --help` as fresh processes (vs an older checkout) |
| README commands | `bench_readme.py` | every README command-line example as a fresh process with a cold cache: wall time, exit code |
| Allocator | `bench_malloc.py` | the same work with the CLI's malloc thresholds vs glibc's defaults (fresh processes, alternating) |
| Pooler head | `bench_pooler.py` | glot vs a per-sentence loop: graph construction, inference, train step (B=32/128) |
| GLOT train step | `bench_step.py` | where a GLOT step's time goes (graph, GNN, readout, optimizer), old vs new path, FLOP floors; demo training GLOT vs AdaPool |
| Dense GAT | `bench_dense_gat.py` | the dense, length-bucketed GAT vs the edge-list path (demo and tweets heads, length and density sweeps; the auto rule's pick) |
| Dense rule fit | `fit_dense_rule.py` | the dense-vs-edge rule's constants per precision, fitted to `bench_dense_gat.py` runs; each run scored with the shipped constants and with constants fitted without it |
| New token counts | `bench_shapes.py` | one train step on a batch whose token count N is new to the process vs one seen before (matmul set-up per shape), per head dtype |
| Kernel forms | `bench_kernels.py` | the GAT logits, the readout's weighted rows and its scores in two or three forms each, and the whole GLOT head with the paper's / PyG's forms vs glot's (fp32 and bf16, both GAT paths) |
| bf16 head | `bench_bf16.py` | `head_dtype` fp32 vs bf16: accuracy over 3 seeds (stress 0.9, tweets; GLOT, AdaPool), step time natively and with bf16 masked |
| Encode | `bench_encode.py` | texts/s of MiniLM + GLOT vs MiniLM + mean through the same `Encoder`; head overhead % |
| Long documents | `bench_long.py` | one 2K/8K/32K-token document: time, edges, peak extra memory (tau only vs + kNN) |
| Long posts | `bench_long_task.py` | accuracy on ~450-token posts: truncation vs chunk windows joined into one graph vs averaged |
| Cache | `bench_cache.py` | hidden-state cache build time, bytes per sentence and epoch read time vs the reference code's way |
| int8 cache | `bench_int8.py` | int8 vs float16 / float32 cache: bytes, state error, paired accuracy (stress 0.9, tweets) |
| Distributed training | `bench_distributed_train.py` | `glot train` in 1 vs 2 processes (torchrun, gloo): time per epoch |
| Distributed cache | `bench_distributed.py` | `glot cache` as 1 process (1 / all threads) vs `torchrun --nproc_per_node N` |
| Efficiency | `bench_efficiency.py` | GLOT vs LoRA r=64 vs full fine-tuning: params, peak RSS, ms per step, metric |
| GPU heads | `gpu_heads.py` | the head benchmarks on CUDA (run on a GPU machine; not in CI) |
| GPU check | `gpu_check.sh` | CUDA parity tests + `gpu_heads.py` + the demo in one go (< 10 min); GPU figures: unmeasured so far |

## For comparison: the paper's Table 5

Mantri et al., ICLR 2026 (arXiv 2603.03389), Mistral-7B on CoLA, one GPU — a different model, task and machine,
so compare the *proportions* (GLOT trains ~100x faster per batch than fine-tuning because the backbone is frozen
and run once), not the absolute numbers:

| Method | Trainable params | GPU memory | Time per training batch |
|---|---|---|---|
| Full fine-tuning | 7.11 B | 32.59 GB | 1318.8 ms |
| LoRA r=64 | 167.8 M | 33.50 GB | 1454.6 ms |
| GLOT | 8.92 M | 0.42 GB | 13.4 ms |

The paper also reports graph construction at 0.5-1.3% of run time up to 32K-token contexts (the long-document
section below gives the graph's share of the head's own forward time, a stricter measure: the backbone is not
counted).
"""


def result_files(folder: Path = RESULTS) -> list[Path]:
    """The result markdown files, known names first in ORDER, then the rest alphabetically."""
    found = {p.stem: p for p in sorted(folder.glob("*.md"))} if folder.is_dir() else {}
    known = [found.pop(name) for name in ORDER if name in found]
    return known + [found[name] for name in sorted(found)]


def section(path: Path, level: int = 2) -> str:
    """One result file as a section whose title is at heading ``level`` (deeper headings shift with it)."""
    body = path.read_text(encoding="utf-8").strip()
    if not body.startswith("## "):
        body = f"## {path.stem}\n\n{body}"
    if level != 2:
        shift = "#" * (level - 2)
        body = "\n".join(shift + line if line.startswith("#") else line for line in body.splitlines())
    return f"\n{body}\n\n_Source: `{path.relative_to(HERE.parent).as_posix()}`._\n"


def assemble(files: Sequence[Path], others: dict[str, Sequence[Path]] | None = None) -> str:
    """The whole document: intro, every result section, then each other machine's sections under its heading."""
    parts = [INTRO.rstrip() + "\n"]
    if not files:
        parts.append("\n_No results yet: run a benchmark script, then this one._\n")
    parts += [section(path) for path in files]
    for name, machine_files in (others or {}).items():
        if machine_files:
            parts.append(f"\n## {OTHER_MACHINES[name]}\n")
            parts += [section(path, level=3) for path in machine_files]
    return "".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    """Write docs/benchmarks.md atomically (temp file + rename)."""
    files = result_files()
    others = {name: result_files(RESULTS / name) for name in OTHER_MACHINES}
    atomic_write_text(DOCS, assemble(files, others))
    print(f"wrote {DOCS} ({len(files)} result sections)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
