"""Long texts under ``long="chunk"``: window / overlap math, every token embedded and cached, the cache key and
the saved reference carry the chunk settings, the Encoder pools all windows, and the CLI end to end."""

from __future__ import annotations

import csv
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from glot.backbones.chunking import kept, windows
from glot.backbones.frozen import PROMPT_EOL, FrozenBackbone
from glot.backbones.reference import backbone_reference, load_backbone
from glot.backbones.tokenize import TruncationWarning
from glot.cache import build_or_load, cache_key
from glot.cli import main
from glot.errors import InputError

sys.path.insert(0, str(Path(__file__).parent))
from tiny_models import WORDS, make_tiny_bert, make_tiny_llama  # noqa: E402

#: 60 words -> 60 content tokens with the word-level tiny tokenizers (no [UNK] merges, no sub-words)
LONG = " ".join(WORDS[(7 * i) % 60] for i in range(60))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("tiny")
    return {"bert": str(make_tiny_bert(root / "bert")), "llama": str(make_tiny_llama(root / "llama"))}


def _bb(path: str, **kw: object) -> FrozenBackbone:
    return FrozenBackbone.from_pretrained(path, dtype="float32", device="cpu", **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 30, 31, 100])
@pytest.mark.parametrize(("size", "overlap"), [(8, 0), (8, 3), (8, 4), (8, 7), (5, 2)])
def test_windows_cover_the_text_and_the_kept_parts_tile_it(n: int, size: int, overlap: int) -> None:
    spans = windows(n, size, overlap)
    assert spans[0][0] == 0 and spans[-1][1] == n and all(hi - lo <= size for lo, hi in spans)
    assert len(spans) == (1 if n <= size else 1 + -(-(n - size) // (size - overlap)))
    for (_, hi0), (lo1, hi1) in zip(spans, spans[1:], strict=False):
        assert hi0 - lo1 == overlap and hi1 > hi0  # consecutive windows share exactly `overlap` tokens
    parts = kept(spans, overlap)
    assert [i for lo, hi in parts for i in range(lo, hi)] == list(range(n))  # every token once, in order


def test_windows_example() -> None:
    assert windows(10, 4, 2) == [(0, 4), (2, 6), (4, 8), (6, 10)]
    assert kept(windows(10, 4, 2), 2) == [(0, 3), (3, 5), (5, 7), (7, 10)]  # overlap split in the middle
    assert windows(10, 4, 0) == [(0, 4), (4, 8), (8, 10)]


@pytest.mark.parametrize("kind", ["bert", "llama"])
def test_every_token_of_a_long_text_comes_back_once(tiny: dict[str, str], kind: str) -> None:
    chunked = _bb(tiny[kind], max_length=16, long="chunk", chunk_overlap=4)
    whole = _bb(tiny[kind], max_length=128)
    x, ptr = chunked.embed_packed([LONG, "the cat sat"])
    xw, pw = whole.embed_packed([LONG, "the cat sat"])
    assert ptr.tolist() == pw.tolist() == [0, 62, 67]  # 60 words + the tokenizer's 2 special tokens
    assert chunked.last_chunked == 1 and chunked.last_truncation.truncated == 0
    torch.testing.assert_close(x[62:], xw[62:])  # a text that fits: exactly as without chunking
    if kind == "llama":  # causal: the first window's kept tokens see the same left context as the whole text
        keep = 1 + (16 - 2) - 2  # <s> + the window's 14 text tokens - half of the overlap
        torch.testing.assert_close(x[:keep], xw[:keep])


def test_iter_packed_batches_give_the_one_shot_states(tiny: dict[str, str]) -> None:
    bb = _bb(tiny["bert"], max_length=16, long="chunk", chunk_overlap=6)
    texts = [LONG, "ok", LONG + " dog", "the quick brown fox", LONG[:100]]
    x, ptr = bb.embed_packed(texts)
    seen: dict[int, torch.Tensor] = {}
    for idx, xb, pb in bb.iter_packed(texts, batch_size=3, progress=False):
        for j, i in enumerate(idx.tolist()):
            seen[i] = xb[pb[j] : pb[j + 1]]
    assert sorted(seen) == list(range(len(texts)))
    for i in range(len(texts)):
        torch.testing.assert_close(seen[i], x[ptr[i] : ptr[i + 1]], atol=1e-5, rtol=1e-4)


def test_cache_keeps_every_token_and_its_key_names_the_chunking(tiny: dict[str, str], tmp_path: Path) -> None:
    texts = [LONG, "the cat sat"]
    cut = _bb(tiny["bert"], max_length=16)
    with pytest.warns(TruncationWarning, match=r"1 of 2 texts were cut .*long='chunk'"):
        truncated = build_or_load(cut, texts, cache_dir=tmp_path, progress=False)
    assert truncated.lengths.tolist() == [16, 5] and truncated.num_truncated == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error", TruncationWarning)  # nothing is cut: no warning
        full = build_or_load(_bb(tiny["bert"], max_length=16, long="chunk"), texts, cache_dir=tmp_path,
                             progress=False)  # fmt: skip
    assert full.lengths.tolist() == [62, 5] and full.num_truncated == 0
    keys = {
        cache_key(_bb(tiny["bert"], max_length=16, **kw).fingerprint(), texts).digest  # type: ignore[arg-type]
        for kw in ({}, {"long": "chunk"}, {"long": "chunk", "chunk_overlap": 8})
    }
    assert len(keys) == 3
    assert "long" not in cut.fingerprint()  # truncating backbones keep the keys they had before chunking


def test_encoder_pools_every_window(tiny: dict[str, str]) -> None:
    from glot import Encoder, build_pooler

    chunked = _bb(tiny["bert"], max_length=16, long="chunk", chunk_overlap=4)
    emb = Encoder(chunked, build_pooler("mean", 32)).encode([LONG, "ok"], progress=False)
    x, ptr = chunked.embed_packed([LONG, "ok"])
    np.testing.assert_allclose(emb[0], x[: ptr[1]].mean(0).numpy(), atol=1e-5)
    with pytest.warns(TruncationWarning):
        cut = Encoder(_bb(tiny["bert"], max_length=16), build_pooler("mean", 32)).encode(
            [LONG], progress=False
        )
    assert not np.allclose(cut[0], emb[0], atol=1e-3)  # the tail of the text changed the embedding


def test_reference_round_trip_keeps_the_chunking(tiny: dict[str, str]) -> None:
    bb = _bb(tiny["bert"], max_length=16, long="chunk", chunk_overlap=5)
    ref = backbone_reference(bb)
    assert (ref["long"], ref["chunk_overlap"]) == ("chunk", 5)
    again = load_backbone(ref, device="cpu")
    assert (again.long, again.chunk_overlap, again.max_length) == ("chunk", 5, 16)
    assert "long" not in backbone_reference(_bb(tiny["bert"], max_length=16))


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"long": "chunk", "chunk_overlap": 14}, r"chunk_overlap=14 must be smaller than the 14 text tokens"),
        ({"long": "chunk", "prompt": PROMPT_EOL}, r"cannot be combined with a prompt"),
        ({"long": "window"}, r"long must be one of truncate, chunk, got 'window'"),
        ({"long": "chunk", "chunk_overlap": -1}, r"chunk_overlap must be >= 0"),
    ],
)
def test_bad_chunk_settings_are_one_line_errors(tiny: dict[str, str], kw: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        _bb(tiny["bert"], max_length=16, **kw)


def _long_csv(path: Path) -> Path:
    rows = [(" ".join([LONG, WORDS[i]] * 2), i % 2) for i in range(6)] + [("the cat sat", 0), ("a dog", 1)]
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    return path


def test_cli_cache_and_encode_embed_long_texts_whole(
    tiny: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _long_csv(tmp_path / "long.csv")
    common = ["--task", str(data), "--model", tiny["bert"], "--max-length", "16", "--cache-dir",
              str(tmp_path / "c"), "--task-option", "eval_fraction=0.25", "--no-progress"]  # fmt: skip
    assert main(["cache", *common, "--json", str(tmp_path / "cut.json")]) == 0
    err = capsys.readouterr().err
    assert "6 of 8 texts were cut to 16 tokens" in err and "--long chunk" in err
    assert main(["cache", *common, "--long", "chunk", "--json", str(tmp_path / "whole.json")]) == 0
    cut, whole = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("cut", "whole"))
    assert "were cut" not in capsys.readouterr().err
    assert (cut["truncated"], whole["truncated"], whole["windowed"]) == (6, 0, 6)
    assert whole["tokens"] == 6 * (2 * 61 + 2) + 5 + 4 and cut["tokens"] == 6 * 16 + 5 + 4
    assert whole["key"] != cut["key"] and whole["long"] == "chunk (overlap 3)"  # 32, at most a quarter of 14
    texts = tmp_path / "texts.txt"
    texts.write_text(f"{LONG}\nok\n")
    out = tmp_path / "emb.npy"
    args = ["encode", str(texts), "-o", str(out), "--model", tiny["bert"], "--pooler", "mean", "--max-length",
            "16", "--long", "chunk", "--chunk-overlap", "4", "--no-progress"]  # fmt: skip
    assert main(args) == 0
    from glot import Encoder, build_pooler

    backbone = FrozenBackbone.from_pretrained(tiny["bert"], max_length=16, long="chunk", chunk_overlap=4)
    expect = Encoder(backbone, build_pooler("mean", 32))  # the CLI's dtype: auto
    np.testing.assert_allclose(np.load(out), expect.encode([LONG, "ok"], progress=False), atol=1e-5)
    assert main(["encode", str(texts), "-o", str(out), "--model", tiny["bert"], "--pooler", "mean",
                 "--chunk-overlap", "4"]) == 2  # fmt: skip
    assert "--chunk-overlap 4 only applies with --long chunk" in capsys.readouterr().err


def test_cli_train_records_the_chunking_and_encode_reuses_it(tiny: dict[str, str], tmp_path: Path) -> None:
    data = _long_csv(tmp_path / "long.csv")
    out = tmp_path / "run"
    assert main(["train", "--task", str(data), "--model", tiny["bert"], "--max-length", "16", "--long", "chunk",
                 "--chunk-overlap", "2", "--pooler", "mean", "--epochs", "1", "--task-option", "eval_fraction=0.25",
                 "--cache-dir", str(tmp_path / "c"), "--out", str(out), "--no-progress", "--quiet"]) == 0  # fmt: skip
    config = json.loads((out / "seed-0" / "run_config.json").read_text())
    assert (config["backbone"]["long"], config["backbone"]["chunk_overlap"]) == ("chunk", 2)
    from glot import Encoder

    enc = Encoder.from_pretrained(out / "seed-0", device="cpu")
    assert (enc.backbone.long, enc.backbone.chunk_overlap) == ("chunk", 2)  # type: ignore[attr-defined]


def test_explain_labels_every_stitched_token(tiny: dict[str, str]) -> None:
    from glot import build_pooler
    from glot.viz import compute_explanation

    chunked = _bb(tiny["bert"], max_length=16, long="chunk", chunk_overlap=4)
    expl = compute_explanation(chunked, build_pooler("mean", 32), LONG)
    assert expl.tokens == ["[CLS]", *LONG.split(), "[SEP]"] and expl.sim.shape == (62, 62)
    with pytest.warns(TruncationWarning):  # truncating: the first 14 words between [CLS] and [SEP]
        assert _bb(tiny["bert"], max_length=16).token_ids([LONG])[0] == chunked.token_ids([LONG])[0][:15] + [
            3
        ]
