"""``TrainConfig``: every setting of a training run, validated, with a JSON round trip.

Each field's default and help text live here once; the ``glot train`` / ``glot compare`` training flags are
generated from these fields (``glot.cli.config_flags.add_optim_arguments``).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import re
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from glot.errors import InputError
from glot.pooling.config import SECTION_NAMES, PoolerConfig, PoolerSections

if TYPE_CHECKING:
    from glot.pooling.poolers import Pooler

__all__ = ["DEVICE_HELP", "HEAD_DTYPES", "OPTIMIZERS", "TrainConfig"]

OPTIMIZERS = ("adam", "adamw")
#: Precisions of the pooler + head (:mod:`glot.training.precision`); "auto" = bf16 where the hardware has it.
HEAD_DTYPES = ("auto", "fp32", "bf16")
#: ``--device`` (every command that runs the pooler + head); resolved by :func:`glot.distributed.device`.
#: what --device auto means (glot.distributed.device), for every command's help
DEVICE_RULE = (
    "auto = this rank's GPU (cuda:LOCAL_RANK under torchrun, else cuda:0) when CUDA is available, else cpu; "
    "or cpu, cuda, cuda:N"
)
DEVICE_HELP = "where the pooler + task head run (and, from the CLI, the backbone): " + DEVICE_RULE
_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")
#: Training defaults (benchmarks/sweep_defaults.py; docs/results.md): one lr for every pooler and backbone,
#: enough epochs for small data, early stopping on the validation split carved from train.
DEFAULT_LR = 3e-3
DEFAULT_EPOCHS = 20
DEFAULT_PATIENCE = 5
#: The selected epoch is the latest within this many validation examples of the best (glot.training.selection).
DEFAULT_SELECT_SLACK = 1
#: The lr halves after this many epochs in a row without a validation gain (0 = constant lr).
DEFAULT_LR_PLATEAU = 0
DEFAULT_LR_FACTOR = 0.5
#: Largest learning rate accepted: Adam's steps are ~lr per weight, so anything near this is already absurd
#: (and lr > ~3e37 overflows inside torch's Adam step).
MAX_LR = 10.0


def _finite(name: str, value: Any, expected: str, ok: Callable[[float], bool]) -> None:
    """Raise a one-line InputError unless ``value`` is a finite real number (not a bool) with ``ok(value)``."""
    real = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not real or not math.isfinite(value) or not ok(value):
        raise InputError(f"{name} must be {expected}, got {value!r}")


def _positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"{name} must be an integer >= 1, got {value!r}")


def _flag(default: Any, help: str, **extra: Any) -> Any:
    """A setting with its CLI help text (and e.g. ``choices``) kept as field metadata."""
    return field(default=default, metadata={"help": help, **extra})


def _pooler_class(name: Any) -> type[Pooler]:
    # imported here, not at the top: the CLI builds its flags from this module without importing torch
    from glot.pooling.poolers import pooler_class

    return pooler_class(name)


def _no_options() -> Any:
    return {}  # no options given: __post_init__ turns it into the pooler's own default sections


@dataclass
class TrainConfig:
    """Settings of one training run (one seed): Adam, batch 32 as the paper; model selection on
    ``val_fraction`` of train (not the paper's selection on the eval split). lr, epochs and patience are NOT
    the paper's (lr 2e-4 for 3 epochs barely trains on small data): lr ``DEFAULT_LR`` for every pooler on
    every packaged backbone, chosen by benchmarks/sweep_defaults.py on the validation splits of the packaged
    tasks; up to ``DEFAULT_EPOCHS`` epochs with early stopping after ``DEFAULT_PATIENCE`` epochs without a
    validation gain, ending with the best-on-validation epoch's weights (docs/results.md).

    ``pooler`` names the pooler; ``pooler_options`` holds its FULL settings (:class:`PoolerSections`: graph,
    GNN and readout sections, normalised to that pooler's defaults), so equal poolers give equal configs and one
    run key. It may be given as ``glot.build_pooler`` keywords (e.g. ``{"tau": 0.6, "num_layers": 4}``), as
    sections or as their JSON. ``head_options`` go to ``glot.training.heads.build_head``. ``patience`` = stop
    after that many epochs without a validation improvement (None = never). ``lr_plateau`` / ``lr_factor``: the
    lr is multiplied by ``lr_factor`` after ``lr_plateau`` epochs in a row without a strict validation gain
    (:func:`glot.training.selection.lr_scale`; 0 = constant lr). ``select_slack``: the epoch kept is the latest
    within that many validation examples of the best validation accuracy. ``max_length`` = backbone
    truncation (None = the task's). ``grad_clip`` = max gradient norm (None = off). ``head_dtype``: see
    :mod:`glot.training.precision`; a run records the dtype it used (``"auto"`` resolved) in its key.
    ``device``: where the pooler + head train, resolved by :func:`glot.distributed.device` (``"auto"``: this
    rank's GPU when CUDA is available, else the CPU); it is not part of the run key.
    """

    pooler: str = "glot"
    pooler_options: PoolerSections = field(default_factory=_no_options)
    head_options: dict[str, Any] = field(default_factory=dict)
    optimizer: str = _flag("adam", "optimizer", choices=OPTIMIZERS)
    lr: float = _flag(DEFAULT_LR, "learning rate, one for every pooler (paper: 2e-4 GLUE, 1e-4 stress test)")
    lr_plateau: int = _flag(
        DEFAULT_LR_PLATEAU,
        "multiply the lr by --lr-factor after N epochs in a row without a validation improvement (0 = constant)",
    )
    lr_factor: float = _flag(DEFAULT_LR_FACTOR, "the lr's factor at each --lr-plateau reduction, in (0, 1)")
    weight_decay: float = _flag(0.0, "weight decay (0 = off)")
    epochs: int = _flag(DEFAULT_EPOCHS, "max epochs (early stopping: --patience)")
    batch_size: int = _flag(
        32, "training batch size (under torchrun: the global batch, split over the ranks)"
    )
    eval_batch_size: int = _flag(256, "batch size for validation / eval predictions")
    seed: int = 0
    val_fraction: float = _flag(0.1, "share of train held out for model selection")
    patience: int | None = _flag(
        DEFAULT_PATIENCE,
        "stop after N epochs without a validation improvement (the weights kept: see --select-slack)",
    )
    select_slack: int = _flag(
        DEFAULT_SELECT_SLACK,
        "keep the latest epoch whose validation accuracy is within N validation examples of the best (0 = "
        "exact ties only; metrics other than accuracy: exact ties)",
    )
    max_length: int | None = None
    grad_clip: float | None = _flag(None, "max gradient norm; default off")
    head_dtype: str = _flag(
        "auto",
        "precision of the pooler's matmuls (training and inference; weights, softmaxes and losses stay fp32): "
        "auto = bf16 on CUDA or a CPU with avx512_bf16/AMX, else fp32",
        choices=HEAD_DTYPES,
    )
    device: str = _flag("auto", DEVICE_HELP + " (not in the run key: a run resumes on another device)")

    def __post_init__(self) -> None:
        """Normalise ``pooler_options`` to the pooler's full settings (keywords, sections or their JSON)."""
        cls = _pooler_class(self.pooler)
        raw: Any = self.pooler_options
        if isinstance(raw, PoolerSections):
            sections = copy.deepcopy(raw)
        elif isinstance(raw, dict) and raw and set(raw) <= set(SECTION_NAMES):
            sections = PoolerSections.from_dict(raw)  # the JSON of a TrainConfig
        elif isinstance(raw, dict):
            sections = cls.settings(**raw)  # build_pooler keywords (as older run configs store them)
        else:
            raise InputError(
                f"pooler_options must be a dict of build_pooler options (e.g. {{'tau': 0.6}}) or PoolerSections, "
                f"got {type(raw).__name__}"
            )
        cls.check(sections)
        self.pooler_options = sections

    def pooler_config(self, input_dim: int) -> PoolerConfig:
        """The full config of this run's pooler on states of width ``input_dim`` (known from the cache)."""
        return self.pooler_options.config(self.pooler, input_dim)

    def validate(self) -> None:
        """Raise a one-line InputError naming the bad field, what it got and what it expects (numbers must be
        finite: NaN / inf learning rates, weight decays or clips are refused)."""
        if self.optimizer not in OPTIMIZERS:
            raise InputError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        _finite(
            "lr", self.lr, f"a finite number in (0, {MAX_LR:g}] (paper: 2e-4 GLUE, 1e-4 stress test)",
            lambda v: 0 < v <= MAX_LR,
        )  # fmt: skip
        for name, zero in (("lr_plateau", "constant lr"), ("select_slack", "exact ties only")):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InputError(f"{name} must be an integer >= 0 (0 = {zero}), got {value!r}")
        _finite("lr_factor", self.lr_factor, "a number in (0, 1), e.g. 0.5", lambda v: 0 < v < 1)
        _finite("weight_decay", self.weight_decay, "a finite number >= 0 (0 = off)", lambda v: v >= 0)
        for name in ("epochs", "batch_size", "eval_batch_size"):
            _positive_int(name, getattr(self, name))
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise InputError(f"seed must be an integer >= 0, got {self.seed!r}")
        _finite(
            "val_fraction", self.val_fraction,
            "a number in (0, 1) (the share of train held out for model selection)", lambda v: 0.0 < v < 1.0,
        )  # fmt: skip
        for name in ("patience", "max_length"):
            if getattr(self, name) is not None:
                _positive_int(name, getattr(self, name))
        if self.grad_clip is not None:
            _finite(
                "grad_clip", self.grad_clip, "None (off) or a finite number > 0, e.g. 1.0", lambda v: v > 0
            )
        if self.head_dtype not in HEAD_DTYPES:
            raise InputError(
                f"head_dtype must be one of {', '.join(HEAD_DTYPES)} (--head-dtype), got {self.head_dtype!r}"
            )
        if not isinstance(self.device, str) or not _DEVICE.fullmatch(self.device):
            raise InputError(f"device must be auto, cpu, cuda or cuda:N (--device), got {self.device!r}")
        if not isinstance(self.head_options, dict):
            raise InputError(f"head_options must be a dict of build_head keywords, got {self.head_options!r}")
        if not isinstance(self.pooler_options, PoolerSections):
            raise InputError(
                f"pooler_options must be PoolerSections, got {type(self.pooler_options).__name__}"
            )
        _pooler_class(self.pooler).check(self.pooler_options)
        self.pooler_options.validate()

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with some fields changed. A new ``pooler`` without new ``pooler_options`` keeps the options
        that differ from the old pooler's defaults (and refuses them where the new pooler does not take them)."""
        if "pooler" in changes and "pooler_options" not in changes:
            changes["pooler_options"] = _pooler_class(self.pooler).changed_options(self.pooler_options)
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown keys warn, bad values raise. Also reads the ``train`` section of
        older run configs, whose ``pooler_options`` held only the options given (e.g. ``{"tau": 0.5}``)."""
        if not isinstance(data, dict):
            raise InputError(f"a train config must be a JSON object, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        for key in sorted(set(data) - known):
            warnings.warn(f"ignoring unknown key {key!r} in train config", UserWarning, stacklevel=2)
        config = cls(**{k: v for k, v in data.items() if k in known})
        config.validate()
        return config
