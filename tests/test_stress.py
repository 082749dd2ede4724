"""The diagnostic stress test generator: labels recoverable from text, every knob, determinism, balance."""

from __future__ import annotations

import numpy as np
import pytest

from glot.data import get_task
from glot.data.stress import CONTEXTS, MODIFIERS, NEGATION_WORDS, NOISE_WORDS, NOUNS, make_stress_task


def parse_stress(text: str) -> dict[str, object]:
    """Recover label and signal layout from a generated sentence, using only the text.

    The context phrase occurs once; the next word is a noun (label 1) or a modifier (label 0, and then the
    noun follows after the relational-distance gap).
    """
    words = text.split(" ")
    starts = [
        (i, c) for c in CONTEXTS for i in range(len(words)) if words[i : i + len(c.split())] == c.split()
    ]
    assert len(starts) == 1, f"expected exactly one context phrase in {text!r}"
    start, context = starts[0]
    after = start + len(context.split())
    nxt = words[after]
    if nxt in NOUNS:
        return {
            "label": 1,
            "start": start,
            "context_len": len(context.split()),
            "signal_len": len(context.split()) + 1,
            "n_words": len(words),
        }
    assert nxt in MODIFIERS, f"word after the context must be a noun or modifier, got {nxt!r}"
    nouns_after = [j for j in range(after + 1, len(words)) if words[j] in NOUNS]
    assert nouns_after, "a negated example must contain its noun"
    gap = nouns_after[0] - after - 1
    return {
        "label": 0,
        "start": start,
        "gap": gap,
        "context_len": len(context.split()),
        "signal_len": len(context.split()) + gap + 2,
        "n_words": len(words),
    }


@pytest.fixture(scope="module")
def task():
    return make_stress_task(0.9, n_train=200, n_eval=100, seed=0)


def test_labels_recoverable_from_text(task) -> None:
    for split in task.splits.values():
        parsed = [parse_stress(t) for t in split.texts]
        assert [p["label"] for p in parsed] == split.labels.tolist()
        assert all(p["gap"] == 10 for p in parsed if p["label"] == 0)  # paper: 10 noise words


def test_word_counts_follow_ratio_and_distance(task) -> None:
    n_noise = int(128 * 0.9)
    assert task.info["n_noise_words"] == n_noise == 115
    for text, label in zip(task.splits["train"].texts, task.splits["train"].labels, strict=True):
        p = parse_stress(text)
        assert p["n_words"] == n_noise + p["signal_len"]
        assert p["signal_len"] == p["context_len"] + (1 if label == 1 else 1 + 1 + 10)


def test_task_shape_balance_and_registry() -> None:
    task = get_task("stress", distractor_ratio=0.2, seed=1)
    assert (task.name, task.kind, task.metric, task.num_labels, task.max_length) == (
        "stress",
        "single",
        "accuracy",
        2,
        128,
    )
    assert len(task.splits["train"]) == 2000 and len(task.splits["eval"]) == 500  # paper sizes
    for split in task.splits.values():
        assert np.bincount(split.labels).tolist() == [len(split) // 2] * 2
        assert split.labels[:20].tolist() != sorted(split.labels[:20].tolist())  # shuffled, not blocks
    words = {w for t in task.splits["train"].texts for w in t.split()}
    vocab = set(NOISE_WORDS) | set(NOUNS) | set(MODIFIERS) | {w for c in CONTEXTS for w in c.split()}
    assert words <= vocab
    assert {"not", "no"} <= words  # the noise list keeps negations, like the reference


def test_deterministic_by_seed_and_eval_independent_of_train_size() -> None:
    a = make_stress_task(0.5, n_train=50, n_eval=40, seed=3)
    b = make_stress_task(0.5, n_train=50, n_eval=40, seed=3)
    c = make_stress_task(0.5, n_train=50, n_eval=40, seed=4)
    d = make_stress_task(0.5, n_train=80, n_eval=40, seed=3)
    assert (
        a.splits["train"].texts == b.splits["train"].texts
        and a.splits["eval"].texts == b.splits["eval"].texts
    )
    assert a.splits["train"].texts != c.splits["train"].texts
    assert a.splits["eval"].texts == d.splits["eval"].texts


@pytest.mark.parametrize(
    ("position", "where"),
    [
        ("start", lambda n: 0),
        ("end", lambda n: n),
        ("middle", lambda n: n // 2),
        (0.25, lambda n: round(0.25 * n)),
    ],
)
def test_signal_position(position, where) -> None:
    task = make_stress_task(0.5, position=position, n_train=20, n_eval=2)
    n_noise = int(128 * 0.5)
    for text in task.splits["train"].texts:
        assert parse_stress(text)["start"] == where(n_noise)


def test_random_position_spreads_over_the_sentence(task) -> None:
    starts = [parse_stress(t)["start"] for t in task.splits["train"].texts]
    assert min(starts) < 20 and max(starts) > 95


def test_relational_distance_seq_len_and_noise_options() -> None:
    task = make_stress_task(
        0.5, seq_len=64, relational_distance=3, n_train=40, n_eval=4, noise_without_negations=True
    )
    for text, label in zip(task.splits["train"].texts, task.splits["train"].labels, strict=True):
        p = parse_stress(text)
        assert p["label"] == label and p["n_words"] == 32 + p["signal_len"]
        assert p.get("gap", 3) == 3
        noise = text.split()
        noise = noise[: p["start"]] + noise[p["start"] + p["signal_len"] :]
        assert not set(noise) & NEGATION_WORDS


def test_match_lengths_removes_length_cue() -> None:
    task = make_stress_task(0.9, n_train=60, n_eval=4, match_lengths=True)
    for text in task.splits["train"].texts:
        assert len(text.split()) == 115 + parse_stress(text)["context_len"] + 12  # modifier + 10 + noun
    assert [parse_stress(t)["label"] for t in task.splits["train"].texts] == task.splits[
        "train"
    ].labels.tolist()


def test_custom_words_and_bad_options() -> None:
    task = make_stress_task(
        0.1, contexts=["in the box are"], nouns=["keys"], modifiers=["without"], n_train=10, n_eval=2
    )
    assert all("in the box are" in t for t in task.splits["train"].texts)
    with pytest.raises(ValueError, match="position must be one of"):
        make_stress_task(position="left")
    with pytest.raises(ValueError, match=r"fraction must lie in \[0, 1\]"):
        make_stress_task(position=1.5)
    with pytest.raises(ValueError, match="distractor_ratio must be >= 0"):
        make_stress_task(-0.1)
    with pytest.raises(ValueError, match="must not overlap"):
        make_stress_task(nouns=["keys", "not"])
