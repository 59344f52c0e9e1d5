"""Transformer blocks of CroCo/CUT3R/DINOv2 (pre-norm, LayerNorm eps 1e-6, GELU MLP ratio 4).

- `EncoderBlock`: x += Attn(LN1 x); x += MLP(LN2 x)  (CroCo encoder, ray-map encoder).
- `DecoderBlock`: self-attention, cross-attention to a normalised memory (`norm_y`), MLP.
- `ConditionModulationBlock`: encoder block whose LayerNorms are modulated by a condition
  vector (adaLN, `ModLN`); used by the `final_transform` of the world-frame point head.
- `DinoBlock`: DINOv2 block with LayerScale (`ls1.gamma`, `ls2.gamma`).
"""
from __future__ import annotations

import torch
from torch import nn

from backend.model.layers.attention import CrossAttention, DinoAttention, SelfAttention
from backend.model.layers.mlp import Mlp
from backend.model.layers.rope import RopeTable

LN_EPS = 1e-6


def layer_norm(dim: int) -> nn.LayerNorm:
    return nn.LayerNorm(dim, eps=LN_EPS)


class EncoderBlock(nn.Module):
    """Pre-norm ViT block with RoPE. Tokens [B, N, dim] -> [B, N, dim]."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, fp16_qk: bool = False) -> None:
        super().__init__()
        self.norm1 = layer_norm(dim)
        self.attn = SelfAttention(dim, num_heads, fp16_qk=fp16_qk)
        self.norm2 = layer_norm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, rope: RopeTable | None) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), rope)
        return x + self.mlp(self.norm2(x))


class DecoderBlock(nn.Module):
    """CroCo decoder block: query stream x attends to itself, then to memory y.

    Returns (new x [B, Nx, dim], the cross-attention's TTT3R gate statistic or None; see
    `CrossAttention` for `gate_stat`).
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.norm1 = layer_norm(dim)
        self.attn = SelfAttention(dim, num_heads)
        self.cross_attn = CrossAttention(dim, num_heads)
        self.norm2 = layer_norm(dim)
        self.norm3 = layer_norm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.norm_y = layer_norm(dim)

    def forward(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        rope_x: RopeTable | None = None,
        rope_y: RopeTable | None = None,
        gate_stat: str | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = x + self.attn(self.norm1(x), rope_x)
        cross, stat = self.cross_attn(self.norm2(x), self.norm_y(y), rope_x, rope_y, gate_stat)
        x = x + cross
        return x + self.mlp(self.norm3(x)), stat


class ModLN(nn.Module):
    """adaLN: LN(x) * (1 + scale) + shift, (shift, scale) = Linear(SiLU(c)) split in halves.

    Keys `norm.*` and `mlp.1.*` (index 0 is the parameter-free SiLU).
    """

    def __init__(self, dim: int, cond_dim: int) -> None:
        super().__init__()
        self.norm = layer_norm(dim)
        self.mlp = nn.Sequential(nn.SiLU(), nn.Linear(cond_dim, dim * 2))

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        shift, scale = self.mlp(cond).chunk(2, dim=-1)  # each [B, dim]
        return self.norm(x) * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


class ConditionModulationBlock(nn.Module):
    """Encoder block with condition-modulated norms. x [B, N, dim], cond [B, dim]."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.norm1 = ModLN(dim, dim)
        self.attn = SelfAttention(dim, num_heads)
        self.norm2 = ModLN(dim, dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, cond: torch.Tensor, rope: RopeTable | None) -> torch.Tensor:
        x = x + self.attn(self.norm1(x, cond), rope)
        return x + self.mlp(self.norm2(x, cond))


class LayerScale(nn.Module):
    """Per-channel scaling x * gamma (not in place)."""

    def __init__(self, dim: int, init_value: float = 1.0) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), init_value))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class DinoBlock(nn.Module):
    """DINOv2 block: x += ls1(Attn(LN1 x)); x += ls2(MLP(LN2 x))."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.norm1 = layer_norm(dim)
        self.attn = DinoAttention(dim, num_heads)
        self.ls1 = LayerScale(dim)
        self.norm2 = layer_norm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.ls2 = LayerScale(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))
