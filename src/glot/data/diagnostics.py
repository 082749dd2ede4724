"""Diagnostics where token interactions must matter, built like the stress generator (glot.data.stress).

Both tasks are binary, balanced, deterministic per ``seed``, and **length-matched by construction**: the two
classes use the same words in the same numbers (only which word relates to which differs), so neither a bag
of words nor the length can tell them apart; noise words never contain a negation.

- ``negation`` (negation scope): every text holds one negator, a target noun (``NOUNS``) and an other noun
  (``OTHER_NOUNS``). The negator governs the noun ``scope_distance`` noise words after it; the second noun
  stands elsewhere, un-negated. Label 1 = the target noun is negated, label 0 = the other noun is negated.
  E.g. (label 1) "... never shop sale free keys ... lamps ...", (label 0) "... never shop sale free lamps
  ... keys ...".
- ``roles`` (role binding): "the A [gap] helped the B" with one entity from ``AGENTS`` and one from
  ``PATIENTS``; label 1 = the ``AGENTS`` entity does the action. ``voice="mixed"`` also uses the passive ("the
  B [gap] was helped by the A"), half of each class, so word order alone no longer gives the role.

Knobs: ``distractor_ratio`` (``int(seq_len * ratio)`` noise words around the signal), ``scope_distance`` /
``role_distance`` (noise words inside the signal), ``voice``, ``n_train`` / ``n_eval`` / ``seed`` /
``max_length``. Train and eval draw from independent child seeds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from glot.data.base import Split, Task, check_common
from glot.data.stress import MODIFIERS, NEGATION_WORDS, NOISE_WORDS, NOUNS
from glot.errors import InputError

__all__ = ["AGENTS", "OTHER_NOUNS", "PATIENTS", "VERBS", "make_negation_task", "make_roles_task"]

OTHER_NOUNS: tuple[str, ...] = ("chairs", "lamps", "plates", "cables", "bottles", "towels")
AGENTS: tuple[str, ...] = ("doctor", "teacher", "pilot", "lawyer", "farmer", "banker")
PATIENTS: tuple[str, ...] = ("child", "student", "tourist", "patient", "client", "neighbour")
VERBS: tuple[str, ...] = ("helped", "called", "thanked", "visited", "warned", "paid")
VOICES = ("active", "passive", "mixed")
NOISE: tuple[str, ...] = tuple(w for w in NOISE_WORDS if w not in NEGATION_WORDS)

Example = Callable[[int, int, np.random.Generator], list[str]]


def _pick(words: Sequence[str], rng: np.random.Generator, k: int | None = None) -> list[str]:
    return [words[int(i)] for i in rng.integers(len(words), size=1 if k is None else k)]


def _embed(parts: list[list[str]], n_noise: int, rng: np.random.Generator) -> str:
    """The phrases ``parts`` in this order at random places among ``n_noise`` noise words."""
    filler = _pick(NOISE, rng, n_noise)
    cuts = np.sort(rng.integers(0, n_noise + 1, size=len(parts)))
    out, last = [], 0
    for cut, part in zip(cuts.tolist(), parts, strict=True):
        out += filler[last:cut] + part
        last = cut
    return " ".join(out + filler[last:])


def _negation_example(n_noise: int, distance: int) -> Example:
    def make(label: int, _variant: int, rng: np.random.Generator) -> list[str]:
        target, other = _pick(NOUNS, rng)[0], _pick(OTHER_NOUNS, rng)[0]
        negated, free = (target, other) if label == 1 else (other, target)
        scope = [*_pick(MODIFIERS, rng), *_pick(NOISE, rng, distance), negated]
        parts = [scope, [free]] if rng.integers(2) else [[free], scope]
        return [_embed(parts, n_noise, rng)]

    return make


def _roles_example(n_noise: int, distance: int) -> Example:
    def make(label: int, passive: int, rng: np.random.Generator) -> list[str]:
        a, p, verb = _pick(AGENTS, rng)[0], _pick(PATIENTS, rng)[0], _pick(VERBS, rng)[0]
        doer, done = (a, p) if label == 1 else (p, a)
        gap = _pick(NOISE, rng, distance)
        clause = (
            ["the", done, *gap, "was", verb, "by", "the", doer]
            if passive
            else ["the", doer, *gap, verb, "the", done]
        )
        return [_embed([clause], n_noise, rng)]

    return make


def _split(n: int, seed: np.random.SeedSequence, make: Example, mixed: bool, passive: bool) -> Split:
    """``n`` examples, labels 50/50 in shuffled order; with ``mixed`` each class is half passive (exactly, up
    to one example), so the classes' word counts match exactly."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % 2).astype(np.int64)
    variant = np.full(n, int(passive), dtype=np.int64)
    if mixed:
        for c in (0, 1):
            idx = np.flatnonzero(labels == c)
            variant[idx] = rng.permutation(np.arange(idx.size) % 2)
    texts = [make(int(y), int(v), rng)[0] for y, v in zip(labels, variant, strict=True)]
    return Split(texts=texts, labels=labels)


def _check(distractor_ratio: float, seq_len: int, distance: int, name: str) -> None:
    if (
        isinstance(distractor_ratio, bool)
        or not isinstance(distractor_ratio, (int, float))
        or distractor_ratio < 0
    ):
        raise InputError(
            f"distractor_ratio must be a number >= 0 (fraction of seq_len), got {distractor_ratio!r}"
        )
    for field, value in (("seq_len", seq_len), (name, distance)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InputError(f"{field} must be an integer >= 0, got {value!r}")


def _task(name: str, labels: list[str], make: Example, sizes: tuple[int, int], seed: int, mixed: bool,
          passive: bool, max_length: int | None, info: Mapping[str, object]) -> Task:  # fmt: skip
    train_seed, eval_seed = np.random.SeedSequence(seed).spawn(2)
    splits = {"train": _split(sizes[0], train_seed, make, mixed, passive),
              "eval": _split(sizes[1], eval_seed, make, mixed, passive)}  # fmt: skip
    full = {**info, "seed": seed, "n_train": sizes[0], "n_eval": sizes[1]}
    return Task(name=name, kind="single", metric="accuracy", num_labels=2, splits=splits, label_names=labels,
                max_length=max_length, info=full)  # fmt: skip


def make_negation_task(
    distractor_ratio: float = 0.5,
    *,
    seq_len: int = 128,
    scope_distance: int = 10,
    n_train: int | None = None,
    n_eval: int | None = None,
    seed: int = 0,
    max_length: int | None = 128,
) -> Task:
    """Negation scope: is the TARGET noun the negated one (1) or the other noun (0)? See the module doc.

    ``int(seq_len * distractor_ratio)`` noise words surround the two phrases; the negator stands
    ``scope_distance`` noise words before the noun it negates. ``n_train`` / ``n_eval`` default to 2,000 / 500.
    """
    check_common(n_train, n_eval, seed, max_length)
    _check(distractor_ratio, seq_len, scope_distance, "scope_distance")
    n_noise = int(seq_len * distractor_ratio)
    info = {"distractor_ratio": distractor_ratio, "seq_len": seq_len, "scope_distance": scope_distance,
            "n_noise_words": n_noise}  # fmt: skip
    sizes = (2000 if n_train is None else n_train, 500 if n_eval is None else n_eval)
    make = _negation_example(n_noise, scope_distance)
    labels = ["other noun negated", "target noun negated"]
    return _task("negation", labels, make, sizes, seed, False, False, max_length, info)


def make_roles_task(
    distractor_ratio: float = 0.5,
    *,
    seq_len: int = 128,
    role_distance: int = 5,
    voice: str = "active",
    n_train: int | None = None,
    n_eval: int | None = None,
    seed: int = 0,
    max_length: int | None = 128,
) -> Task:
    """Role binding: does the ``AGENTS`` entity act on the ``PATIENTS`` one (1) or the other way round (0)?

    ``role_distance`` noise words separate the subject from its verb; ``voice`` is "active", "passive" or
    "mixed" (half of each class passive). ``n_train`` / ``n_eval`` default to 2,000 / 500.
    """
    check_common(n_train, n_eval, seed, max_length)
    _check(distractor_ratio, seq_len, role_distance, "role_distance")
    if voice not in VOICES:
        raise InputError(f"voice must be one of {', '.join(VOICES)}, got {voice!r}")
    n_noise = int(seq_len * distractor_ratio)
    info = {"distractor_ratio": distractor_ratio, "seq_len": seq_len, "role_distance": role_distance,
            "voice": voice, "n_noise_words": n_noise}  # fmt: skip
    sizes = (2000 if n_train is None else n_train, 500 if n_eval is None else n_eval)
    make = _roles_example(n_noise, role_distance)
    labels = ["patient entity acts", "agent entity acts"]
    return _task("roles", labels, make, sizes, seed, voice == "mixed", voice == "passive", max_length, info)
