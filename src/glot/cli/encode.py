"""``glot encode``: texts (a file, one per line, or stdin) -> sentence embeddings saved as .npy: one file, or a
folder of parts + index.json (:mod:`glot.export.sharded`), written in parallel by the ranks of a torchrun."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from glot.cli.common import CLIError, add_json_argument, maybe_write_json, print_table
from glot.cli.options import add_length_arguments, cli_device, length_options, one_line_errors
from glot.cli.options import load_backbone as load_named
from glot.io import atomic_save_npy

# torch, transformers, PyG and the modules built on them are imported inside the functions (lazy command
# loading): `glot encode --help` loads none of them (tests/test_imports.py).

HELP = "embed texts with a trained run (or a backbone + pooler) to .npy"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from glot.training.config import DEVICE_HELP, HEAD_DTYPES  # no torch: the flags of TrainConfig fields

    one_line_errors(parser)
    parser.add_argument("input", nargs="?", default="-", help="text file, one text per line ('-' = stdin)")
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        required=True,
        help="X.npy: one (N, dim) file; a FOLDER (no suffix): .npy parts of --shard-rows rows + index.json, "
        "written in parallel under `torchrun --nproc_per_node N -m glot encode ...`",
    )
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
    parser.add_argument(
        "--shard-rows",
        type=int,
        default=50_000,
        help="texts read, embedded and written at a time (one part file each in a FOLDER output; default 50000): "
        "the input is streamed, never loaded whole",
    )
    parser.add_argument("--normalize", action="store_true", help="L2-normalise the embeddings")
    parser.add_argument(
        "--head-dtype",
        default=None,
        choices=HEAD_DTYPES,
        help="precision of the pooler's matmuls (default: the run's own; auto = bf16 on CUDA or a CPU with "
        "avx512_bf16/AMX); the embeddings are float32 either way",
    )
    parser.add_argument("--device", default="auto", help=DEVICE_HELP + " (default auto)")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="-o FOLDER: replace embeddings of another input, model or options in it (a rerun of the same "
        "command resumes: finished parts are kept)",
    )
    parser.add_argument("--no-progress", action="store_true")
    add_json_argument(parser)


def _check_input(source: str) -> None:
    """A missing or textless input file fails before any model loads (stdin is checked as it is read)."""
    from glot.export.sharded import iter_chunks

    if source == "-":
        return
    if not Path(source).is_file():
        raise CLIError(f"input file {source} does not exist; pass a text file with one text per line, or '-'")
    if next(iter_chunks(source, 1), None) is None:
        raise CLIError(f"no texts in {source!r}: expected one non-empty text per line")


def _sharded(output: Path) -> bool:
    """``-o X.npy``: one file; ``-o FOLDER`` (no suffix): sharded parts + index.json."""
    if output.suffix == ".npy":
        return False
    if output.suffix:
        raise CLIError(
            f"--output must end in .npy (one file) or be a folder name without a suffix (sharded .npy parts "
            f"+ index.json), got {output}"
        )
    return True


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
        encoder = from_pretrained(
            _run_folder(args.run, args.seed), head_dtype=args.head_dtype, device=str(cli_device(args.device)),
            **length_options(args),
        )  # fmt: skip
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
    pooler = build_pooler(args.pooler, backbone.hidden_size)
    return Encoder(backbone, pooler, head_dtype=args.head_dtype or "auto"), args.pooler


def _ingredients(encoder: Any, args: argparse.Namespace) -> dict[str, Any]:
    """What determines the embeddings (the key of a -o FOLDER, with the input and --shard-rows): the backbone's
    fingerprint (weights, layer, length and long-text settings, dtype), the pooler's and transform's content
    digests, the head dtype as it resolves on the pooler's device, --normalize and --batch-size (padding). Not
    the device itself: a run resumes elsewhere, as a training run does."""
    from glot.backbones.introspect import module_digest
    from glot.training.precision import resolve_head_dtype
    from glot.training.sources import model_device

    config = getattr(encoder.pooler, "config", None)
    transform = encoder.transform
    return {
        "backbone": encoder.backbone.fingerprint(),
        "pooler": {"config": None if config is None else config.to_dict(), **module_digest(encoder.pooler)},
        "transform": None if transform is None else module_digest(transform),
        "head_dtype": resolve_head_dtype(encoder.head_dtype, model_device(encoder.pooler)),
        "normalize": args.normalize,
        "batch_size": args.batch_size,
    }


def run(args: argparse.Namespace) -> int:
    from glot import distributed

    with distributed.process_group():
        return _run(args, distributed.is_main(), distributed.world_size())


def _run(args: argparse.Namespace, main: bool, ranks: int) -> int:
    from glot.export.sharded import encode_to_folder, iter_chunks

    sharded = _sharded(args.output)
    if ranks > 1 and not sharded:
        raise CLIError(f"{ranks} ranks write one part each: pass -o FOLDER (no .npy suffix) under torchrun")
    if args.run is not None:
        _run_folder(args.run, args.seed)  # cheap checks first: a missing run fails before texts are read
    _check_input(args.input)  # a bad input file fails before any model loads
    chunks = None if sharded else iter_chunks(args.input, args.shard_rows)
    first = None if chunks is None else next(chunks, None)
    if chunks is not None and first is None:
        raise CLIError(f"no texts in {args.input!r}: expected one non-empty text per line")
    encoder, pooler_name = _encoder(args)

    def embed(texts: list[str]) -> np.ndarray:
        return np.asarray(
            encoder.encode(texts, batch_size=args.batch_size, progress=False, normalize=args.normalize),
            dtype=np.float32,
        )

    info: dict[str, object] = {"output": str(args.output)}
    if sharded:
        meta = {
            "pooler": pooler_name,
            "normalize": args.normalize,
            "run": str(args.run or ""),
            "model": args.model,
        }
        index = encode_to_folder(
            embed, args.input, args.output, shard_rows=args.shard_rows, meta=meta,
            ingredients=_ingredients(encoder, args), overwrite=args.overwrite, progress=not args.no_progress,
        )  # fmt: skip
        info.update(texts=index["rows"], dim=index["dim"], pooler=pooler_name, shards=len(index["shards"]))
        info.update(parts_computed=index["parts_computed"], ranks=ranks)  # a rerun keeps finished parts
    else:
        assert chunks is not None and first is not None
        emb = np.concatenate([embed(first), *(embed(chunk) for chunk in chunks)])
        atomic_save_npy(args.output, emb)
        info.update(texts=len(emb), dim=int(emb.shape[1]), pooler=pooler_name)
    if main:  # rank 0 reports for the group
        print_table("glot encode", ["", "value"], [[k, v] for k, v in info.items()])
        maybe_write_json(args.json, info)
    return 0
