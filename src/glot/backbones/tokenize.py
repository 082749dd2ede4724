"""Texts -> token ids for a frozen backbone: prompt template, truncation, EOS, and dynamic padding.

Tokenizing without padding first and padding per batch later lets :meth:`glot.backbones.frozen.FrozenBackbone.iter_packed`
sort texts by length, so each batch pads only to its own longest text. The attention mask is built from the
sequence lengths, never from token ids, so a pad token that equals EOS (common for decoders) is harmless.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from transformers import BatchEncoding, PreTrainedTokenizerBase

from glot.data import check_texts as check_texts  # re-exported: the one text check (glot.data.texts)
from glot.errors import InputError

_KEYS = ("input_ids", "attention_mask", "token_type_ids")
Features = dict[str, list[list[int]]]


def check_prompt(prompt: str | None) -> str | None:
    """A prompt template must be a string containing ``{text}`` exactly once."""
    if prompt is None:
        return None
    if not isinstance(prompt, str) or prompt.count("{text}") != 1:
        raise InputError(f"prompt must be a string containing '{{text}}' exactly once, got {prompt!r}")
    return prompt


class Truncation(NamedTuple):
    """How many of the ``total`` texts of one call were cut to ``max_length`` tokens."""

    truncated: int
    total: int
    max_length: int


class TruncationWarning(UserWarning):
    """Texts were longer than the backbone's ``max_length`` and lost their tail."""


def truncation_warning(report: Truncation, limit: int | None) -> str:
    """The library's one message for texts a backbone cut (``limit``: the model's position limit, if known)."""
    fix = (
        "the model takes no more" if limit is not None and limit <= report.max_length
        else f"pass a larger max_length{f' (up to {limit})' if limit else ''} to keep more of them"
    )  # fmt: skip
    return (
        f"{report.truncated} of {report.total} texts were cut to max_length={report.max_length} tokens; {fix}, "
        "or long='chunk' to embed every token in windows"
    )


class TokenPlan:
    """How one backbone turns texts into token ids: prompt, truncation to ``max_length``, optional EOS.

    Shapes: texts (B,) -> ragged features (B lists of ids) -> padded (B, L) tensors.
    """

    def __init__(
        self, tokenizer: PreTrainedTokenizerBase, *, max_length: int, append_eos: bool, prompt: str | None
    ) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.append_eos = append_eos
        self.prompt = check_prompt(prompt)
        self.eos_id: int | None = tokenizer.eos_token_id
        names = set(getattr(tokenizer, "model_input_names", _KEYS))
        self.keys = [k for k in _KEYS if k in names or k != "token_type_ids"]
        #: Truncation count of the latest :meth:`encode` call.
        self.last_truncation = Truncation(0, 0, max_length)

    @property
    def budget(self) -> int:
        """Tokens the tokenizer may produce before glot appends EOS."""
        return self.max_length - 1 if self.append_eos else self.max_length

    def encode(self, texts: list[str]) -> Features:
        """Ragged token ids (no padding) for each text. Shapes: texts (B,) -> B lists of length <= max_length."""
        self.last_truncation = Truncation(0, len(texts), self.max_length)
        if not texts:
            return {k: [] for k in self.keys}
        cut: set[int] = set()
        if self.prompt is not None:
            texts, cut = self._fit_prompted(texts)
        feats = self._tokenize(texts, cut)
        self.last_truncation = Truncation(len(cut), len(texts), self.max_length)
        feats["attention_mask"] = [[1] * len(ids) for ids in feats["input_ids"]]
        if self.append_eos and self.eos_id is not None:
            self._add_eos(feats, self.eos_id)
        empty = [i for i, ids in enumerate(feats["input_ids"]) if not ids]
        if empty:
            raise InputError(
                f"texts {empty[:10]} tokenize to no tokens; drop empty texts or use append_eos=True / a prompt"
            )
        return feats

    def _tokenize(self, texts: list[str], cut: set[int]) -> Features:
        """Tokenize in full, then re-tokenize with truncation only the texts over budget (adding them to
        ``cut``), so the count of truncated texts is exact and special tokens stay where the tokenizer puts them.
        """
        enc = self.tokenizer(texts, truncation=False, padding=False, verbose=False)
        feats: Features = {k: [list(r) for r in enc[k]] for k in self.keys if k in enc}
        long = [i for i, ids in enumerate(feats["input_ids"]) if len(ids) > self.budget]
        if long:
            short = self.tokenizer(
                [texts[i] for i in long],
                truncation=True,
                max_length=self.budget,
                padding=False,
                verbose=False,
            )
            for j, i in enumerate(long):
                for k in feats:
                    feats[k][i] = list(short[k][j])
            cut.update(long)
        return feats

    def _fit_prompted(self, texts: list[str]) -> tuple[list[str], set[int]]:
        """Fill the prompt; when a prompted text is too long, shorten the text (never the prompt). Returns
        the filled texts and the indices of the texts that were shortened."""
        assert self.prompt is not None
        prompt = self.prompt
        filled = [prompt.replace("{text}", t) for t in texts]
        lengths = self.tokenizer(filled, truncation=False, padding=False, verbose=False)["input_ids"]
        cut: set[int] = set()
        for i, ids in enumerate(lengths):
            excess = len(ids) - self.budget
            if excess > 0:
                cut.add(i)
                text_ids = self.tokenizer(texts[i], add_special_tokens=False, verbose=False)["input_ids"]
                keep = max(0, len(text_ids) - excess - 1)  # one spare token for merges at the seam
                short = str(self.tokenizer.decode(text_ids[:keep], clean_up_tokenization_spaces=False))
                filled[i] = prompt.replace("{text}", short)
        return filled, cut

    @staticmethod
    def _add_eos(feats: Features, eos_id: int) -> None:
        for row, ids in enumerate(feats["input_ids"]):
            if ids and ids[-1] == eos_id:
                continue  # the tokenizer already ends with EOS
            ids.append(eos_id)
            feats["attention_mask"][row].append(1)
            if "token_type_ids" in feats:
                types = feats["token_type_ids"][row]
                types.append(types[-1] if types else 0)

    def pad(self, feats: Features, rows: Sequence[int], side: str) -> BatchEncoding:
        """Pad the selected rows to their longest. Shapes: -> input_ids/attention_mask (len(rows), L) int64."""
        seqs = [feats["input_ids"][r] for r in rows]
        width = max((len(s) for s in seqs), default=0)
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        out = {k: torch.zeros(len(seqs), width, dtype=torch.long) for k in feats}
        out["input_ids"].fill_(pad_id)
        for k, r in enumerate(rows):
            n = len(feats["input_ids"][r])
            cols = slice(width - n, width) if side == "left" else slice(0, n)
            for key, tensor in out.items():
                tensor[k, cols] = torch.tensor(feats[key][r], dtype=torch.long)
        return BatchEncoding(out)
