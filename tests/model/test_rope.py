"""RoPE2D semantics: rotate-half pairing inside each half, y half first, base 100, negative positions."""
from __future__ import annotations

import math

import torch

from backend.model.layers.rope import apply_rope, make_rope_table, rope_inv_freq


def _manual(tokens: torch.Tensor, y: int, x: int, base: float = 100.0) -> torch.Tensor:
    """Reference rotation of one token [D] written out pair by pair."""
    D = tokens.shape[-1]
    Q = D // 4
    out = tokens.clone().double()
    for half, p in ((0, y), (1, x)):
        off = half * D // 2
        for d in range(Q):
            theta = p * base ** (-d / Q)
            u, v = tokens[off + d].double(), tokens[off + Q + d].double()
            out[off + d] = u * math.cos(theta) - v * math.sin(theta)
            out[off + Q + d] = v * math.cos(theta) + u * math.sin(theta)
    return out


def test_inv_freq_base_100():
    f = rope_inv_freq(64, 100.0)
    assert f.shape == (16,)
    torch.testing.assert_close(f, torch.tensor([100.0 ** (-d / 16) for d in range(16)]), rtol=1e-6, atol=0)
    assert rope_inv_freq(48, 100.0).shape == (12,)  # state stream head dim 48 -> Q = 12


def test_matches_pairwise_rotation_including_negative_positions():
    torch.manual_seed(0)
    for head_dim in (64, 48, 8):
        pos = torch.tensor([[[-1, -1], [0, 0], [3, 7], [17, 31]]])
        tok = torch.randn(1, 2, 4, head_dim)
        out = apply_rope(tok, make_rope_table(pos, head_dim))
        for h in range(2):
            for i, (y, x) in enumerate(pos[0].tolist()):
                torch.testing.assert_close(out[0, h, i].double(), _manual(tok[0, h, i], y, x), atol=1e-5, rtol=1e-5)


def test_relative_position_property():
    """q(p) . k(p') depends only on p - p' (per axis)."""
    torch.manual_seed(1)
    q, k = torch.randn(1, 1, 1, 64).double(), torch.randn(1, 1, 1, 64).double()

    def dot(pq, pk):
        tq = make_rope_table(torch.tensor([[pq]]), 64)
        tk = make_rope_table(torch.tensor([[pk]]), 64)
        return (apply_rope(q.float(), tq).double() * apply_rope(k.float(), tk).double()).sum()

    torch.testing.assert_close(dot((2, 5), (1, 1)), dot((5, 9), (4, 5)), atol=1e-4, rtol=1e-4)


def test_half_precision_round_trip():
    """A float16 input is rotated in float32 and rounded once to float16."""
    torch.manual_seed(2)
    tok = torch.randn(1, 1, 3, 64).half()
    table = make_rope_table(torch.tensor([[[1, 2], [3, 4], [-1, -1]]]), 64)
    out = apply_rope(tok, table)
    assert out.dtype == torch.float16
    assert torch.equal(out, apply_rope(tok.float(), table).half())
