"""Backbone-robust inputs for the learned poolers (beyond the paper): state normalisation and ``tau="auto"``.

Frozen decoder states are nothing like encoder states: SmolLM2-135M's last layer has token norm ~48, mean
pairwise cosine 0.89 and three "massive activation" dimensions holding 55% of the energy (docs/results.md), so
at the paper's tau = 0.6 its token graph is 96.5% complete and the per-token layers see inputs ten times larger
than MiniLM's. Two remedies, both options of the pooler config (``glot.pooling.config``):

* ``normalize`` — before the graph AND the GNN / readout, the states are normalised:
  ``standardize`` = per-dimension ``(x - mean) / std`` with statistics computed ONCE from the training states
  and stored as buffers in the pooler's state dict (so checkpoints, ``save_pretrained``, ``load_pooler`` and
  every export carry them); ``layernorm`` = per token, parameter-free; ``none`` = the paper. The graph is built
  on the NORMALISED states, so a few large shared dimensions no longer decide which tokens are similar.
* ``tau="auto"`` — tau is the cosine above which ``edge_density`` of a sentence's ordered token pairs
  (i != j) lie, measured on (normalised) training states; the chosen number replaces ``"auto"`` in the
  pooler's config, so a saved pooler rebuilds the same graph.

:func:`fit_pooler` does both on a sample of training states; ``glot train`` / ``glot compare`` call it once
per run before the first epoch. An unfitted ``standardize`` is the identity (mean 0, std 1).
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from glot.errors import InputError
from glot.pooling.packing import check_packed

#: Texts of the training split used to fit the statistics and tau (a seeded sample; all when fewer).
FIT_TEXTS = 512
#: Tokens per sentence entering the pair-cosine sample (evenly spaced), so long texts cost O(128^2) pairs.
FIT_TOKENS_PER_TEXT = 128
#: A dimension's std is floored at this share of the mean std (a constant dimension is not blown up).
STD_FLOOR = 1e-3


class InputNorm(nn.Module):
    """Normalisation of packed token states. Shapes: x (N, D) -> (N, D).

    ``standardize`` keeps ``mean`` and ``std`` (D,) as buffers: identity until :meth:`fit`.
    """

    mean: Tensor
    std: Tensor

    def __init__(self, dim: int, kind: str) -> None:
        super().__init__()
        self.kind = kind
        if kind == "standardize":
            self.register_buffer("mean", torch.zeros(dim))
            self.register_buffer("std", torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        if self.kind == "standardize":
            return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        if self.kind == "layernorm":
            return F.layer_norm(x, (x.shape[-1],))
        return x

    def fingerprint(self) -> tuple[str, ...]:
        """What this normalisation does, by content (kind + fitted statistics): equal fingerprints map equal
        states to equal outputs (the key of graphs built on normalised states, glot.pooling.graph_cache)."""
        if self.kind != "standardize":
            return (self.kind,)
        stats = torch.cat([self.mean.detach().float().cpu(), self.std.detach().float().cpu()]).numpy()
        return (self.kind, hashlib.sha256(stats.tobytes()).hexdigest())

    @torch.no_grad()
    def fit(self, x: Tensor) -> None:
        """Per-dimension statistics of the packed training tokens ``x`` (N, D); a no-op for other kinds."""
        if self.kind != "standardize":
            return
        x64 = x.detach().double()
        mean, std = x64.mean(dim=0), x64.std(dim=0, unbiased=False)
        floor = max(STD_FLOOR * float(std.mean()), 1e-12)
        self.mean.copy_(mean.to(self.mean.dtype))
        self.std.copy_(std.clamp_min(floor).to(self.std.dtype))


def pair_cosines(x: Tensor, ptr: Tensor, tokens_per_text: int = FIT_TOKENS_PER_TEXT) -> Tensor:
    """Cosines of every ordered token pair (i != j) within each sentence (at most ``tokens_per_text`` evenly
    spaced tokens of each). Shapes: x (N, D), ptr (B + 1,) -> (P,) float32."""
    check_packed(x, ptr)
    xn = F.normalize(x.detach().float(), dim=-1)
    parts = []
    for lo, hi in zip(ptr[:-1].tolist(), ptr[1:].tolist(), strict=True):
        n = hi - lo
        if n < 2:
            continue
        idx = torch.linspace(lo, hi - 1, min(n, tokens_per_text)).round().long().unique().to(x.device)
        sim = xn[idx] @ xn[idx].T
        parts.append(sim[~torch.eye(len(idx), dtype=torch.bool, device=sim.device)].clamp_(-1.0, 1.0))
    return torch.cat(parts) if parts else x.new_zeros(0, dtype=torch.float32)


def edge_density(cosines: Tensor, tau: float) -> float:
    """Share of the sampled token pairs with cos > tau (the graph rule of paper Eq. 1). Shapes: (P,) -> float."""
    return float((cosines > tau).float().mean()) if cosines.numel() else 0.0


def tau_for_density(cosines: Tensor, density: float) -> float:
    """The tau (4 decimals) above which a share ``density`` of the sampled pairs lie. Shapes: (P,) -> float."""
    if cosines.numel() == 0:
        raise InputError(
            "tau='auto' needs sentences with at least 2 tokens in the training data to measure token-pair "
            "cosines; every sampled text has one token: pass a number, e.g. --tau 0.8"
        )
    k = min(cosines.numel(), max(1, int(round((1.0 - density) * cosines.numel()))))
    tau = float(torch.kthvalue(cosines, k).values)
    return round(min(max(tau, -1.0), 1.0), 4)


def fit_sample(train_rows: np.ndarray, seed: int, n: int = FIT_TEXTS) -> np.ndarray:
    """The training rows the fit reads: a seeded sample of ``n`` (all when fewer), in row order."""
    if len(train_rows) <= n:
        return np.asarray(train_rows)
    pick = np.random.default_rng([seed, 13]).choice(len(train_rows), n, replace=False)
    return np.asarray(train_rows)[np.sort(pick)]


def needs_fit(pooler: nn.Module) -> bool:
    """Whether :func:`fit_pooler` has anything to do (statistics to fit, a tau to choose or to report)."""
    norm = getattr(pooler, "normalizer", None)
    return (norm is not None and norm.kind == "standardize") or bool(getattr(pooler, "uses_graph", False))


@torch.no_grad()
def fit_pooler(pooler: Any, x: Tensor, ptr: Tensor) -> dict[str, Any]:
    """Fit the pooler's input statistics on training states and resolve ``tau="auto"`` (in place).

    Returns the report stored in the run and the saved pooler: normalisation, tau (chosen or given), the edge
    density measured at that tau on the normalised training sample, and the sample's size.
    Shapes: x (N, D) packed training tokens, ptr (B + 1,).
    """
    check_packed(x, ptr)
    x = x.float()
    if hasattr(pooler, "mix"):  # stacked hidden layers: the statistics of the (initial) mix the pooler sees
        x = pooler.mix(x)
    report: dict[str, Any] = {"texts": int(ptr.numel() - 1), "tokens": int(x.shape[0])}
    norm = getattr(pooler, "normalizer", None)
    if norm is not None:
        norm.fit(x)
        report["normalize"] = norm.kind
        x = norm(x)
    if getattr(pooler, "uses_graph", False):
        graph = pooler.config.graph
        cosines = pair_cosines(x, ptr)
        auto = graph.tau == "auto" or getattr(pooler, "tau_auto", False)
        if auto:
            graph.tau = tau_for_density(cosines, graph.edge_density)
            pooler.tau_auto = True
            report["target_edge_density"] = graph.edge_density
        report |= {"tau": graph.tau, "tau_auto": auto, "edge_density": edge_density(cosines, graph.tau)}
    pooler.input_fit = report
    return report
