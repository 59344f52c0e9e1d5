"""Attention layers of the CroCo/CUT3R transformer (parameter names as in the reference).

All take tokens [B, N, C] float32 and return [B, N, C]. Heads split C into `num_heads` groups of
consecutive channels. RoPE (see `rope.py`) is applied to q and k when a `RopeTable` is given. Attention itself is
`blocked_attention.attention`: fused SDPA, or bf16 blocks on a CPU in fast mode.
"""
from __future__ import annotations

import torch
from torch import nn

from backend.model.layers.blocked_attention import attention
from backend.model.layers.rope import RopeTable, apply_rope


class SelfAttention(nn.Module):
    """Multi-head self-attention with one fused `qkv` Linear and an output `proj`.

    Args:
        dim: token width C.
        num_heads: number of heads (head dim = C / num_heads).
        fp16_qk: round q and k to float16 around RoPE (CroCo image encoder quirk: the rotation is
            computed in float32 from the float16 values and rounded once more to float16).
    """

    def __init__(self, dim: int, num_heads: int, fp16_qk: bool = False) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.fp16_qk = fp16_qk
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, rope: RopeTable | None = None) -> torch.Tensor:
        B, N, C = x.shape
        # [B, N, 3, heads, hd] -> [B, heads, 3, N, hd], q/k/v are views (reference layout)
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads).transpose(1, 3)
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
        if rope is not None:
            if self.fp16_qk:
                dtype = q.dtype
                q = apply_rope(q.to(torch.float16), rope).to(dtype)
                k = apply_rope(k.to(torch.float16), rope).to(dtype)
            else:
                q = apply_rope(q, rope)
                k = apply_rope(k, rope)
        out = attention(q, k, v, scale=self.scale)
        return self.proj(out.transpose(1, 2).reshape(B, N, C))


class CrossAttention(nn.Module):
    """Multi-head cross-attention: queries from x, keys/values from a memory y.

    The second result is the TTT3R gate statistic, by `gate_stat`:
    - None: fused SDPA, no statistic (None);
    - "logits": attention computed explicitly (the reference's op order, bit-identical), returns
      the pre-softmax scaled logits [B, heads, Nq, Nk];
    - "key_mean": fused SDPA, returns only the logits' mean over the keys [B, heads, Nq] float32,
      computed without the logits: mean_j(scale q.k_j) = scale q.mean_j(k_j).
    """

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.projq = nn.Linear(dim, dim)
        self.projk = nn.Linear(dim, dim)
        self.projv = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def forward(
        self,
        query: torch.Tensor,
        memory: torch.Tensor,
        rope_q: RopeTable | None = None,
        rope_k: RopeTable | None = None,
        gate_stat: str | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        B, Nq, C = query.shape
        Nk = memory.shape[1]
        hd = C // self.num_heads
        q = self.projq(query).reshape(B, Nq, self.num_heads, hd).permute(0, 2, 1, 3)
        k = self.projk(memory).reshape(B, Nk, self.num_heads, hd).permute(0, 2, 1, 3)
        v = self.projv(memory).reshape(B, Nk, self.num_heads, hd).permute(0, 2, 1, 3)
        if rope_q is not None:
            q = apply_rope(q, rope_q)
        if rope_k is not None:
            k = apply_rope(k, rope_k)
        stat = None
        if gate_stat == "logits":
            stat = (q @ k.transpose(-2, -1)) * self.scale
            out = stat.softmax(dim=-1) @ v
        else:
            out = attention(q, k, v, scale=self.scale)
            if gate_stat == "key_mean":
                key_mean = k.float().mean(dim=-2, keepdim=True)  # [B, heads, 1, hd]
                stat = (q.float() @ key_mean.transpose(-2, -1))[..., 0] * self.scale
        return self.proj(out.transpose(1, 2).reshape(B, Nq, C)), stat


class DinoAttention(nn.Module):
    """DINOv2 self-attention (no RoPE) with the default 1/sqrt(head_dim) scale: fused SDPA, bit-identical
    to the reference run on CPU (blocked bf16 attention in fast mode on a CPU)."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        out = attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(B, N, C))
