"""2D rotary position embedding ("RoPE100") with the semantics of CroCo's cuRoPE kernel.

Per attention head of dimension D (a multiple of 4), the first D/2 channels encode the token's y
(row) position and the last D/2 its x (column) position. Inside each half, channel d is rotated
together with channel d + D/4 ("rotate-half" pairing, not interleaved), by the angle
``pos * inv_freq[d]`` with ``inv_freq[d] = 1 / base ** (2d / (D/2))``, computed in float32.
Negative positions are allowed (the pose token sits at (-1, -1)).

The angle tables depend only on the positions and the head dim, so callers build a `RopeTable`
once per position set and reuse it across layers (the decoder has 12 of them).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class RopeTable:
    """cos/sin of the rotation angles for one position set and one head dim.

    Shapes: each [B, 1, N, D/2] float32 (broadcast over heads); `cos_y`/`sin_y` for the y half,
    `cos_x`/`sin_x` for the x half, already duplicated for the rotate-half pairing.
    """

    cos_y: torch.Tensor
    sin_y: torch.Tensor
    cos_x: torch.Tensor
    sin_x: torch.Tensor


def rope_inv_freq(head_dim: int, base: float, device: torch.device | None = None) -> torch.Tensor:
    """Inverse frequencies [head_dim/4] float32 (same op order as the CroCo reference)."""
    if head_dim % 4:
        raise ValueError(f"RoPE2D needs a head dim that is a multiple of 4, got {head_dim}")
    half = head_dim // 2
    return 1.0 / (base ** (torch.arange(0, half, 2, device=device).float() / half))


def make_rope_table(positions: torch.Tensor, head_dim: int, base: float = 100.0) -> RopeTable:
    """Build the angle table for integer `positions` [B, N, 2] (y, x), any sign, int64."""
    inv_freq = rope_inv_freq(head_dim, base, positions.device)

    def cos_sin(p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        angles = p.float()[..., None] * inv_freq  # [B, N, D/4]
        angles = torch.cat((angles, angles), dim=-1)[:, None]  # [B, 1, N, D/2]
        return angles.cos(), angles.sin()

    cos_y, sin_y = cos_sin(positions[..., 0])
    cos_x, sin_x = cos_sin(positions[..., 1])
    return RopeTable(cos_y, sin_y, cos_x, sin_x)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rope(tokens: torch.Tensor, table: RopeTable) -> torch.Tensor:
    """Rotate `tokens` [B, heads, N, D] by `table`; computed in float32, returned in tokens' dtype.

    A float16 input is rotated in float32 and rounded once back to float16 (the cuRoPE kernel's
    behaviour, which the CroCo encoder relies on).
    """
    dtype = tokens.dtype
    t = tokens.float()
    y, x = t.chunk(2, dim=-1)
    y = y * table.cos_y + _rotate_half(y) * table.sin_y
    x = x * table.cos_x + _rotate_half(x) * table.sin_x
    return torch.cat((y, x), dim=-1).to(dtype)
