"""Attention for bfloat16 tensors on a CPU, in query blocks, one head at a time (fast mode only).

PyTorch's CPU SDPA (its flash kernel) takes as long in bfloat16 as in float32: DINOv2-L at 896 px
(16 heads, 4,097 tokens, head dim 64) spends ~1.1 s per layer in it on one Zen 4 core. Two plain
bfloat16 GEMMs (oneDNN's avx512_bf16 kernels) around a softmax, over blocks of 512 queries of one
head, keep each block's scores (512 x 4,097 bfloat16, 4 MB) in cache and take ~0.65 s: 1.6-1.9x
faster at every size the model uses (577, 2,305 and 4,097 tokens), on 1 and 2 threads.

The price is that the scores are rounded to bfloat16 before the softmax (the flash kernel keeps
them float32; the softmax itself accumulates in float32). Centring the keys first (exact for the
softmax) keeps the scores small, and with them that rounding error. Measured against float64 on
random q/k/v: 3e-3 to 1.4e-2 of max|out| (the flash kernel in bf16: 1.5e-3 to 2.9e-3).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

QUERY_BLOCK = 512  # queries per block: the fastest of 128-1024 on 1 and 2 threads at 4,097 tokens


def uses_blocked_attention(q: torch.Tensor) -> bool:
    """Whether `attention` takes the blocked path for `q`: bfloat16 on a CPU, i.e. the bf16 parts of
    fast mode there (parity mode is float32 throughout and always runs SDPA)."""
    return q.device.type == "cpu" and q.dtype == torch.bfloat16


def blocked_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float | None = None,
                      block: int = QUERY_BLOCK) -> torch.Tensor:
    """softmax(scale q k^T) v, without a mask, block by block.

    Args:
        q: [B, heads, Nq, D] queries; k, v: [B, heads, Nk, D] keys and values (any strides).
        scale: logit scale; None = 1/sqrt(D) (as SDPA).
        block: queries per block.
    Returns:
        [B, heads, Nq, D] in q's dtype, contiguous.
    """
    B, H, Nq, D = q.shape
    Nk = k.shape[2]
    scale = D ** -0.5 if scale is None else scale
    # q is scaled before the GEMM (exact in bf16 for head dim 64: scale = 1/8)
    qs = (q * scale).reshape(B * H, Nq, D)
    # keys centred: softmax is unchanged (each row loses q . mean(k)), but the scores get smaller, and
    # so does their bf16 rounding error; without it a tiny model's NMS peak flipped on tennis.mp4
    kf = k.float()
    kc = (kf - kf.mean(dim=-2, keepdim=True)).to(k.dtype)
    kt = kc.reshape(B * H, Nk, D).transpose(1, 2).contiguous()  # [BH, D, Nk]
    vs = v.reshape(B * H, Nk, D).contiguous()
    out = torch.empty(B * H, Nq, D, dtype=q.dtype, device=q.device)
    for h in range(B * H):
        for start in range(0, Nq, block):
            scores = torch.mm(qs[h, start:start + block], kt[h])
            torch.mm(torch.softmax(scores, dim=-1), vs[h], out=out[h, start:start + block])
    return out.reshape(B, H, Nq, D)


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float | None = None) -> torch.Tensor:
    """Unmasked attention [B, heads, N, D]: `blocked_attention` for bfloat16 on a CPU, fused SDPA
    otherwise (bit-identical to a direct SDPA call)."""
    if uses_blocked_attention(q):
        return blocked_attention(q, k, v, scale)
    return F.scaled_dot_product_attention(q, k, v, scale=scale)
