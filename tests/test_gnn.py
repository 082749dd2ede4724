"""TokenGNN: the GLOT pooler on its readout's column blocks, under every jumping-knowledge mode."""

from __future__ import annotations

import pytest
import torch


@pytest.mark.parametrize("jk", ["cat", "max", "mean", "none"])
def test_glot_pools_its_token_blocks_as_it_would_their_concatenation(jk: str) -> None:
    """GLOT hands the readout u as column blocks ([states, layers] under JK cat); pooling them must give the
    outputs and parameter gradients of the readout on the concatenated u (the paper's z = sum_i pi_i u_i)."""
    import glot

    torch.manual_seed(3)
    pooler = glot.build_pooler("glot", 12, tau=0.1, num_layers=2, hidden_dim=5, readout_hidden=6, jk=jk)
    pooler = pooler.double()  # float64: the two sums differ only in rounding order
    torch.nn.init.normal_(pooler.readout.score.weight)
    x = torch.randn(17, 12, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    ptr = torch.tensor([0, 5, 6, 13, 17])
    blocks = pooler.token_blocks(x, ptr)
    assert len(blocks) == (2 if jk == "cat" else 1)
    outs = [pooler.forward_packed(x, ptr), pooler.readout(pooler.token_states(x, ptr), ptr)]
    params = list(pooler.parameters())
    grads = [torch.autograd.grad(out.square().sum(), params, allow_unused=True) for out in outs]
    torch.testing.assert_close(outs[0], outs[1])
    for a, b in zip(*grads, strict=True):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b)
