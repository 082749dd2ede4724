"""The kernel-level facts behind three forms the GLOT head computes in, and the whole head with each (issue 12).

Run: ``python benchmarks/bench_kernels.py [--quick] [--threads 1]``.

Shapes are those of the B = 128 tweets batch of ``bench_pooler.py`` (N = 4,113 tokens, P = 256, readout width
448). Each row times two forms of the same math side by side (``common.compare_times``, interleaved):

- ``logits``: GATConv's attention logits ``(h * att).sum(-1)`` for src and dst, h bf16 and att fp32 as under bf16
  autocast (PyG's form: a mixed-dtype product), against h cast to fp32 and one GEMM against the two stacked
  vectors (``glot.pooling.sparse_gat.attention_logits``), and the same GEMM with a contiguous (P, 2) operand;
- ``weighted rows``: a bf16 (N, 512) block times fp32 readout weights, against the block cast to fp32 first
  (``glot.pooling.readout.AttentionReadout.forward``);
- ``score``: the readout's v^T tanh(y) against 2 v^T sigmoid(2y) (``AttentionReadout.scores``), y fp32 and bf16.

Then the whole GLOT head (defaults, tau = 0.8, on real MiniLM states of 128 tweets) under glot's entry
(``glot.training.precision.pool``), forward and train step: the paper's / PyG's forms swapped in (tanh scores,
mixed-dtype logits) against the library's, interleaved in one process.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

import glot.pooling.dense_gat as dense_gat
import glot.pooling.sparse_gat as sparse_gat
from common import add_common_arguments, apply_quick, apply_threads, compare_times, machine_info, ratio
from glot.pooling.readout import AttentionReadout
from report import args_json, check_out, command_line, fmt_ms, header, md_table, write_results

N, P, HIDDEN, WIDE = 4113, 256, 448, 512


def _backward(f: Callable[[Tensor], Tensor], x: Tensor) -> Callable[[], Any]:
    def run() -> None:
        out = f(x.detach().clone().requires_grad_()).float()
        out.backward(torch.ones_like(out))  # a contiguous gradient, as real ones are

    return run


def kernel_rows(repeats: int) -> list[dict[str, Any]]:
    """(name, contenders) rows of the three kernels, forward and forward + backward."""
    gen = torch.Generator().manual_seed(0)
    h = torch.randn(N, P, generator=gen).bfloat16()
    att = torch.randn(2, P, generator=gen)
    pairs = {
        "logits": {
            "mixed bf16 x fp32 product (PyG's)": lambda t: (t * att[0]).sum(-1) + (t * att[1]).sum(-1),
            "fp32 cast + one GEMM, transposed (2, P)": lambda t: (t.float() @ att.t()).sum(-1),
            "fp32 cast + one GEMM, contiguous (P, 2)": lambda t: (t.float() @ att.t().contiguous()).sum(-1),
        },
    }
    block, pi = torch.randn(N, WIDE, generator=gen).bfloat16(), torch.rand(N, 1, generator=gen)
    pairs["weighted rows"] = {
        "mixed bf16 x fp32 product": lambda t: t * pi,
        "cast to fp32, then the product": lambda t: t.float() * pi,
    }
    v = torch.randn(HIDDEN, generator=gen)
    rows, inputs = [], {"logits": h, "weighted rows": block}
    for dtype in (torch.float32, torch.bfloat16):
        name = f"score, y {str(dtype)[6:]}"
        pairs[name] = {
            "v^T tanh(y)": lambda t: t.tanh().float() @ v,
            "2 v^T sigmoid(2y)": lambda t: torch.sigmoid(t.float() * 2) @ v * 2,
        }
        inputs[name] = torch.randn(N, HIDDEN, generator=gen).to(dtype)
    for name, forms in pairs.items():
        for mode in ("forward", "forward + backward"):
            fns = {
                k: (lambda f=f, x=inputs[name]: f(x)) if mode == "forward" else _backward(f, inputs[name])
                for k, f in forms.items()
            }
            with torch.no_grad() if mode == "forward" else torch.enable_grad():
                times = compare_times(fns, repeats=repeats, warmup=2)
            rows.append({"kernel": name, "mode": mode, "times": times})
    return rows


# ---------------------------------------------------------------------------------------------- whole head
def _tanh_scores(readout: AttentionReadout, blocks: list[Tensor]) -> Tensor:
    """The paper's form of the scores (Sec. 3.3), for the side-by-side."""
    return readout.score(readout._project(blocks).tanh()).squeeze(-1).float()


def _mixed_logits(conv: Any, h: Tensor) -> tuple[Tensor, Tensor]:
    """PyG GATConv's form of the attention logits, for the side-by-side."""
    return (h * conv.att_src).sum(-1), (h * conv.att_dst).sum(-1)


def _use(scores: Callable[..., Tensor], logits: Callable[..., Any]) -> None:
    AttentionReadout.scores = scores  # type: ignore[method-assign]
    sparse_gat.attention_logits = logits
    dense_gat.attention_logits = logits


def head_contenders(dtype: str, path: str, x: Tensor, ptr: Tensor, forms: dict[str, Any]) -> dict[str, Any]:
    """mode -> {form: zero-argument callable}: the GLOT head's forward and train step on one packed batch."""
    from glot import build_pooler
    from glot.training.precision import pool

    torch.manual_seed(0)
    pooler = build_pooler("glot", x.shape[-1], tau=0.8)
    pooler.gnn.dense_choice = path
    head = torch.nn.Linear(pooler.out_dim, 3)
    opt = torch.optim.Adam([*pooler.parameters(), *head.parameters()], lr=2e-4)
    labels = torch.zeros(ptr.numel() - 1, dtype=torch.long)

    def forward(form: tuple[Any, Any]) -> None:
        _use(*form)
        with torch.no_grad():
            pool(pooler, x, ptr, dtype)

    def step(form: tuple[Any, Any]) -> None:
        _use(*form)
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(head(pool(pooler, x, ptr, dtype)), labels).backward()
        opt.step()

    return {
        mode: {k: (lambda run=run, f=f: run(f)) for k, f in forms.items()}
        for mode, run in (("forward", forward), ("train step", step))
    }


def head_rows(repeats: int, dtypes: Sequence[str]) -> list[dict[str, Any]]:
    """The GLOT head at each dtype and path, the reference forms against glot's, interleaved."""
    from bench_pooler import minilm_states
    from glot.pooling.packing import pack

    x, ptr = pack(*minilm_states(128))
    ours = (AttentionReadout.scores, sparse_gat.attention_logits)
    forms = {"paper's tanh + PyG's mixed logits": (_tanh_scores, _mixed_logits), "glot's forms": ours}
    rows = []
    for dtype in dtypes:
        for path in ("edge", "dense"):
            for mode, fns in head_contenders(dtype, path, x, ptr, forms).items():
                rows.append({"kernel": f"GLOT head, {dtype}, {path} path", "mode": mode,
                             "times": compare_times(fns, repeats=repeats, warmup=2)})  # fmt: skip
    _use(*ours)
    return rows


def report(rows: list[dict[str, Any]]) -> str:
    table = []
    for row in rows:
        names = list(row["times"])
        base = row["times"][names[0]]
        for name in names:
            t = row["times"][name]
            table.append([row["kernel"], row["mode"], name, fmt_ms(t), f"{ratio(base, t):.2f}x"])
    return md_table(["what", "mode", "form", "ms", "speed-up vs the first form"], table)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_arguments(parser)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args(argv)
    apply_quick(args, argv, repeats=2)
    check_out(args)
    apply_threads(args)
    info = machine_info()
    from glot.training.precision import native_bf16

    rows = kernel_rows(args.repeats)
    rows += head_rows(max(3, args.repeats // 2), ["fp32", "bf16"] if native_bf16() else ["fp32"])
    text = header("Kernel forms of the GLOT head", command_line("bench_kernels.py", argv), info, args)
    text += (
        f"Shapes of the B = 128 tweets batch (N = {N:,} tokens, P = {P}, readout width {HIDDEN}); medians "
        "[min-max], contenders interleaved. Kernel rows: the same math in two or three forms. Head rows: the "
        "whole GLOT head (defaults, tau = 0.8, real MiniLM states) under `glot.training.precision.pool`, with "
        "the paper's tanh scores and PyG's mixed-dtype logits swapped in, against glot's forms.\n\n"
    )
    text += report(rows)
    print(text)
    if not args.no_write:
        data = {"machine": info, "args": args_json(args), "results": rows}
        write_results("kernels", data, text, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
