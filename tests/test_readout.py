"""glot.pooling.readout: the attention readout's segment softmax and the simple readouts, against naive loops."""

from __future__ import annotations

import torch

from glot.pooling.readout import (
    AttentionReadout,
    default_readout_hidden,
    first_token,
    last_token,
    max_readout,
    mean_readout,
    segment_sum,
)

LENGTHS = [3, 1, 5, 2]


def _packed(width: int = 6, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(sum(LENGTHS), width, generator=gen)
    ptr = torch.tensor([0, *torch.tensor(LENGTHS).cumsum(0).tolist()])
    return x, ptr


def _sentences(x: torch.Tensor, ptr: torch.Tensor) -> list[torch.Tensor]:
    return [x[int(ptr[b]) : int(ptr[b + 1])] for b in range(ptr.numel() - 1)]


def test_attention_weights_are_a_softmax_per_sentence_equal_to_a_naive_loop() -> None:
    torch.manual_seed(0)
    readout = AttentionReadout(6, hidden=8)
    x, ptr = _packed()
    with torch.no_grad():
        pi = readout.weights(x, ptr)
        naive = torch.cat(
            [
                torch.softmax(readout.score(readout.proj(u).tanh()).squeeze(-1), dim=0)
                for u in _sentences(x, ptr)
            ]
        )
    torch.testing.assert_close(pi, naive)
    sums = torch.stack([p.sum() for p in _sentences(pi[:, None], ptr)])
    torch.testing.assert_close(sums, torch.ones(len(LENGTHS)))
    torch.testing.assert_close(pi[ptr[1]], torch.tensor(1.0))  # a one-token sentence: all the weight


def test_the_sigmoid_scores_give_the_papers_tanh_readout_and_its_gradients() -> None:
    # m = v^T tanh(W u + b) (Sec. 3.3) is computed as 2 v^T sigmoid(2 (W u + b)): the same up to the constant
    # sum(v), which the softmax drops. v is set far from its zero init, with a large sum, so the forms differ.
    torch.manual_seed(4)
    readout = AttentionReadout(6, hidden=8).double()
    with torch.no_grad():
        readout.score.weight.copy_(torch.randn(1, 8, dtype=torch.float64) + 3.0)
    x, ptr = _packed(seed=4)
    x = x.double().requires_grad_()
    target = torch.randn(len(LENGTHS), 6, dtype=torch.float64)

    def loss_and_grads(pool) -> tuple[torch.Tensor, list[torch.Tensor]]:  # noqa: ANN001
        loss = ((pool() - target) ** 2).sum()
        return loss, list(torch.autograd.grad(loss, [x, *readout.parameters()]))

    def tanh_form() -> torch.Tensor:
        out = []
        for u in _sentences(x, ptr):
            pi = torch.softmax(readout.score(readout.proj(u).tanh()).squeeze(-1), dim=0)
            out.append((pi[:, None] * u).sum(0))
        return torch.stack(out)

    ours, ours_grads = loss_and_grads(lambda: readout(x, ptr))
    paper, paper_grads = loss_and_grads(tanh_form)
    torch.testing.assert_close(ours, paper, rtol=1e-12, atol=1e-12)
    for a, b in zip(ours_grads, paper_grads, strict=True):  # v's included: the constant has no gradient
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    pi = readout.weights(x, ptr)
    assert pi.dtype == torch.float64 and pi.std() > 0.05  # the weights are far from uniform here


def test_attention_readout_is_the_weighted_sum_of_its_tokens() -> None:
    torch.manual_seed(1)
    readout = AttentionReadout(6, hidden=4)
    x, ptr = _packed(seed=1)
    with torch.no_grad():
        z = readout(x, ptr)
        pi = readout.weights(x, ptr)
    naive = torch.stack(
        [(u * w[:, None]).sum(0) for u, w in zip(_sentences(x, ptr), _sentences(pi, ptr), strict=True)]
    )
    assert z.shape == (len(LENGTHS), 6)
    torch.testing.assert_close(z, naive)


def test_weights_of_one_sentence_do_not_depend_on_the_others() -> None:
    torch.manual_seed(2)
    readout = AttentionReadout(6, hidden=8)
    x, ptr = _packed(seed=2)
    with torch.no_grad():
        together = readout.weights(x, ptr)[: LENGTHS[0]]
        alone = readout.weights(x[: LENGTHS[0]], torch.tensor([0, LENGTHS[0]]))
    torch.testing.assert_close(together, alone)


def test_simple_readouts_equal_their_definitions() -> None:
    x, ptr = _packed(seed=3)
    parts = _sentences(x, ptr)
    torch.testing.assert_close(segment_sum(x, ptr), torch.stack([u.sum(0) for u in parts]))
    torch.testing.assert_close(mean_readout(x, ptr), torch.stack([u.mean(0) for u in parts]))
    torch.testing.assert_close(max_readout(x, ptr), torch.stack([u.max(0).values for u in parts]))
    assert torch.equal(first_token(x, ptr), torch.stack([u[0] for u in parts]))
    assert torch.equal(last_token(x, ptr), torch.stack([u[-1] for u in parts]))


def test_score_layer_has_no_bias_and_old_checkpoints_with_one_load() -> None:
    torch.manual_seed(4)
    readout = AttentionReadout(6, hidden=8)
    assert readout.score.bias is None
    old = {
        **readout.state_dict(),
        "score.bias": torch.tensor([0.5]),
    }  # written before the dead bias was dropped
    fresh = AttentionReadout(6, hidden=8)
    fresh.load_state_dict(old, strict=True)
    x, ptr = _packed(seed=4)
    with torch.no_grad():
        torch.testing.assert_close(fresh(x, ptr), readout(x, ptr))
    assert "score.bias" in old  # the caller's dict is left as it was


def test_default_hidden_width_is_the_reference_codes() -> None:
    assert default_readout_hidden(384) == 192
    assert default_readout_hidden(64) == 128
    assert AttentionReadout(1024).hidden == 512


def test_readout_on_column_blocks_equals_the_readout_on_their_concatenation() -> None:
    """u given as blocks (the frozen states first, as jumping knowledge 'cat' hands them over) gives the same
    outputs and the same gradients as u concatenated; the frozen block never asks for a gradient."""
    torch.manual_seed(5)
    readout = AttentionReadout(9, hidden=7)
    torch.nn.init.normal_(readout.score.weight)  # a nonzero v, so W's gradient is not zero by construction
    frozen, _ = _packed(width=4, seed=5)
    layers = [_packed(width=w, seed=6 + w)[0].requires_grad_() for w in (3, 2)]
    _, ptr = _packed()
    target = torch.randn(len(LENGTHS), 9, generator=torch.Generator().manual_seed(7))
    results = []
    for u in ([frozen, *layers], torch.cat([frozen, *layers], dim=-1)):
        z = readout(u, ptr)
        pi = readout.weights(u, ptr)
        grads = torch.autograd.grad(((z - target) ** 2).sum(), [*readout.parameters(), *layers])
        results.append((z, pi, grads))
    (z_b, pi_b, g_b), (z_c, pi_c, g_c) = results
    torch.testing.assert_close(z_b, z_c)
    torch.testing.assert_close(pi_b, pi_c)
    assert all(g.abs().sum() > 0 for g in g_c)
    for a, b in zip(g_b, g_c, strict=True):
        torch.testing.assert_close(a, b)
    assert not frozen.requires_grad
