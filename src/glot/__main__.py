"""``python -m glot``: the ``glot`` command line; also what ``torchrun --nproc_per_node N -m glot ...`` and
``accelerate launch -m glot ...`` start once per rank (see :mod:`glot.distributed`)."""

from __future__ import annotations

from typing import NoReturn

from glot.cli import main


def entry() -> NoReturn:
    """Run the command line and exit with its code; a rank of a multi-process launch ends through
    :func:`glot.distributed.exit_rank` (its finished work is never reported as a crash at teardown)."""
    from glot import distributed
    from glot.errors import InputError

    code = main()
    try:
        ranked = distributed.launched()
    except InputError:  # a malformed WORLD_SIZE: main already said so
        ranked = False
    if ranked:
        distributed.exit_rank(code)
    raise SystemExit(code)


if __name__ == "__main__":
    entry()
