"""README's command-line examples, run as a newcomer runs them: wall time, exit code and the last lines of each.

Run: ``python benchmarks/bench_readme.py [--only NAME ...] [--quick]``. Writes benchmarks/results/readme.{json,md}.

Every command runs as a fresh ``glot`` process from an empty scratch folder (its own ``--cache-dir``, so each
cache is built cold, as on a first run; packaged models come from ``$GLOT_HOME/models`` as usual), in the
order of the README block, since later commands use the runs of earlier ones. ``posts.csv`` (long texts for
the ``--long chunk`` example) and ``texts.txt`` are written first from the offline tweets. The times are what
the README states next to each command: rerun this on a quiet machine before quoting them.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from common import add_common_arguments, machine_info
from report import check_out, command_line, header, md_table, write_results

#: (name, command, what it does at that size): the README block, in order
COMMANDS: list[tuple[str, str, str]] = [
    ("models", "glot models", "lists the packaged backbones"),
    ("compare", "glot compare", "stress test, MiniLM, 6 poolers x 1 seed, 2,000 + 500 texts at 90% distractors"),
    ("compare-decoder", "glot compare --model smollm2-135m --ratios 0.5,0.9 --seeds 0,1,2 --n-train 500 --n-eval 200",
     "SmolLM2-135M, 6 poolers x 3 seeds x 2 ratios, 500 + 200 texts per ratio"),
    ("cache", "glot cache --model minilm --task tweets --n-train 2000 --n-eval 500",
     "MiniLM states of 2,500 tweets"),
    ("train", "glot train --model minilm --task tweets --n-train 2000 --n-eval 500 --pooler glot --seeds 0,1,2 "
     "--out runs/tweets-glot", "GLOT on 2,000 tweets, 3 seeds"),
    ("lora", "glot train --model minilm --task tweets --n-train 500 --n-eval 200 --pooler mean --finetune lora "
     "--epochs 1 --out runs/tweets-lora", "LoRA r=64 fine-tuning baseline, 500 tweets, 1 epoch"),
    ("long", "glot train --model minilm --task posts.csv --max-length 128 --long chunk --pooler glot "
     "--out runs/posts-glot", "GLOT on 200 posts of ~450 tokens, every token in 128-token windows"),
    ("eval", "glot eval runs/tweets-glot", "every seed on its own eval split (500 tweets, states cached)"),
    ("encode", "glot encode texts.txt --run runs/tweets-glot --seed 0 -o vectors.npy", "100 texts"),
    ("explain", 'glot explain "the delivery contains not keys" --run runs/tweets-glot/seed-0 --out pictures/',
     "heatmap, graph and weight pictures of one sentence"),
]  # fmt: skip


def write_inputs(folder: Path) -> None:
    """``texts.txt`` (100 tweets) and ``posts.csv`` (200 long posts: text, label) from the offline tweets."""
    import numpy as np

    from bench_long_task import make_posts
    from glot.data.tweets import default_path, read_tweets

    texts, labels = read_tweets(default_path())
    (folder / "texts.txt").write_text("\n".join(t.replace("\n", " ") for t in texts[:100]) + "\n")
    import csv

    rng = np.random.default_rng(0)
    pool = {c: [t for t, y in zip(texts, labels, strict=True) if y == lab] for c, lab in ((0, 0), (1, 2))}
    posts, post_labels = make_posts(200, 11, 0.65, pool, rng)

    with open(folder / "posts.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows(
            (post, ("negative", "positive")[y]) for post, y in zip(posts, post_labels, strict=True)
        )


def run_one(name: str, command: str, folder: Path) -> dict[str, Any]:
    argv = shlex.split(command)
    argv[0] = str(Path(sys.executable).with_name("glot"))
    if argv[1] in ("compare", "cache", "train", "eval"):  # a cold cache, as on a first run
        argv += ["--cache-dir", str(folder / "cache")]
    env = dict(os.environ, COLUMNS="100")
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=folder, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    tail = (proc.stdout + proc.stderr).strip().splitlines()[-6:]
    print(f"{name}: exit {proc.returncode} in {seconds:.1f} s", flush=True)
    return {
        "name": name,
        "command": command,
        "exit": proc.returncode,
        "seconds": round(seconds, 1),
        "tail": tail,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_arguments(parser)
    parser.add_argument("--only", nargs="+", default=None, help=f"run these only: {[c[0] for c in COMMANDS]}")
    args = parser.parse_args(argv)
    check_out(args)
    only = args.only or (["models"] if args.quick else [c[0] for c in COMMANDS])
    info = machine_info()
    results = []
    with tempfile.TemporaryDirectory(prefix="glot-bench-readme-") as tmp:
        folder = Path(tmp)
        write_inputs(folder)
        for name, command, what in COMMANDS:
            if name in only:
                results.append({**run_one(name, command, folder), "what": what})
    text = header("README commands: time to finish", command_line("bench_readme.py", argv), info, args)
    text += "Each command a fresh process, caches built cold (scratch --cache-dir), in README order.\n\n"
    rows = [[f"`{r['command']}`", r["what"], r["exit"], f"{r['seconds']:.0f} s"] for r in results]
    text += md_table(["command", "what (size)", "exit", "wall time"], rows)
    print(text)
    if not args.no_write:
        write_results("readme", {"machine": info, "results": results}, text, args)
    return 0 if all(r["exit"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
