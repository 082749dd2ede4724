"""glot.data.diagnostics: negation scope and role binding — balanced, length-matched, no bag-of-words cue,
the label recoverable from the structure, deterministic per seed, and runnable from ``glot compare``."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from glot.cli import main
from glot.data import TASK_NAMES, get_task
from glot.data.diagnostics import AGENTS, NOISE, PATIENTS, VERBS
from glot.data.stress import MODIFIERS, NOUNS
from glot.errors import InputError
from tiny_models import make_tiny_bert

CASES = [("negation", {}), ("roles", {}), ("roles", {"voice": "mixed"}), ("roles", {"voice": "passive"})]


def split(name: str, opts: dict, n: int = 400, seed: int = 0):
    return get_task(name, n_train=n, n_eval=n // 2, seed=seed, **opts).splits["train"]


def by_class(texts: list[str], labels: np.ndarray, f) -> tuple[list, list]:
    pairs = list(zip(texts, labels.tolist(), strict=True))
    return [f(t) for t, y in pairs if y == 0], [f(t) for t, y in pairs if y == 1]


@pytest.mark.parametrize("name, opts", CASES)
def test_labels_are_balanced_and_word_counts_match_exactly(name: str, opts: dict) -> None:
    odd = split(name, opts, n=401)
    assert sorted(Counter(odd.labels.tolist()).values()) == [200, 201]
    s = split(name, opts, n=400)
    neg, pos = by_class(s.texts, s.labels, lambda t: len(t.split()))
    assert len(neg) == len(pos) == 200 and Counter(neg) == Counter(pos)  # same word counts, same shares


@pytest.mark.parametrize("name, opts", CASES[:2])
def test_token_lengths_carry_no_class_cue(minilm_path: str, name: str, opts: dict) -> None:
    from scipy.stats import ks_2samp
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(minilm_path)
    s = split(name, opts, n=600)
    neg, pos = by_class(s.texts, s.labels, lambda t: len(tok(t)["input_ids"]))
    assert abs(np.mean(neg) - np.mean(pos)) < 0.5 and ks_2samp(neg, pos).pvalue > 0.01
    assert max(neg + pos) <= 128  # nothing cut at the default max_length, so no truncation cue either


@pytest.mark.parametrize("name, opts", CASES[:3])
def test_a_bag_of_words_classifier_is_at_chance(name: str, opts: dict) -> None:
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression

    task = get_task(name, n_train=1000, n_eval=400, seed=0, **opts)
    vec = CountVectorizer(token_pattern=r"\S+")
    train, ev = task.splits["train"], task.splits["eval"]
    clf = LogisticRegression(max_iter=2000).fit(vec.fit_transform(train.texts), train.labels)
    assert clf.score(vec.transform(ev.texts), ev.labels) < 0.6  # same words in both classes: ~50%


def negation_oracle(text: str, distance: int = 10) -> int:
    words = text.split()
    (at,) = [i for i, w in enumerate(words) if w in MODIFIERS]
    return int(words[at + distance + 1] in NOUNS)


def roles_oracle(text: str) -> int:
    words = text.split()
    (verb,) = [i for i, w in enumerate(words) if w in VERBS]
    (agent,) = [i for i, w in enumerate(words) if w in AGENTS]
    (patient,) = [i for i, w in enumerate(words) if w in PATIENTS]
    if words[verb - 1] == "was" and words[verb + 1] == "by":  # passive: the doer follows "by the"
        return int(agent == verb + 3)
    return int(agent < verb)


@pytest.mark.parametrize("name, opts", CASES)
def test_the_label_follows_from_the_structure(name: str, opts: dict) -> None:
    s = split(name, opts)
    oracle = negation_oracle if name == "negation" else roles_oracle
    assert [oracle(t) for t in s.texts] == s.labels.tolist()
    assert all(w not in {"not", "no", "never", "without"} for t in s.texts for w in t.split() if w in NOISE)
    if name == "negation":
        assert all(
            sum(w in NOUNS for w in t.split()) == 1 and sum(w in MODIFIERS for w in t.split()) == 1
            for t in s.texts
        )


@pytest.mark.parametrize("name, opts", CASES[:3])
def test_deterministic_per_seed_and_eval_independent_of_n_train(name: str, opts: dict) -> None:
    a, b = (get_task(name, n_train=50, n_eval=20, seed=3, **opts) for _ in range(2))
    assert (
        a.splits["train"].texts == b.splits["train"].texts
        and a.splits["eval"].texts == b.splits["eval"].texts
    )
    other = get_task(name, n_train=50, n_eval=20, seed=4, **opts)
    assert other.splits["train"].texts != a.splits["train"].texts
    more = get_task(name, n_train=80, n_eval=20, seed=3, **opts)
    assert more.splits["eval"].texts == a.splits["eval"].texts
    assert a.info["spec"] == {"name": name, "options": {"n_train": 50, "n_eval": 20, "seed": 3, **opts}}


def test_knobs_and_bad_values() -> None:
    assert {"negation", "roles"} <= set(TASK_NAMES)
    short = get_task("negation", distractor_ratio=0.0, scope_distance=2, n_train=4, n_eval=2)
    assert {len(t.split()) for t in short.splits["train"].texts} == {1 + 2 + 1 + 1}
    with pytest.raises(InputError, match="voice must be one of active, passive, mixed"):
        get_task("roles", voice="both")
    with pytest.raises(InputError, match="scope_distance must be an integer >= 0"):
        get_task("negation", scope_distance=-1)
    with pytest.raises(InputError, match=r"does not take option\(s\) 'relational_distance'"):
        get_task("negation", relational_distance=3)


def test_glot_compare_runs_a_diagnostic_and_all_poolers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from glot.pooling.poolers import POOLERS

    tiny = make_tiny_bert(tmp_path / "bert")
    argv = ["compare", "--model", str(tiny), "--task", "negation", "--poolers", "all", "--ratios", "0.1",
            "--task-option", "seq_len=20", "--task-option", "scope_distance=2", "--n-train", "24", "--n-eval", "8",
            "--epochs", "1", "--hidden-dim", "8", "--num-layers", "1", "--max-length", "40",
            "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "out"), "--json", str(tmp_path / "c.json"),
            "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    summary = json.loads((tmp_path / "c.json").read_text())
    assert summary["task"] == "negation"
    assert summary["poolers"] == ["cls", *(n for n in POOLERS if n not in ("cls", "eos"))]  # auto = cls here
    for row in summary["results"].values():
        acc = row["ratios"]["0.1"]["accuracy"]
        assert len(acc) == 1 and 0.0 <= acc[0] <= 1.0 and row["params"] > 0
    assert "Negation-scope diagnostic on bert" in " ".join(capsys.readouterr().out.split())
    run = json.loads((tmp_path / "out" / "ratio-0.1" / "pma" / "seed-0" / "run_config.json").read_text())
    assert run["task"]["info"]["spec"]["name"] == "negation"
