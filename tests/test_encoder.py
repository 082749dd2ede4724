"""Encoder: texts -> embeddings equals pooling the backbone states directly, in the original order."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from glot.cache import build_or_load
from glot.export.encoder import Encoder

TEXTS = [
    "a much longer sentence with quite a few more words than the others have in it",
    "ok",
    "the delivery contains not keys",
    "graphs over tokens let the pooler see relations",
    "x y",
    "in the box are tickets",
    "one two three four five six seven eight nine",
]
D = 16


class FakeBackbone:
    """Deterministic token states from hashes of (position, word); iter_packed sorts by length."""

    hidden_size = D
    name = "fake"

    def fingerprint(self) -> dict[str, object]:
        return {"model": self.name, "hidden_size": D}

    def states(self, text: str) -> Tensor:
        rows = []
        for pos, word in enumerate(["[CLS]", *text.split()]):
            seed = int(hashlib.sha256(f"{pos}:{word}".encode()).hexdigest()[:8], 16)
            rows.append(torch.from_numpy(np.random.default_rng(seed).standard_normal(D)))
        return torch.stack(rows).float()

    def iter_packed(self, texts, batch_size=64, progress=True, desc=None):
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i].split()))
        for start in range(0, len(order), batch_size):
            idx = np.array(order[start : start + batch_size])
            states = [self.states(texts[i]) for i in idx]
            ptr = torch.tensor([0, *np.cumsum([len(s) for s in states])], dtype=torch.long)
            yield idx, torch.cat(states), ptr

    def padded(self, texts: list[str]) -> tuple[Tensor, Tensor]:
        """Shapes: -> hidden (B, L, D) right-padded with garbage, mask (B, L) bool."""
        states = [self.states(t) for t in texts]
        lmax = max(len(s) for s in states)
        hidden = torch.full((len(texts), lmax, D), 7.0)
        mask = torch.zeros(len(texts), lmax, dtype=torch.bool)
        for i, s in enumerate(states):
            hidden[i, : len(s)], mask[i, : len(s)] = s, True
        return hidden, mask


class MeanPooler(nn.Module):
    """Stand-in pooler: masked mean with one linear layer (so it has parameters and a train/eval mode)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, 5)
        self.drop = nn.Dropout(0.5)  # eval mode must switch it off
        self.out_dim = 5

    def forward(self, hidden: Tensor, attention_mask: Tensor) -> Tensor:
        m = attention_mask.float().unsqueeze(-1)
        return self.drop(self.proj((hidden * m).sum(1) / m.sum(1)))

    def forward_packed(self, x: Tensor, ptr: Tensor) -> Tensor:
        means = torch.stack(
            [x[a:b].mean(0) for a, b in zip(ptr[:-1].tolist(), ptr[1:].tolist(), strict=True)]
        )
        return self.drop(self.proj(means))


def _poolers() -> list[tuple[str, nn.Module]]:
    torch.manual_seed(0)
    found: list[tuple[str, nn.Module]] = [("fake-mean", MeanPooler(D))]
    try:
        from glot import build_pooler
    except ImportError:
        return found
    return [*found, ("mean", build_pooler("mean", D)), ("glot", build_pooler("glot", D))]


@pytest.mark.parametrize(("name", "pooler"), _poolers(), ids=lambda v: v if isinstance(v, str) else "")
def test_encode_matches_direct_padded_pooling(name: str, pooler: nn.Module) -> None:
    bb = FakeBackbone()
    enc = Encoder(bb, pooler)
    pooler.train()
    got = enc.encode(TEXTS, batch_size=3, progress=False)
    assert pooler.training  # mode restored
    assert isinstance(got, np.ndarray) and got.dtype == np.float32 and got.shape == (len(TEXTS), enc.out_dim)
    pooler.eval()
    with torch.no_grad():
        hidden, mask = bb.padded(TEXTS)
        expected = pooler(hidden, mask).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=1e-5)
    one_by_one = np.concatenate([enc.encode([t], progress=False) for t in TEXTS])
    np.testing.assert_allclose(got, one_by_one, atol=1e-5, rtol=1e-5)


def test_encode_options_and_cached_input(tmp_path: Path) -> None:
    bb = FakeBackbone()
    enc = Encoder(bb, MeanPooler(D))
    plain = enc.encode(TEXTS, progress=False)
    unit = enc.encode(TEXTS, progress=False, normalize=True, convert_to_numpy=False)
    assert isinstance(unit, Tensor)
    np.testing.assert_allclose(unit.norm(dim=-1).numpy(), 1.0, atol=1e-6)
    np.testing.assert_allclose(unit.numpy(), plain / np.linalg.norm(plain, axis=-1, keepdims=True), atol=1e-6)
    cached = build_or_load(bb, TEXTS, cache_dir=tmp_path, dtype="float32", progress=False)
    np.testing.assert_allclose(enc.encode_cached(cached, batch_size=2, progress=False), plain, atol=1e-6)
    assert enc.encode([], progress=False).shape == (0, 5)
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        enc.encode(["fine", None], progress=False)  # type: ignore[list-item]
    with pytest.raises(TypeError, match="forward_packed"):
        Encoder(bb, nn.Linear(2, 2))  # type: ignore[arg-type]


@pytest.mark.slow
def test_real_minilm_encode_matches_padded(minilm_path: str) -> None:
    import glot.backbones.frozen as backbone_mod
    from glot import build_pooler

    bb = backbone_mod.FrozenBackbone.from_pretrained(minilm_path, dtype="float32")
    pooler = build_pooler("mean", bb.hidden_size)
    texts = ["ok", "the delivery contains not keys", "Graphs over tokens relate words to each other.", "hi"]
    got = Encoder(bb, pooler).encode(texts, batch_size=2, progress=False)
    x, ptr = bb.embed_packed(texts)
    with torch.no_grad():
        expected = pooler.forward_packed(x, ptr).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_embedding_transform_is_applied_after_the_pooler() -> None:
    from glot import build_pooler
    from glot.errors import InputError, InputTypeError
    from glot.training.heads import ClassificationHead, ContrastiveHead, STSHead

    torch.manual_seed(0)
    pooler = build_pooler("mean", D)
    head = STSHead(D, proj_dim=8)
    encoder = Encoder(FakeBackbone(), pooler, transform=head.embedding_transform())
    assert encoder.out_dim == 8
    got = torch.as_tensor(encoder.encode(TEXTS, progress=False))
    hidden, mask = FakeBackbone().padded(TEXTS)
    with torch.no_grad():
        z = pooler(hidden, mask)
        want = head.proj(z)
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=0, atol=1e-5)
        # the cosine of two exported embeddings is exactly what the trained STS head scores
        scores = head(z[:3], z[3:6]).numpy()
    np.testing.assert_allclose(torch.cosine_similarity(got[:3], got[3:6]).numpy(), scores, rtol=0, atol=1e-5)
    assert (
        ClassificationHead(D, 2).embedding_transform() is None
        and ContrastiveHead(D).embedding_transform() is None
    )
    with pytest.raises(InputError, match="transform takes 8-d"):
        Encoder(FakeBackbone(), pooler, transform=nn.Linear(8, 4))
    with pytest.raises(InputTypeError, match="transform must be a torch module"):
        Encoder(FakeBackbone(), pooler, transform="proj")  # type: ignore[arg-type]
