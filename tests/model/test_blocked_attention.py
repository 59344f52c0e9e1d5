"""Blocked bf16 attention (fast mode on a CPU) against float64 attention, and the switch that keeps
parity mode on SDPA."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from backend.model.layers.blocked_attention import attention, blocked_attention, uses_blocked_attention


BOUND = 2e-2  # of max|out|


def _qkv(B, H, Nq, Nk, D, key_offset=0.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(B, H, Nq, D, generator=g)
    k = torch.randn(B, H, Nk, D, generator=g)
    # a direction shared by every key (as ViT keys have): the scores grow, softmax does not change
    k = k + key_offset * torch.randn(B, H, 1, D, generator=g)
    v = torch.randn(B, H, Nk, D, generator=g)
    return q.bfloat16(), k.bfloat16(), v.bfloat16()


def _error(out, q, k, v, scale=None):
    ref = F.scaled_dot_product_attention(q.double(), k.double(), v.double(), scale=scale)
    return float((out.double() - ref).abs().max() / ref.abs().max())


@pytest.mark.parametrize("shape", [(1, 4, 577, 577, 64), (2, 3, 1100, 700, 32), (1, 2, 5, 9, 48)],
                         ids=["square", "ragged-blocks-batch2", "tiny"])
@pytest.mark.parametrize("scale", [None, 0.3])
def test_blocked_attention_matches_float64_within_bf16_rounding(shape, scale):
    """Measured: 3e-3 to 1.4e-2 of max|out| (bf16 scores and probabilities), the flash kernel 1.5e-3
    to 2.9e-3; a wrong block or head would be off by ~1."""
    q, k, v = _qkv(*shape)
    out = blocked_attention(q, k, v, scale, block=256)
    assert out.shape == q.shape and out.dtype == torch.bfloat16
    assert _error(out, q, k, v, scale) <= BOUND


def test_centred_keys_keep_large_shared_scores_accurate():
    """Keys with a large common component make every score large; rounding those to bf16 would
    scramble the softmax unless the keys are centred first."""
    q, k, v = _qkv(1, 2, 300, 300, 64, key_offset=32.0)
    scale = 64 ** -0.5
    scores = ((q.float() * scale) @ k.float().transpose(-1, -2)).bfloat16().float()
    uncentred = _error((scores.softmax(-1) @ v.float()).bfloat16(), q, k, v)
    assert uncentred > 3 * BOUND  # the case is hard
    assert _error(blocked_attention(q, k, v), q, k, v) <= BOUND


def test_float32_runs_sdpa_bit_for_bit_and_bf16_runs_the_blocked_path():
    q, k, v = (t.float() for t in _qkv(1, 3, 200, 150, 64))
    assert not uses_blocked_attention(q)
    assert torch.equal(attention(q, k, v, scale=0.2), F.scaled_dot_product_attention(q, k, v, scale=0.2))
    qb, kb, vb = (t.bfloat16() for t in (q, k, v))
    assert uses_blocked_attention(qb)
    assert torch.equal(attention(qb, kb, vb), blocked_attention(qb, kb, vb))
