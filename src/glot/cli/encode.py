"""``glot encode``: texts (a file, one per line, or stdin) -> sentence embeddings saved as .npy."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from glot.cli.common import CLIError, add_json_argument, maybe_write_json, print_table
from glot.cli.options import add_length_arguments, length_options, one_line_errors
from glot.cli.options import load_backbone as load_named
from glot.io import atomic_save_npy

# torch, transformers, PyG and the modules built on them are imported inside the functions (lazy command
# loading): `glot encode --help` loads none of them (tests/test_imports.py).

HELP = "embed texts with a trained run (or a backbone + pooler) to .npy"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    one_line_errors(parser)
    parser.add_argument("input", nargs="?", default="-", help="text file, one text per line ('-' = stdin)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="where to write the (N, dim) .npy")
    src = parser.add_argument_group("what encodes (a trained run, or a backbone + parameter-free pooler)")
    src.add_argument(
        "--run",
        type=Path,
        default=None,
        help="a finished `glot train` run folder (or a folder from glot.export.hub.save_pretrained)",
    )
    src.add_argument("--seed", type=int, default=None, help="which seed of a multi-seed run")
    src.add_argument("--model", default=None, help="backbone (with --pooler, no --run)")
    src.add_argument("--pooler", default=None, help="cls, eos, mean or max (untrained poolers need --run)")
    add_length_arguments(
        parser.add_argument_group("long texts"),
        "tokens per forward (default: the run's; with --model the model's own limit, e.g. 256 for minilm)",
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--normalize", action="store_true", help="L2-normalise the embeddings")
    parser.add_argument("--no-progress", action="store_true")
    add_json_argument(parser)


def _read_texts(source: str) -> list[str]:
    if source == "-":
        lines = sys.stdin.read().splitlines()
    else:
        path = Path(source)
        if not path.is_file():
            raise CLIError(
                f"input file {path} does not exist; pass a text file with one text per line, or '-'"
            )
        lines = path.read_text(encoding="utf-8").splitlines()
    texts = [line for line in lines if line.strip()]
    if not texts:
        raise CLIError(f"no texts in {source!r}: expected one non-empty text per line")
    return texts


def _run_folder(run: Path, seed: int | None) -> Path:
    """The single-seed folder of ``--run`` (``--seed`` picks one of a multi-seed run)."""
    if not run.is_dir():
        raise CLIError(f"run folder {run} does not exist; pass the --out folder of `glot train`")
    if seed is None:
        return run
    if (run / f"seed-{seed}").is_dir():
        return run / f"seed-{seed}"
    if run.name == f"seed-{seed}":
        return run
    raise CLIError(f"{run} has no seed-{seed}/ folder; pass one of its seeds with --seed")


def _encoder(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from glot.export.encoder import Encoder
    from glot.pooling.poolers import build_pooler

    if args.run is not None:
        if args.model is not None or args.pooler is not None:
            raise CLIError("--run already names the backbone and pooler; drop --model/--pooler")
        from glot.export.hub import from_pretrained

        # the one export path: pooler, the trained head's embedding transform and (LoRA / full) the trained backbone
        encoder = from_pretrained(_run_folder(args.run, args.seed), **length_options(args))
        name = getattr(getattr(encoder.pooler, "config", None), "name", type(encoder.pooler).__name__)
        return encoder, name
    if args.model is None or args.pooler is None:
        raise CLIError("pass --run RUN_DIR, or --model and a parameter-free --pooler (cls, eos, mean, max)")
    if args.pooler not in ("cls", "eos", "mean", "max"):
        raise CLIError(
            f"--pooler {args.pooler!r} has trainable weights; train it with `glot train` and use --run"
        )
    args.dtype, args.layer = "auto", -1
    backbone = load_named(args, None)  # the model's own limit (as sentence-transformers) unless --max-length
    return Encoder(backbone, build_pooler(args.pooler, backbone.hidden_size)), args.pooler


def run(args: argparse.Namespace) -> int:
    if args.output.suffix != ".npy":
        raise CLIError(f"--output must end in .npy, got {args.output}")
    if args.run is not None:
        _run_folder(args.run, args.seed)  # cheap checks first: a missing run fails before texts are read
    texts = _read_texts(args.input)  # a bad input file fails before any model loads
    encoder, pooler_name = _encoder(args)
    emb = encoder.encode(
        texts, batch_size=args.batch_size, progress=not args.no_progress, normalize=args.normalize
    )
    atomic_save_npy(args.output, np.asarray(emb, dtype=np.float32))
    info = {"output": str(args.output), "texts": len(texts), "dim": int(emb.shape[1]), "pooler": pooler_name}
    print_table("glot encode", ["", "value"], [[k, v] for k, v in info.items()])
    maybe_write_json(args.json, info)
    return 0
