"""``glot explain``: similarity heatmap, token graph and readout-weight pictures for one sentence.

From a trained run::

    glot explain "the delivery contains not the keys" --run runs/stress-glot --out pictures/

or, without a run, with an untrained pooler on a packaged backbone (shows the mechanism, not learned weights)::

    glot explain "the delivery contains not the keys" --model minilm --pooler glot --tau 0.6
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from glot.cli.common import CLIError, add_json_argument, console, maybe_write_json, print_table
from glot.cli.options import add_length_arguments, length_options

# torch, transformers, PyG, matplotlib (glot.viz) and the modules built on them are imported inside the
# functions (lazy command loading): `glot explain --help` loads none of them (tests/test_imports.py). They are
# looked up at call time, so tests can replace glot.viz.draw_explanation & co.

HELP = "pictures for one sentence: similarity heatmap, token graph, readout weights"
UNTRAINED_NOTE = (
    "Untrained pooler (random init, seed 0): the weights show the mechanism, not learned behaviour."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("text", help="the sentence to explain (quote it)")
    src = parser.add_argument_group("what to explain (a trained run, or a backbone + untrained pooler)")
    src.add_argument("--run", metavar="RUN_DIR", type=Path, help="a finished `glot train` run folder")
    src.add_argument("--seed", type=int, default=None, help="seed to load when RUN_DIR holds several")
    src.add_argument(
        "--model", default=None, help="backbone alias, hub id or folder without --run (default minilm)"
    )
    src.add_argument("--pooler", default=None, help="pooler name without --run (default glot)")
    src.add_argument(
        "--tau",
        type=float,
        default=None,
        help="graph threshold: builds an untrained glot pooler at tau; for poolers without a graph, the "
        "tau the reference graph is drawn at (default 0.6)",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("explain_out"), help="output folder (default explain_out)"
    )
    parser.add_argument(
        "--format", default="png,svg", help="comma-separated formats: png, svg, pdf (default png,svg)"
    )
    parser.add_argument("--device", default=None, help="torch device for backbone and pooler (default: auto)")
    add_length_arguments(
        parser.add_argument_group("long texts"),
        "tokens per forward (default: the run's; without --run the model's own limit, e.g. 256 for minilm)",
    )
    add_json_argument(parser)


def _formats(spec: str) -> list[str]:
    from glot.viz import FORMATS

    formats = [f.strip().lower().lstrip(".") for f in spec.split(",") if f.strip()]
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise CLIError(f"--format takes a comma-separated list of {', '.join(FORMATS)}; got {spec!r}")
    return formats


def _from_run(args: argparse.Namespace) -> tuple[Any, Any]:
    """Backbone + trained pooler of a run folder (the backbone is the one recorded in run_config.json)."""
    from glot.export.hub import load_backbone
    from glot.training.loop import load_run

    if args.model is not None or args.pooler is not None:
        raise CLIError("--run already names the backbone and pooler; drop --model/--pooler")
    pooler, _head, config = load_run(args.run, seed=args.seed)
    reference = config.get("backbone")
    if isinstance(reference, str):
        reference = {"name_or_path": reference}
    if not isinstance(reference, dict) or not reference.get("name_or_path"):
        raise CLIError(f"{args.run}/run_config.json does not name its backbone (key 'backbone')")
    backbone = load_backbone(reference, device=args.device, **length_options(args))
    return backbone, pooler.to(backbone.device)


def _untrained(args: argparse.Namespace) -> tuple[Any, Any]:
    """Backbone + freshly initialised pooler (seed 0); --tau goes into a glot pooler's graph."""
    import torch

    from glot.backbones.frozen import FrozenBackbone
    from glot.pooling.poolers import build_pooler

    if args.seed is not None:
        raise CLIError("--seed selects a seed of a --run folder; it has no meaning without --run")
    name = args.pooler or "glot"
    backbone = FrozenBackbone.from_pretrained(
        args.model or "minilm", dtype="float32", device=args.device, **length_options(args)
    )
    options = {"tau": args.tau} if name == "glot" and args.tau is not None else {}
    torch.manual_seed(0)
    pooler = build_pooler(name, backbone.hidden_size, **options).eval()
    return backbone, pooler.to(backbone.device)


def _edges(edge_index: Any) -> int:
    """Undirected edges without self-loops."""
    return len({(min(a, b), max(a, b)) for a, b in edge_index.T.tolist() if a != b})


def run(args: argparse.Namespace) -> int:
    from glot.viz import compute_explanation, draw_explanation

    formats = _formats(args.format)
    trained = args.run is not None
    backbone, pooler = _from_run(args) if trained else _untrained(args)
    graph_tau = trained or pooler.name != "glot"
    expl = compute_explanation(backbone, pooler, args.text, tau=args.tau if graph_tau else None)
    if not trained:
        expl.notes.insert(0, UNTRAINED_NOTE)
    files = draw_explanation(expl, args.out, formats)
    for note in expl.notes:
        console.print(f"note: {note}")
    console.print(
        f"{len(expl.tokens)} tokens, {expl.pooler} pooler, τ = {expl.tau:g}, {_edges(expl.edge_index)} edges"
    )
    rows = [(kind, str(path)) for kind, paths in files.items() for path in paths]
    print_table("glot explain", ["picture", "file"], rows)
    maybe_write_json(
        args.json,
        {
            "text": args.text,
            "backbone": getattr(backbone, "name", None),
            "pooler": expl.pooler,
            "trained": trained,
            "run": str(args.run) if trained else None,
            "tau": expl.tau,
            "tokens": expl.tokens,
            "weights": [float(w) for w in expl.weights],
            "weight_label": expl.weight_label,
            "num_edges": _edges(expl.edge_index),
            "notes": expl.notes,
            "files": {kind: [str(p) for p in paths] for kind, paths in files.items()},
        },
    )
    return 0
