"""glot.backbones.tokenize: truncation (counted exactly), EOS, prompts, dynamic padding; and the one text check
every entry point uses (``glot.data.check_texts``, re-exported by tokenize)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from glot.backbones.tokenize import TokenPlan, Truncation, check_prompt, check_texts
from glot.data import TextsError
from glot.errors import InputError

sys.path.insert(0, str(Path(__file__).parent))
from tiny_models import make_tiny_bert, make_tiny_llama  # noqa: E402

CLS, SEP, PAD = 2, 3, 0  # tiny BERT: [CLS] text [SEP], pad id 0; one id per word


@pytest.fixture(scope="module")
def bert(tmp_path_factory: pytest.TempPathFactory) -> PreTrainedTokenizerBase:
    return AutoTokenizer.from_pretrained(make_tiny_bert(tmp_path_factory.mktemp("tok") / "bert"))


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> PreTrainedTokenizerBase:
    """<s> text, EOS </s> = 2, no pad token (like many decoders)."""
    return AutoTokenizer.from_pretrained(make_tiny_llama(tmp_path_factory.mktemp("tok") / "llama"))


def _ids(tok: PreTrainedTokenizerBase, words: str) -> list[int]:
    return [int(i) for i in tok.convert_tokens_to_ids(words.split())]


def test_truncation_is_counted_exactly_and_keeps_the_closing_special_token(bert) -> None:
    plan = TokenPlan(bert, max_length=5, append_eos=False, prompt=None)
    feats = plan.encode(["the a an and or", "cat", "the a"])
    assert [len(r) for r in feats["input_ids"]] == [5, 3, 4]
    assert feats["input_ids"][0] == [CLS, *_ids(bert, "the a an"), SEP]
    assert feats["attention_mask"] == [[1] * 5, [1] * 3, [1] * 4]
    assert plan.last_truncation == Truncation(truncated=1, total=3, max_length=5)
    plan.encode(["cat"])
    assert plan.last_truncation == Truncation(0, 1, 5)  # per call, not accumulated


def test_append_eos_fits_inside_max_length(llama) -> None:
    plan = TokenPlan(llama, max_length=4, append_eos=True, prompt=None)
    assert plan.budget == 3
    feats = plan.encode(["the a an and", "cat"])
    bos, eos = 1, 2
    assert feats["input_ids"] == [[bos, *_ids(llama, "the a"), eos], [bos, *_ids(llama, "cat"), eos]]
    assert plan.last_truncation == Truncation(1, 2, 4)


def test_a_prompt_is_kept_whole_and_only_the_text_is_shortened(bert) -> None:
    plan = TokenPlan(bert, max_length=6, append_eos=False, prompt="see {text}")
    feats = plan.encode(["the a an and or but", "cat"])
    long, short = feats["input_ids"]
    assert long[:2] == [CLS, *_ids(bert, "see")] and long[-1] == SEP and len(long) <= 6
    assert long[2:-1] == _ids(bert, "the a an and or but")[: len(long) - 3]  # a prefix of the text
    assert short == [CLS, *_ids(bert, "see cat"), SEP]
    assert plan.last_truncation == Truncation(1, 2, 6)


@pytest.mark.parametrize("side", ["right", "left"])
def test_padding_goes_on_the_requested_side_and_the_mask_follows_the_lengths(bert, side: str) -> None:
    plan = TokenPlan(bert, max_length=16, append_eos=False, prompt=None)
    feats = plan.encode(["the a an", "cat"])
    batch = plan.pad(feats, [1, 0], side)
    cat = [CLS, *_ids(bert, "cat"), SEP]
    row = cat + [PAD, PAD] if side == "right" else [PAD, PAD] + cat
    assert batch["input_ids"].tolist() == [row, feats["input_ids"][0]]
    mask = [1, 1, 1, 0, 0] if side == "right" else [0, 0, 1, 1, 1]
    assert batch["attention_mask"].tolist() == [mask, [1] * 5]


def test_a_tokenizer_without_pad_token_pads_with_id_0_and_the_mask_stays_right(llama) -> None:
    plan = TokenPlan(llama, max_length=16, append_eos=True, prompt=None)
    batch = plan.pad(plan.encode(["the a", "cat"]), [0, 1], "left")
    assert batch["input_ids"][1, 0].item() == 0
    assert batch["attention_mask"].sum(dim=1).tolist() == [4, 3]  # <s> words </s>


def test_no_texts_give_empty_features(bert) -> None:
    plan = TokenPlan(bert, max_length=8, append_eos=False, prompt=None)
    assert plan.encode([])["input_ids"] == [] and plan.last_truncation == Truncation(0, 0, 8)


@pytest.mark.parametrize("prompt", ["no placeholder", "{text} and {text}", 3])
def test_a_prompt_needs_exactly_one_placeholder(prompt) -> None:
    with pytest.raises(InputError, match=r"prompt must be a string containing '\{text\}' exactly once"):
        check_prompt(prompt)
    assert check_prompt(None) is None and check_prompt("query: {text}") == "query: {text}"


# ---------------------------------------------------------------------------------------------- the text check
def test_check_texts_accepts_any_iterable_of_str_unless_order_is_required() -> None:
    assert check_texts(("a", "b")) == ["a", "b"] and check_texts([]) == []
    assert check_texts(t for t in ["a", "b"]) == ["a", "b"]
    with pytest.raises(
        TextsError, match=r"texts must be a list of str \(an ordered sequence\), got generator"
    ):
        check_texts((t for t in ["a"]), ordered=True)
    with pytest.raises(TextsError, match=r"got set"):
        check_texts({"a"}, ordered=True)


@pytest.mark.parametrize(
    ("texts", "kwargs", "message"),
    [
        ("one text", {}, r"texts must be a list of str, got a single string; wrap it in a list: \[text\]"),
        (5, {}, r"texts must be a list of str, got int"),
        (["a", 5], {}, r"texts\[1\] must be a str, got int \(5\)"),
        (["a", None], {"name": "Split.texts"}, r"Split.texts\[1\] must be a str, got NoneType \(None\)"),
        ([], {"allow_empty": False}, r"texts is empty; pass at least one text"),
    ],
)
def test_check_texts_refuses_with_one_line_naming_what_and_where(texts, kwargs, message: str) -> None:
    with pytest.raises(TextsError, match=message) as err:
        check_texts(texts, **kwargs)
    assert isinstance(err.value, TypeError) and isinstance(err.value, ValueError)  # callers catch either
    assert "\n" not in str(err.value)


def test_a_split_uses_the_same_check_with_its_field_name() -> None:
    from glot.data import Split

    with pytest.raises(TextsError, match=r"Split.texts_pair\[0\] must be a str, got int"):
        Split(texts=["a"], labels=None, texts_pair=[1])  # type: ignore[list-item]
    with pytest.raises(TextsError, match=r"Split.texts must be a list of str \(an ordered sequence\)"):
        Split(texts={"a"}, labels=None)  # type: ignore[arg-type]
