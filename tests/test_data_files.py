"""User tasks from CSV / JSONL files: layouts (split column incl. test, eval file), label and score validation,
score scale, subsets and truncation defaults."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from glot.data import get_task, task_from_spec
from glot.errors import InputError


def _write_lines(path: Path, lines: list[object]) -> Path:
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n\n", encoding="utf-8")
    return path


def _csv(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text(header + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_csv_string_labels_and_split_column(tmp_path: Path) -> None:
    path = tmp_path / "reviews.csv"
    rows = ["text,label,split"] + [
        f"text {i},{['pos', 'neg', 'mixed'][i % 3]},{'train' if i < 9 else 'dev'}" for i in range(12)
    ]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    task = get_task(str(path))
    assert (task.name, task.kind, task.num_labels, task.label_names) == (
        "reviews",
        "single",
        3,
        ["mixed", "neg", "pos"],
    )
    assert len(task.splits["train"]) == 9 and task.splits["eval"].texts == ["text 9", "text 10", "text 11"]
    assert task.splits["train"].labels[:3].tolist() == [2, 1, 0]


def test_jsonl_pair_int_labels_separate_files(tmp_path: Path) -> None:
    train = _write_lines(
        tmp_path / "train.jsonl", [{"text": f"a{i}", "text_pair": f"b{i}", "label": i % 2} for i in range(6)]
    )
    eval_ = _write_lines(tmp_path / "dev.jsonl", [{"text": "c", "text_pair": "d", "label": 1}])
    task = get_task("jsonl", train=train, eval=eval_, name="mine")
    assert (task.name, task.kind, task.num_labels, task.label_names) == ("mine", "pair", 2, None)
    assert task.splits["eval"].texts_pair == ["d"] and task.splits["train"].labels.tolist() == [
        0,
        1,
        0,
        1,
        0,
        1,
    ]


def test_csv_scores_make_sts_and_carved_eval(tmp_path: Path) -> None:
    path = tmp_path / "sts.csv"
    path.write_text("s1,s2,sim\n" + "".join(f"x{i},y{i},{i / 4}\n" for i in range(20)), encoding="utf-8")
    options = {"path": path, "text_column": "s1", "text_pair_column": "s2", "score_column": "sim"}
    task = get_task("csv", **options, eval_fraction=0.25, seed=3)
    assert (task.kind, task.metric, task.num_labels) == ("sts", "spearman", 1)
    assert len(task.splits["train"]) == 15 and len(task.splits["eval"]) == 5
    assert task.splits["train"].labels.dtype == np.float32
    again = get_task("csv", **options, eval_fraction=0.25, seed=3)
    assert again.splits["eval"].texts == task.splits["eval"].texts


def test_file_task_errors(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("text,label\na,x\nb,x\nc,x\n", encoding="utf-8")
    with pytest.raises(ValueError, match="needs >= 2 classes"):
        get_task(str(path))
    path.write_text("sentence,label\na,0\nb,1\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"d\.csv:\d: no value in column 'text'"):
        get_task(str(path), eval_fraction=0.5)
    path.write_text("text,label,split\na,0,train\nb,1,holdout\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"d\.csv:3: split='holdout'"):
        get_task(str(path))
    path.write_text("text,label\na,0\nb,1,extra\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"d\.csv:3: 3 fields but the header has 2"):
        get_task(str(path))
    bad = tmp_path / "d.jsonl"
    bad.write_text('{"text": "a", "label": 0}\n[1]\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"d\.jsonl:2: expected a JSON object"):
        get_task(str(bad))
    with pytest.raises(ValueError, match=r"needs path= \(or train=\)"):
        get_task("csv")


def test_split_column_test_rows_are_the_eval_split(tmp_path: Path) -> None:
    rows = [f"text {i},{i % 2},{'train' if i < 8 else 'test'}" for i in range(12)]
    task = get_task(str(_csv(tmp_path / "tt.csv", "text,label,split", rows)))
    assert len(task.splits["train"]) == 8 and task.splits["eval"].texts == [f"text {i}" for i in range(8, 12)]
    assert "test" not in task.splits and task.info["eval_from"] == "split=test rows"
    # with eval rows present, test rows stay a separate split and eval is the eval rows
    rows = [f"t{i},{i % 2},{['train', 'train', 'dev', 'test'][i % 4]}" for i in range(16)]
    both = get_task(str(_csv(tmp_path / "both.csv", "text,label,split", rows)))
    assert (len(both.splits["train"]), len(both.splits["eval"]), len(both.splits["test"])) == (8, 4, 4)
    with pytest.raises(InputError, match="marks no train rows"):
        get_task(str(_csv(tmp_path / "t.csv", "text,label,split", ["a,0,test", "b,1,eval"])))


def test_path_plus_eval_file(tmp_path: Path) -> None:
    train = _csv(tmp_path / "tr.csv", "text,label", [f"a{i},{i % 2}" for i in range(6)])
    dev = _csv(tmp_path / "dev.csv", "text,label", ["d0,0", "d1,1", "d2,1"])
    for task in (get_task(str(train), eval=str(dev)), get_task("csv", path=train, eval=dev)):
        assert len(task.splits["train"]) == 6 and task.splits["eval"].texts == ["d0", "d1", "d2"]
        assert task.info["eval_from"] == f"file {dev}"
    marked = _csv(tmp_path / "m.csv", "text,label,split", ["a,0,train", "b,1,test"])
    with pytest.raises(InputError, match="give the eval rows one way only"):
        get_task(str(marked), eval=str(dev))
    with pytest.raises(InputError, match="already a file path"):
        get_task(str(train), path=str(train))


def test_n_train_n_eval_subsets_and_spec_rebuilds_them(tmp_path: Path) -> None:
    rows = [f"text {i},{['a', 'b', 'c'][i % 3]}" for i in range(90)]
    path = _csv(tmp_path / "big.csv", "text,label", rows)
    task = get_task(str(path), n_train=30, n_eval=6, seed=2)
    assert len(task.splits["train"]) == 30 and len(task.splits["eval"]) == 6
    counts = np.bincount(task.splits["train"].labels, minlength=3)
    assert np.abs(counts - 10).max() <= 1  # stratified: the carved pool's near-even class shares kept
    assert task.max_length is None  # files: the backbone's own limit, not 128
    again = task_from_spec(json.loads(json.dumps(task.info["spec"])))
    assert again.splits["train"].texts == task.splits["train"].texts
    assert again.splits["eval"].texts == task.splits["eval"].texts
    assert get_task(str(path), n_train=30, seed=3).splits["train"].texts != task.splits["train"].texts
    with pytest.raises(InputError, match="n_train must be an integer >= 1"):
        get_task(str(path), n_train=0)


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        ("-1", r"bad\.csv:4: label '-1' in column 'label': unlabeled rows \(-1\) cannot be used; drop them"),
        ("", r"bad\.csv:4: blank label in column 'label'"),
        (" ", r"bad\.csv:4: blank label in column 'label'"),
    ],
)
def test_csv_negative_or_blank_labels_are_refused(tmp_path: Path, cell: str, message: str) -> None:
    rows = ["a,0", "b,1", f"c,{cell}", "d,1", "e,0"]
    with pytest.raises(InputError, match=message):
        get_task(str(_csv(tmp_path / "bad.csv", "text,label", rows)), eval_fraction=0.4)


def test_jsonl_negative_labels_are_refused(tmp_path: Path) -> None:
    path = _write_lines(tmp_path / "neg.jsonl", [{"text": "a", "label": 0}, {"text": "b", "label": -1}])
    with pytest.raises(InputError, match=r"neg\.jsonl:2: label -1 .*unlabeled rows \(-1\)"):
        get_task(str(path), eval_fraction=0.5)


@pytest.mark.parametrize("cell", ["nan", "inf", "-inf", "NaN", "", "high"])
def test_non_finite_or_missing_scores_name_file_and_line(tmp_path: Path, cell: str) -> None:
    rows = ["a,b,0.5", "c,d,1.0", f"e,f,{cell}", "g,h,0.0"]
    path = _csv(tmp_path / "s.csv", "text,text_pair,score", rows)
    with pytest.raises(InputError, match=r"s\.csv:4: .*score.*column 'score'"):
        get_task(str(path), eval_fraction=0.25)


def test_jsonl_nan_score_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"  # json.dumps writes NaN, which json.loads reads back as float("nan")
    path.write_text(
        '{"text": "a", "text_pair": "b", "score": 1}\n{"text": "c", "text_pair": "d", "score": NaN}\n'
    )
    with pytest.raises(InputError, match=r"s\.jsonl:2: score nan in column 'score' is not finite"):
        get_task(str(path), eval_fraction=0.5)


def test_score_scale_inferred_from_training_scores_or_given(tmp_path: Path) -> None:
    rows = [f"x{i},y{i},{i / 10},{'train' if i < 8 else 'eval'}" for i in range(11)]
    path = _csv(tmp_path / "s01.csv", "text,text_pair,score,split", rows)
    task = get_task(str(path))
    assert task.kind == "sts" and task.info["score_scale"] == pytest.approx(
        0.7
    )  # max |train score|, not eval
    assert get_task(str(path), score_scale=1).info["score_scale"] == 1.0
    with pytest.raises(InputError, match="score_scale must be a finite number > 0"):
        get_task(str(path), score_scale=0)
    zeros = _csv(tmp_path / "z.csv", "text,text_pair,score", ["a,b,0", "c,d,0", "e,f,0"])
    with pytest.raises(InputError, match="cannot infer score_scale"):
        get_task(str(zeros), eval=str(zeros).replace("z.csv", "s01.csv"))
