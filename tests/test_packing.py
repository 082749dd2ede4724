"""glot.pooling.packing: padded <-> packed round trips, offsets, and the one-line errors for bad batches."""

from __future__ import annotations

import pytest
import torch

from glot.errors import InputError
from glot.pooling.packing import check_packed, check_padded, lengths_to_ptr, pack, ptr_to_batch, unpack


def _padded(
    lengths: list[int], width: int = 5, side: str = "right", seed: int = 0
) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(seed)
    hidden = torch.randn(len(lengths), max(lengths), width, generator=gen)
    mask = torch.zeros(len(lengths), max(lengths), dtype=torch.bool)
    for row, n in enumerate(lengths):
        cols = slice(max(lengths) - n, None) if side == "left" else slice(0, n)
        mask[row, cols] = True
    return hidden, mask


@pytest.mark.parametrize("side", ["right", "left"])
def test_pack_keeps_each_sentences_real_tokens_in_order(side: str) -> None:
    lengths = [3, 1, 4]
    hidden, mask = _padded(lengths, side=side)
    x, ptr = pack(hidden, mask)
    assert ptr.tolist() == [0, 3, 4, 8] and ptr.dtype == torch.long and x.shape == (8, 5)
    for b, n in enumerate(lengths):
        want = hidden[b][mask[b]]  # the real tokens of sentence b, left to right
        assert want.shape[0] == n
        assert torch.equal(x[ptr[b] : ptr[b + 1]], want)


@pytest.mark.parametrize("side", ["right", "left"])
def test_unpack_inverts_pack_into_right_padding(side: str) -> None:
    hidden, mask = _padded([2, 5, 1], side=side, seed=1)
    x, ptr = pack(hidden, mask)
    padded, right_mask = unpack(x, ptr, pad_value=-7.0)
    assert right_mask.sum(dim=1).tolist() == [2, 5, 1]
    assert bool((padded[~right_mask] == -7.0).all())
    x_again, ptr_again = pack(padded, right_mask)
    assert torch.equal(x_again, x) and torch.equal(ptr_again, ptr)


def test_offsets_and_sentence_ids() -> None:
    ptr = lengths_to_ptr(torch.tensor([2, 1, 3]))
    assert ptr.tolist() == [0, 2, 3, 6]
    assert ptr_to_batch(ptr).tolist() == [0, 0, 1, 2, 2, 2]
    assert lengths_to_ptr(torch.tensor([], dtype=torch.long)).tolist() == [0]


def test_binary_float_and_int_masks_pack_like_a_bool_mask() -> None:
    hidden, mask = _padded([3, 2], seed=2)
    want = pack(hidden, mask)
    for other in (mask.float(), mask.long()):
        got = pack(hidden, other)
        assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])


@pytest.mark.parametrize(
    ("hidden", "mask", "message"),
    [
        (torch.zeros(2, 3), torch.ones(2, 3), r"hidden must be a \(B, L, D\) tensor, got \(2, 3\)"),
        (torch.zeros(2, 3, 4), torch.ones(2, 4), r"attention_mask must be \(B, L\) = \(2, 3\).*got \(2, 4\)"),
        (torch.zeros(2, 3, 4), [[1, 1, 1]], r"attention_mask must be .* got list"),
        (torch.zeros(2, 3, 4), torch.tensor([[0.0, -1e4, 0.0]] * 2), r"not only 0/1.*mask == 0"),
        (torch.zeros(2, 3, 4), torch.tensor([[1, 1, 0], [0, 0, 0]]), r"sentences \[1\] have no real token"),
    ],
)
def test_bad_padded_input_is_one_line_naming_the_problem(hidden, mask, message: str) -> None:
    with pytest.raises(InputError, match=message) as err:
        check_padded(hidden, mask)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("x", "ptr", "message"),
    [
        (torch.zeros(4), torch.tensor([0, 4]), r"x must be a packed \(N, D\) tensor, got \(4,\)"),
        (torch.zeros(4, 2), torch.tensor([[0, 4]]), r"ptr must be a 1-D \(B \+ 1,\) tensor"),
        (
            torch.zeros(4, 2),
            torch.tensor([1, 4]),
            r"start at 0 and end at N = x.shape\[0\] = 4, got ptr\[0\]=1",
        ),
        (torch.zeros(4, 2), torch.tensor([0, 3]), r"ptr\[-1\]=3"),
        (torch.zeros(4, 2), torch.tensor([0, 2, 2, 4]), r"sentences \[1\] have no token"),
    ],
)
def test_bad_packed_batch_is_one_line_naming_the_problem(x, ptr, message: str) -> None:
    with pytest.raises(InputError, match=message):
        check_packed(x, ptr)


def test_a_valid_packed_batch_passes() -> None:
    check_packed(torch.zeros(6, 3), torch.tensor([0, 2, 3, 6]))
