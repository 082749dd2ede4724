"""Every GLUE task and IMDB through the CLI the way a user runs it: `glot train --task NAME ... --json`.

``datasets.load_dataset`` is patched with small in-memory datasets that have the Hub's exact schema (column
names, ClassLabel names, split names incl. MNLI's validation_matched/_mismatched and IMDB's unsupervised
split, unlabeled -1 test rows). Each run's reported eval metric is checked against the metric recomputed with
scikit-learn / scipy from the saved run's own predictions and the fixture's gold labels, its split sizes against
--n-train/--n-eval, and SST-2 on MiniLM (sentiment words) must be learned well above chance.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

datasets = pytest.importorskip("datasets")

from glot.cli import main  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from tiny_models import WORDS, make_tiny_bert  # noqa: E402

#: nyu-mll/glue on the Hub: text columns and label names per config (None: float scores, STS-B)
HUB_GLUE: dict[str, tuple[tuple[str, ...], list[str] | None]] = {
    "cola": (("sentence",), ["unacceptable", "acceptable"]),
    "sst2": (("sentence",), ["negative", "positive"]),
    "mrpc": (("sentence1", "sentence2"), ["not_equivalent", "equivalent"]),
    "qqp": (("question1", "question2"), ["not_duplicate", "duplicate"]),
    "stsb": (("sentence1", "sentence2"), None),
    "mnli": (("premise", "hypothesis"), ["entailment", "neutral", "contradiction"]),
    "qnli": (("question", "sentence"), ["entailment", "not_entailment"]),
    "rte": (("sentence1", "sentence2"), ["entailment", "not_entailment"]),
    "wnli": (("sentence1", "sentence2"), ["not_entailment", "entailment"]),
}
GLUE_METRIC = {"cola": "mcc", "stsb": "spearman", "mrpc": "f1", "qqp": "f1"}  # the rest: accuracy
POSITIVE = ("great", "wonderful", "excellent", "lovely", "brilliant", "superb", "delightful")
NEGATIVE = ("terrible", "awful", "boring", "dreadful", "horrible", "poor", "dull")
N_TRAIN, N_EVAL = 40, 20
_SENTIMENT = {"good", "bad", "great", "love", "hate", "not", "no", "never", "without", "very", "really", "ok"}
FILLER = [w for w in WORDS if w.isalpha() and w not in _SENTIMENT]


def _sentence(rng: np.random.Generator, label: int | None = None) -> str:
    words = [str(w) for w in rng.choice(FILLER, size=int(rng.integers(4, 10)))]
    if label is not None:  # sentiment fixture: one telling adjective among the words
        words.insert(int(rng.integers(len(words) + 1)), str(rng.choice(POSITIVE if label else NEGATIVE)))
    return " ".join(words)


def _glue_split(config: str, n: int, rng: np.random.Generator, labeled: bool) -> Any:
    columns, names = HUB_GLUE[config]
    if names is None:
        labels: list[Any] = [round(float(x), 3) for x in rng.uniform(0, 5, n)] if labeled else [-1.0] * n
        label_feature = datasets.Value("float32")
    else:
        labels = [int(x) for x in rng.integers(len(names), size=n)] if labeled else [-1] * n
        label_feature = datasets.ClassLabel(names=names)
    learnable = config == "sst2"
    cols: dict[str, list[Any]] = {
        c: [_sentence(rng, labels[i] if learnable and labeled else None) for i in range(n)] for c in columns
    }
    features = datasets.Features(
        {
            **{c: datasets.Value("string") for c in columns},
            "label": label_feature,
            "idx": datasets.Value("int32"),
        }
    )
    return datasets.Dataset.from_dict({**cols, "label": labels, "idx": list(range(n))}, features=features)


def hub_glue(config: str) -> Any:
    """An in-memory stand-in for ``load_dataset("nyu-mll/glue", config)`` (same schema, seeded content)."""
    rng = np.random.default_rng(sorted(HUB_GLUE).index(config))
    n_train, n_eval = (300, 80) if config == "sst2" else (48, 30)
    evals = ["validation_matched", "validation_mismatched"] if config == "mnli" else ["validation"]
    tests = ["test_matched", "test_mismatched"] if config == "mnli" else ["test"]
    parts = {"train": _glue_split(config, n_train, rng, True)}
    parts |= {s: _glue_split(config, n_eval, rng, True) for s in evals}
    parts |= {s: _glue_split(config, 10, rng, False) for s in tests}
    return datasets.DatasetDict(parts)


def hub_imdb() -> Any:
    """``load_dataset("stanfordnlp/imdb")``: text / label (neg, pos), sorted by label; unsupervised is -1."""
    rng = np.random.default_rng(7)
    features = datasets.Features(
        {"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["neg", "pos"])}
    )

    def part(n: int, labeled: bool = True) -> Any:
        labels = [0] * (n // 2) + [1] * (n - n // 2) if labeled else [-1] * n
        texts = [_sentence(rng, y if labeled else None) + " . " + _sentence(rng) for y in labels]
        return datasets.Dataset.from_dict({"text": texts, "label": labels}, features=features)

    return datasets.DatasetDict({"train": part(60), "test": part(40), "unsupervised": part(8, labeled=False)})


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """Patch ``datasets.load_dataset`` with the fixtures; returns the calls made (positional args)."""
    calls: list[tuple[Any, ...]] = []

    def load_dataset(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        if args == ("stanfordnlp/imdb",):
            return hub_imdb()
        assert len(args) == 2 and args[0] == "nyu-mll/glue" and args[1] in HUB_GLUE, args
        return hub_glue(args[1])

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return calls


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_bert(tmp_path_factory.mktemp("models") / "bert")


def _gold(name: str) -> dict[tuple[str, ...], Any]:
    """Eval-split label of each eval example, keyed by its texts, straight from the fixture (not via glot)."""
    if name == "imdb":
        part = hub_imdb()["test"]
        return {(t,): y for t, y in zip(part["text"], part["label"], strict=True)}
    columns, _ = HUB_GLUE[name]
    part = hub_glue(name)["validation_matched" if name == "mnli" else "validation"]
    return {tuple(row[c] for c in columns): row["label"] for row in part}


def _recompute(out: Path, name: str) -> tuple[str, float, int]:
    """(metric name, metric recomputed with sklearn/scipy from the saved run's predictions, eval size)."""
    from scipy.stats import spearmanr
    from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

    from glot.cache.task import cache_task
    from glot.data import task_from_spec
    from glot.export.hub import load_backbone
    from glot.training.loop import load_run, predict

    pooler, head, config = load_run(out / "seed-0")
    task = task_from_spec(config["task"]["info"]["spec"])
    cached = cache_task(
        task, load_backbone(config["backbone"]), cache_dir=out.parent / "cache", progress=False
    )
    rows = np.arange(len(task.splits["eval"]))
    preds = predict(
        pooler, head, cached, "eval", rows, task.metric, config["train"]["eval_batch_size"]
    ).numpy()
    split = task.splits["eval"]
    keys = (
        zip(split.texts, split.texts_pair, strict=True) if split.texts_pair else ((t,) for t in split.texts)
    )
    gold_by_text = _gold(name)
    gold = np.asarray([gold_by_text[tuple(k)] for k in keys])
    metric = GLUE_METRIC.get(name, "accuracy")
    score = {
        "mcc": lambda: matthews_corrcoef(gold, preds),
        "f1": lambda: f1_score(gold, preds),
        "spearman": lambda: spearmanr(preds, gold).statistic,
        "accuracy": lambda: accuracy_score(gold, preds),
    }[metric]()
    return metric, float(score), len(gold)


def _train(name: str, model: str, out: Path, n_train: int = N_TRAIN, n_eval: int = N_EVAL) -> dict[str, Any]:
    argv = [
        "train", "--task", name, "--model", model, "--n-train", str(n_train), "--n-eval", str(n_eval),
        "--out", str(out), "--cache-dir", str(out.parent / "cache"), "--no-progress", "--json", str(out / "r.json"),
    ]  # fmt: skip
    assert main(argv) == 0
    return json.loads((out / "r.json").read_text())


@pytest.mark.parametrize("name", [n for n in HUB_GLUE if n != "sst2"])
def test_glue_task_through_the_cli(name: str, tiny: Path, tmp_path: Path, hub: list[tuple[Any, ...]]) -> None:
    result = _train(name, str(tiny), tmp_path / "run")
    run = result["per_seed"][0]
    assert hub[0] == ("nyu-mll/glue", name)
    metric, recomputed, n_eval = _recompute(tmp_path / "run", name)
    assert run["metric"] == metric
    assert run["sizes"]["train"] + run["sizes"]["val"] == N_TRAIN and run["sizes"]["eval"] == n_eval == N_EVAL
    assert run["eval"] == pytest.approx(recomputed, abs=1e-6)
    config = json.loads((tmp_path / "run" / "seed-0" / "run_config.json").read_text())
    assert config["task"]["max_length"] == 128 == config["backbone"]["max_length"]  # the paper's truncation
    if name == "stsb":
        assert config["task"]["info"]["score_scale"] == 5.0
        assert (
            json.loads((tmp_path / "run" / "seed-0" / "head_config.json").read_text())["score_scale"] == 5.0
        )


def test_sst2_on_minilm_learns_the_sentiment_words(tmp_path: Path, hub: list[tuple[Any, ...]]) -> None:
    result = _train("sst2", "minilm", tmp_path / "run", n_train=200, n_eval=60)
    run = result["per_seed"][0]
    metric, recomputed, n_eval = _recompute(tmp_path / "run", "sst2")
    assert (run["metric"], n_eval, run["sizes"]["train"] + run["sizes"]["val"]) == ("accuracy", 60, 200)
    assert run["eval"] == pytest.approx(recomputed, abs=1e-6)
    print(f"sst2 fixture, minilm + glot at defaults: eval accuracy {run['eval']:.3f} (chance 0.5)")
    assert run["eval"] >= 0.8


def test_imdb_through_the_cli(tmp_path: Path, hub: list[tuple[Any, ...]]) -> None:
    result = _train("imdb", "minilm", tmp_path / "run")
    run = result["per_seed"][0]
    assert hub == [("stanfordnlp/imdb",)]
    metric, recomputed, n_eval = _recompute(tmp_path / "run", "imdb")
    assert (run["metric"], n_eval, run["sizes"]["train"] + run["sizes"]["val"]) == (
        "accuracy",
        N_EVAL,
        N_TRAIN,
    )
    assert run["eval"] == pytest.approx(recomputed, abs=1e-6)
    config = json.loads((tmp_path / "run" / "seed-0" / "run_config.json").read_text())
    assert config["task"]["max_length"] == 512 == config["backbone"]["max_length"]


def test_unknown_task_option_is_one_line(
    hub: list[tuple[Any, ...]], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["train", "--task", "sst2", "--task-option", "train_limit=5", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "does not take option(s) 'train_limit'; valid options: n_train, n_eval, seed, max_length" in err


@pytest.mark.parametrize("name", ["sst2", "imdb"])
def test_hub_task_on_an_offline_machine_is_one_line(
    name: str, tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the real datasets.load_dataset with HF_DATASETS_OFFLINE=1 (set by the suite): no Hub, no traceback
    argv = ["train", "--model", str(tiny), "--task", name, "--out", str(tmp_path / "r"), "--no-progress"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        len(err) == 1 and "loads its data from the Hugging Face Hub" in err[0] and "--task FILE.csv" in err[0]
    )
    assert not (tmp_path / "r").exists()


# ---------------------------------------------------------------- user files through the CLI


def _class_csv(path: Path, n: int, rng: np.random.Generator, split: str | None = None) -> Path:
    rows = [(_sentence(rng, int(y)), ["neg", "pos"][int(y)]) for y in rng.integers(2, size=n)]
    header = "text,label" + (",split" if split else "")
    lines = [
        f"{t},{y}" + (f",{split if i % 4 else 'test'}" if split else "") for i, (t, y) in enumerate(rows)
    ]
    path.write_text(header + "\n" + "\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("layout", ["eval file", "split column with test rows"])
def test_csv_task_through_the_cli(layout: str, tiny: Path, tmp_path: Path) -> None:
    from glot.backbones.frozen import FrozenBackbone

    rng = np.random.default_rng(3)
    if layout == "eval file":
        task = ["--task", str(_class_csv(tmp_path / "tr.csv", 60, rng))]
        task += ["--task-option", f"eval={_class_csv(tmp_path / 'dev.csv', 24, rng)}"]
    else:
        task = [
            "--task",
            str(_class_csv(tmp_path / "all.csv", 96, rng, split="train")),
        ]  # every 4th row: test
    argv = ["train", *task, "--model", str(tiny), "--n-train", "30", "--n-eval", "12", "--out", str(tmp_path / "run"),
            "--cache-dir", str(tmp_path / "cache"), "--no-progress", "--json", str(tmp_path / "r.json")]  # fmt: skip
    assert main(argv) == 0
    run = json.loads((tmp_path / "r.json").read_text())["per_seed"][0]
    assert run["sizes"]["train"] + run["sizes"]["val"] == 30 and run["sizes"]["eval"] == 12
    config = json.loads((tmp_path / "run" / "seed-0" / "run_config.json").read_text())
    assert config["task"]["label_names"] == ["neg", "pos"] and config["task"]["max_length"] is None
    # no forced 128: the backbone's own default truncation applies
    assert config["backbone"]["max_length"] == FrozenBackbone.from_pretrained(str(tiny)).max_length
