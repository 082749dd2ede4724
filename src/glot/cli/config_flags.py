"""The flags generated from the config dataclasses: one per pooler option (``glot.pooling.config``) and one
per training setting (:class:`glot.training.config.TrainConfig`), with their defaults and help texts as declared
there, and the way back from parsed flags to a validated ``TrainConfig`` (bad values: one-line CLI errors)."""

from __future__ import annotations

import argparse
from dataclasses import MISSING, Field, fields
from typing import Any, get_args, get_type_hints

from glot.cli.common import CLIError

#: TrainConfig fields set by other flags than a generated one of the same name (the rest get one each).
TRAIN_FIELDS_ELSEWHERE: dict[str, str] = {
    "pooler": "--pooler",
    "pooler_options": "the pooler option flags",
    "head_options": "--head-option",
    "seed": "--seeds",
    "max_length": "--max-length",
}


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _add_field_flag(group: Any, spec: Field[Any], hint: Any, default: Any, note: str) -> None:
    """One flag for a dataclass field: ``--field-name`` with the field's type, choices and help text."""
    kinds = [k for k in get_args(hint) if k is not type(None)] or [hint]  # int | None -> int
    kinds = [spec.metadata["type"]] if "type" in spec.metadata else kinds  # a field's own parser (--tau)
    assert len(kinds) == 1 and (kinds[0] in (bool, int, float, str) or "type" in spec.metadata), (spec, hint)
    text = spec.metadata["help"] + (f"; {note}" if note else "")
    flag = "--" + spec.name.replace("_", "-")
    if kinds[0] is bool:  # --weighted / --no-weighted
        group.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=text)
    else:
        choices = spec.metadata.get("choices")
        group.add_argument(flag, type=kinds[0], default=default, choices=choices, help=text)


def add_pooler_arguments(
    parser: argparse.ArgumentParser, defaults: dict[str, Any] | None = None, about: str = ""
) -> None:
    """One flag per pooler option, generated from the config fields (``glot.pooling.config``).

    A flag not given stays None: the pooler's own default. ``defaults`` (e.g. the stress test's) replace that;
    ``about`` says how the command treats options its pooler does not take.
    """
    from glot.pooling.config import option_fields

    defaults = dict(defaults or {})
    parser.set_defaults(pooler_option_defaults=dict(defaults))  # pooler_options() drops them where not taken
    g = parser.add_argument_group(
        "pooler options",
        "glot takes all of them, the other poolers fewer or none (glot.POOLERS[name].options); the defaults "
        "shown are glot's (the paper's GLUE settings), the other poolers keep their own. " + about,
    )
    for spec, hint in option_fields():
        if spec.name in defaults:
            default = defaults.pop(spec.name)
            note = f"default {_show(default)} here"
        else:  # None = not given: the pooler's own default (a None field default is explained in its help)
            note, default = "" if spec.default is None else f"default {_show(spec.default)}", None
        _add_field_flag(g, spec, hint, default, note)
    assert not defaults, f"no pooler option named {sorted(defaults)}"


def add_optim_arguments(parser: argparse.ArgumentParser, **overrides: Any) -> None:
    """The training flags, generated from :class:`glot.training.config.TrainConfig`'s fields (default and help
    text as declared there); ``overrides`` set other defaults for one command (e.g. ``glot compare``'s lr)."""
    from glot.training.config import TrainConfig

    g = parser.add_argument_group("training")
    hints = get_type_hints(TrainConfig)
    for spec in fields(TrainConfig):
        if spec.name in TRAIN_FIELDS_ELSEWHERE:
            continue
        assert spec.default is not MISSING and "help" in spec.metadata, spec.name
        default = overrides.pop(spec.name, spec.default)
        note = "" if default is None else f"default {_show(default)}"
        _add_field_flag(g, spec, hints[spec.name], default, note)
    assert not overrides, f"no TrainConfig field named {sorted(overrides)}"


def train_field_names() -> list[str]:
    """The TrainConfig fields that have a generated training flag."""
    from glot.training.config import TrainConfig

    return [f.name for f in fields(TrainConfig) if f.name not in TRAIN_FIELDS_ELSEWHERE]


def pooler_options(args: argparse.Namespace, pooler: str, only_taken: bool = False) -> dict[str, Any]:
    """The pooler option flags that were given (or have a command default). ``only_taken`` drops those that
    ``pooler`` does not take (``glot compare`` runs several poolers); otherwise they are refused later."""
    from glot.pooling.config import OPTION_SECTION
    from glot.pooling.poolers import pooler_class

    given = {k: getattr(args, k) for k in OPTION_SECTION if getattr(args, k, None) is not None}
    taken = pooler_class(pooler).options
    command = getattr(args, "pooler_option_defaults", {})  # a command default is not the user's choice
    return {
        k: v for k, v in given.items() if k in taken or not (only_taken or (k in command and command[k] == v))
    }


def check_pooler(name: str) -> str:
    from glot.pooling.poolers import pooler_class

    try:
        pooler_class(name)
    except ValueError as err:
        raise CLIError(str(err)) from None
    return name


def train_config(args: argparse.Namespace, pooler: str, only_taken: bool = False, **overrides: Any) -> Any:
    """TrainConfig from the parsed flags; bad values become one-line CLI errors (see :func:`pooler_options`)."""
    from glot.distributed import device
    from glot.pooling.poolers import pooler_class
    from glot.training.config import TrainConfig
    from glot.training.precision import resolve_head_dtype

    values = {name: getattr(args, name) for name in train_field_names()}
    try:
        sections = pooler_class(pooler).settings(**pooler_options(args, pooler, only_taken))
        config = TrainConfig(pooler=pooler, pooler_options=sections, max_length=args.max_length, **values)
        config = config.replace(**overrides)
        config.validate()
        # --device cuda without CUDA, or --head-dtype bf16 where that device lacks it: one line before any cache
        resolve_head_dtype(config.head_dtype, device(config.device))
    except ValueError as err:
        raise CLIError(str(err)) from None
    return config
