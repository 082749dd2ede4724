"""Task heads: shapes, losses against hand-written formulas, learnability, config round trip, errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from glot.training.heads import (
    HEADS,
    ClassificationHead,
    ContrastiveHead,
    PairClassificationHead,
    STSHead,
    TaskHead,
    build_head,
)

D = 8


def _fit(
    head: TaskHead, inputs: tuple[torch.Tensor, ...], labels: torch.Tensor | None, steps: int = 20
) -> list[float]:
    """Train ``head`` with Adam on a fixed batch and return the loss before and after."""
    torch.manual_seed(0)
    opt = torch.optim.Adam(head.parameters(), lr=0.05)
    losses = []
    for _ in range(steps + 1):
        loss = head.loss(head(*inputs), labels)
        losses.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    return losses


def test_classification_head_learns_separable_data() -> None:
    gen = torch.Generator().manual_seed(0)
    labels = torch.arange(30) % 3
    z = torch.randn(30, D, generator=gen) + 3 * F.one_hot(labels, D).float()
    head = build_head("single", D, num_labels=3)
    assert isinstance(head, ClassificationHead)
    assert head(z).shape == (30, 3)
    losses = _fit(head, (z,), labels)
    assert losses[-1] < 0.5 * losses[0]
    assert (head.predict(head(z)) == labels.numpy()).mean() == 1.0


@pytest.mark.parametrize("features", ["concat", "full"])
def test_pair_head_learns_and_uses_both_sentences(features: str) -> None:
    gen = torch.Generator().manual_seed(1)
    z_a, z_b = torch.randn(32, D, generator=gen), torch.randn(32, D, generator=gen)
    labels = (z_a[:, 0] + z_b[:, 1] > 0).long()  # depends on both sentences
    head = build_head("pair", D, num_labels=2, features=features)
    assert isinstance(head, PairClassificationHead)
    assert head.linear.in_features == {"concat": 2, "full": 4}[features] * D
    assert head(z_a, z_b).shape == (32, 2)
    losses = _fit(head, (z_a, z_b), labels, steps=40)
    assert losses[-1] < 0.6 * losses[0]


def test_pair_head_concat_is_linear_in_concatenation() -> None:
    head = PairClassificationHead(D, 3)
    z_a, z_b = torch.randn(4, D), torch.randn(4, D)
    w, b = head.linear.weight, head.linear.bias
    expected = z_a @ w[:, :D].T + z_b @ w[:, D:].T + b
    torch.testing.assert_close(head(z_a, z_b), expected)


def test_sts_head_predicts_cosine_and_uses_scaled_mse() -> None:
    head = build_head("sts", D, proj_dim=4)
    assert isinstance(head, STSHead)
    z_a, z_b = torch.randn(5, D), torch.randn(5, D)
    out = head(z_a, z_b)
    p_a, p_b = head.proj(z_a), head.proj(z_b)
    cos = (p_a * p_b).sum(-1) / (p_a.norm(dim=-1) * p_b.norm(dim=-1))
    torch.testing.assert_close(out, cos)
    np.testing.assert_array_equal(head.predict(out), out.detach().numpy())  # the scores as they are
    gold = torch.tensor([0.0, 1.0, 2.5, 4.0, 5.0])
    torch.testing.assert_close(head.loss(out, gold), ((cos - gold / 5) ** 2).mean())
    assert STSHead(D).proj.out_features == D  # P is D -> D by default (paper)


def test_sts_head_learns() -> None:
    gen = torch.Generator().manual_seed(2)
    z_a = torch.randn(24, D, generator=gen)
    z_b = torch.randn(24, D, generator=gen)
    gold = 5 * (F.cosine_similarity(z_a[:, :4], z_b[:, :4]) + 1) / 2
    losses = _fit(build_head("sts", D), (z_a, z_b), gold, steps=40)
    assert losses[-1] < 0.5 * losses[0]


def _info_nce_by_hand(q: torch.Tensor, p: torch.Tensor, n: torch.Tensor | None, t: float) -> torch.Tensor:
    """-log softmax written out with explicit sums over rows/columns."""
    q, p = q / q.norm(dim=1, keepdim=True), p / p.norm(dim=1, keepdim=True)
    docs = p if n is None else torch.cat([p, n / n.norm(dim=1, keepdim=True)])
    total_qd, total_dq = 0.0, 0.0
    for i in range(len(q)):
        row = torch.stack([torch.exp(q[i] @ d / t) for d in docs])
        total_qd += -torch.log(row[i] / row.sum())
        col = torch.stack([torch.exp(q[j] @ p[i] / t) for j in range(len(q))])
        total_dq += -torch.log(col[i] / col.sum())
    return (total_qd + total_dq) / (2 * len(q))


@pytest.mark.parametrize("with_negatives", [False, True])
def test_info_nce_matches_formula(with_negatives: bool) -> None:
    gen = torch.Generator().manual_seed(3)
    q, p, n = (torch.randn(4, D, generator=gen, dtype=torch.float64) for _ in range(3))
    head = build_head("contrastive", D).double()
    assert isinstance(head, ContrastiveHead) and head.temperature == 0.07
    out = head(q, p, n if with_negatives else None)
    assert out.shape == (4, 8 if with_negatives else 4)
    expected = _info_nce_by_hand(q, p, n if with_negatives else None, 0.07)
    torch.testing.assert_close(head.loss(out), expected)
    np.testing.assert_allclose(head.predict(out), F.cosine_similarity(q, p).numpy(), rtol=1e-6)


def test_contrastive_head_learnable_temperature_and_learning() -> None:
    fixed = ContrastiveHead(D)
    assert list(fixed.parameters()) == []  # nothing to train: the loss is parameter-free
    head = ContrastiveHead(D, temperature=0.5, learnable=True)
    assert math.isclose(head.scale().item(), 2.0, rel_tol=1e-6)
    q = torch.randn(16, D, requires_grad=True)
    p = (q.detach() + 0.5 * torch.randn(16, D)).requires_grad_(False)
    opt = torch.optim.Adam([q, *head.parameters()], lr=0.05)
    first = last = 0.0
    for step in range(20):
        loss = head.loss(head(q, p))
        first, last = (loss.item(), last) if step == 0 else (first, loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert last < first
    assert head.scale().item() > 2.0  # sharper distribution helps once pairs are aligned


@pytest.mark.parametrize(
    ("kind", "options"),
    [
        ("single", {"num_labels": 4}),
        ("pair", {"num_labels": 3, "features": "full"}),
        ("sts", {"proj_dim": 5, "score_scale": 1.0}),
        ("contrastive", {"temperature": 0.1, "learnable": True}),
    ],
)
def test_config_round_trip(kind: str, options: dict) -> None:
    head = build_head(kind, D, **options)
    config = json.loads(json.dumps(head.config()))
    rebuilt = build_head(**config)
    assert type(rebuilt) is HEADS[kind] and rebuilt.config() == head.config()
    rebuilt.load_state_dict(head.state_dict())
    z_a, z_b = torch.randn(3, D), torch.randn(3, D)
    args = (z_a,) if kind == "single" else (z_a, z_b)
    torch.testing.assert_close(rebuilt(*args), head(*args))


def test_bad_inputs_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match="unknown head kind 'regression'.*single"):
        build_head("regression", D)
    with pytest.raises(ValueError, match="num_labels >= 2"):
        build_head("single", D)
    with pytest.raises(ValueError, match="needs z_pair"):
        build_head("pair", D, num_labels=2)(torch.randn(2, D))
    with pytest.raises(ValueError, match=r"z must be a \(B, 8\) tensor.*\(2, 7\)"):
        build_head("single", D, num_labels=2)(torch.randn(2, 7))
    with pytest.raises(ValueError, match="same batch size, got 2 and 3"):
        build_head("sts", D)(torch.randn(2, D), torch.randn(3, D))
    with pytest.raises(ValueError, match="features must be one of"):
        build_head("pair", D, num_labels=2, features="diff")
    with pytest.raises(ValueError, match="only used by the contrastive head"):
        build_head("sts", D)(torch.randn(2, D), torch.randn(2, D), torch.randn(2, D))
    with pytest.raises(ValueError, match="needs labels"):
        build_head("sts", D).loss(torch.zeros(2), None)
