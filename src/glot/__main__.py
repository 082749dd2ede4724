"""``python -m glot``: the ``glot`` command line; also what ``torchrun --nproc_per_node N -m glot ...`` and
``accelerate launch -m glot ...`` start once per rank (see :mod:`glot.distributed`)."""

from __future__ import annotations

from glot.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
