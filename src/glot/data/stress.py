"""The paper's diagnostic stress test: is the target noun negated, with the cue buried in noise?

PAPER.md (Fig. 3 / Table 7): binary labels, label 1 = "{context} {noun}", label 0 =
"{context} {modifier} {10 noise words} {noun}"; ``int(128 * ratio)`` noise words around the signal phrase,
which is inserted at a random position; 2,000 train / 500 eval examples; ratios 0.2 / 0.5 / 0.8 / 0.9.

The signal phrase is always contiguous, so the label is recoverable from the text: the word right after the
context phrase is a noun (label 1) or a modifier (label 0). Generation is deterministic given ``seed``; the
train and eval splits draw from independent child seeds, so changing ``n_train`` does not change the eval set.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from glot.data.base import Split, Task, check_common
from glot.errors import InputError

__all__ = ["CONTEXTS", "MODIFIERS", "NEGATION_WORDS", "NOISE_WORDS", "NOUNS", "make_stress_task"]

CONTEXTS: tuple[str, ...] = ("the delivery contains", "the folder includes", "in the box are")
NOUNS: tuple[str, ...] = ("keys", "reports", "files", "tickets", "documents", "alerts")
MODIFIERS: tuple[str, ...] = ("not", "never", "without", "excluding")

# ~100 common web words, chosen for this package. Like the paper's reference list it contains "not" and "no":
# a negation word can then appear anywhere as noise, so a pooler cannot solve the task by detecting "any
# negation in the sentence" and has to relate the modifier to the noun. That makes the task harder, and it is
# kept so that numbers stay comparable with the paper; ``noise_without_negations=True`` removes them.
# The list avoids the context phrases' nouns, the target nouns and the other modifiers.
NOISE_WORDS: tuple[str, ...] = (
    "the", "and", "for", "with", "this", "that", "from", "your", "you", "our",
    "all", "more", "new", "home", "page", "search", "free", "online", "news", "email",
    "site", "web", "login", "help", "about", "contact", "privacy", "policy", "terms", "service",
    "shop", "cart", "price", "sale", "deal", "review", "photo", "video", "music", "game",
    "blog", "post", "link", "menu", "update", "download", "share", "click", "here", "today",
    "time", "year", "day", "week", "people", "world", "city", "local", "best", "top",
    "first", "last", "next", "back", "up", "down", "out", "over", "just", "now",
    "only", "also", "very", "good", "great", "easy", "fast", "big", "small", "open",
    "sign", "join", "follow", "like", "view", "read", "mobile", "info", "data", "user",
    "account", "support", "team", "guide", "event", "map", "store", "app", "not", "no",
)  # fmt: skip

NEGATION_WORDS: frozenset[str] = frozenset({"not", "no", "never", "without", "excluding", "none", "nor"})

POSITIONS = ("random", "start", "middle", "end")
PAPER_N_TRAIN, PAPER_N_EVAL = 2000, 500


def _insert_at(position: str | float, n_noise: int, rng: np.random.Generator) -> int:
    """Index among the ``n_noise`` noise words at which the signal phrase goes (0 = before all noise)."""
    if position == "random":
        return int(rng.integers(0, n_noise + 1))
    if position == "start":
        return 0
    if position == "middle":
        return n_noise // 2
    if position == "end":
        return n_noise
    return int(round(float(position) * n_noise))


def _check_options(
    distractor_ratio: float, seq_len: int, relational_distance: int, position: str | float, n: Sequence[int]
) -> None:
    """Raise a ValueError for out-of-range generator options."""
    if distractor_ratio < 0:
        raise InputError(f"distractor_ratio must be >= 0 (fraction of seq_len), got {distractor_ratio}")
    if seq_len < 0 or relational_distance < 0 or min(n) < 0:
        raise InputError(
            f"seq_len, relational_distance, n_train and n_eval must be >= 0, got "
            f"{seq_len}, {relational_distance}, {n[0]}, {n[1]}"
        )
    if isinstance(position, str):
        if position not in POSITIONS:
            raise InputError(f"position must be one of {POSITIONS} or a float in [0, 1], got {position!r}")
    elif not 0.0 <= float(position) <= 1.0:
        raise InputError(f"position as a fraction must lie in [0, 1], got {position}")


def _example(
    label: int,
    rng: np.random.Generator,
    words: dict[str, Sequence[str]],
    n_noise: int,
    relational_distance: int,
    position: str | float,
    match_lengths: bool,
) -> str:
    """One stress-test sentence with the given label."""
    noise, context = words["noise"], words["contexts"][int(rng.integers(len(words["contexts"])))]
    noun = words["nouns"][int(rng.integers(len(words["nouns"])))]
    if label == 1:
        signal = [context, noun]
    else:
        modifier = words["modifiers"][int(rng.integers(len(words["modifiers"])))]
        gap = [noise[i] for i in rng.integers(len(noise), size=relational_distance)]
        signal = [context, modifier, *gap, noun]
    if label == 1 and match_lengths:
        n_noise += relational_distance + 1
    filler = [noise[i] for i in rng.integers(len(noise), size=n_noise)]
    at = _insert_at(position, n_noise, rng)
    return " ".join(filler[:at] + signal + filler[at:])


def _split(n: int, seed: np.random.SeedSequence, **kwargs: object) -> Split:
    """A balanced split of ``n`` examples (labels 50/50, in shuffled order)."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % 2).astype(np.int64)
    texts = [_example(int(y), rng, **kwargs) for y in labels]  # type: ignore[arg-type]
    return Split(texts=texts, labels=labels)


def make_stress_task(
    distractor_ratio: float = 0.9,
    *,
    seq_len: int = 128,
    relational_distance: int = 10,
    position: str | float = "random",
    n_train: int | None = None,
    n_eval: int | None = None,
    seed: int = 0,
    max_length: int | None = 128,
    contexts: Sequence[str] = CONTEXTS,
    nouns: Sequence[str] = NOUNS,
    modifiers: Sequence[str] = MODIFIERS,
    noise_words: Sequence[str] = NOISE_WORDS,
    noise_without_negations: bool = False,
    match_lengths: bool = False,
) -> Task:
    """Generate the diagnostic stress test as a ``Task`` (kind "single", metric accuracy).

    ``int(seq_len * distractor_ratio)`` noise words surround the signal phrase; in negated examples
    ``relational_distance`` further noise words separate the modifier from the noun. ``position`` places the
    signal phrase: "random" (uniform, the paper), "start", "middle", "end" or a fraction in [0, 1] of the way
    through the noise words. Label 1 = noun present (not negated), label 0 = noun negated.

    As in the paper, negated examples are ``relational_distance + 1`` words longer, a length cue a pooler
    could exploit; ``match_lengths=True`` gives label-1 examples as many extra noise words to remove it.
    ``n_train`` / ``n_eval`` are the numbers of examples GENERATED (None: the paper's 2,000 / 500).
    """
    check_common(n_train, n_eval, seed, max_length)
    n_train = PAPER_N_TRAIN if n_train is None else n_train
    n_eval = PAPER_N_EVAL if n_eval is None else n_eval
    _check_options(distractor_ratio, seq_len, relational_distance, position, (n_train, n_eval))
    if set(nouns) & set(modifiers):
        raise InputError(
            f"nouns and modifiers must not overlap, both contain {sorted(set(nouns) & set(modifiers))}"
        )
    noise = [w for w in noise_words if not (noise_without_negations and w in NEGATION_WORDS | set(modifiers))]
    if not noise or not contexts or not nouns or not modifiers:
        raise InputError("contexts, nouns, modifiers and noise_words must each hold at least one word")
    words = {"noise": noise, "contexts": list(contexts), "nouns": list(nouns), "modifiers": list(modifiers)}
    n_noise = int(seq_len * distractor_ratio)
    train_seed, eval_seed = np.random.SeedSequence(seed).spawn(2)
    common = {
        "words": words,
        "n_noise": n_noise,
        "relational_distance": relational_distance,
        "position": position,
        "match_lengths": match_lengths,
    }
    options = {
        "distractor_ratio": distractor_ratio,
        "seq_len": seq_len,
        "relational_distance": relational_distance,
        "position": position,
        "seed": seed,
        "n_train": n_train,
        "n_eval": n_eval,
        "noise_without_negations": noise_without_negations,
        "match_lengths": match_lengths,
        "n_noise_words": n_noise,
    }
    return Task(
        name="stress",
        kind="single",
        metric="accuracy",
        num_labels=2,
        splits={"train": _split(n_train, train_seed, **common), "eval": _split(n_eval, eval_seed, **common)},
        label_names=["negated", "present"],
        max_length=max_length,
        info=options,
    )
