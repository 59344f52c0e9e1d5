"""CroCo/CUT3R image encoder: 16-px patch embedding + 24 RoPE ViT blocks + final LayerNorm.

The encoder's modules live directly on `Human3R` (state-dict keys `patch_embed.proj.*`,
`enc_blocks.N.*`, `enc_norm.*`, and the unused ray-map twin `patch_embed_ray_map.*`,
`enc_blocks_ray_map.*`, `enc_norm_ray_map.*`); this file builds them and runs them.
"""
from __future__ import annotations

import torch
from torch import nn

from backend.model.layers.blocks import EncoderBlock, layer_norm
from backend.model.layers.rope import make_rope_table


class PatchEmbed(nn.Module):
    """Conv2d(in_chans -> dim, kernel = stride = patch) then row-major flatten.

    Image [B, C, H, W] -> tokens [B, (H/p)*(W/p), dim]; no norm, no absolute position embedding.
    """

    def __init__(self, patch_size: int, in_chans: int, dim: int) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return self.proj(img).flatten(2).transpose(1, 2)


def grid_positions(rows: int, cols: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Integer (y, x) positions of a row-major token grid: [1, rows*cols, 2] int64."""
    y = torch.arange(rows, device=device)
    x = torch.arange(cols, device=device)
    return torch.cartesian_prod(y, x)[None]


def build_encoder_blocks(dim: int, depth: int, num_heads: int, mlp_ratio: float, fp16_qk: bool) -> nn.ModuleList:
    return nn.ModuleList(EncoderBlock(dim, num_heads, mlp_ratio, fp16_qk=fp16_qk) for _ in range(depth))


class ImageEncoderParts:
    """Builds the image encoder's modules (to be registered on the owning model)."""

    @staticmethod
    def build(cfg) -> dict[str, nn.Module]:
        return {
            "patch_embed": PatchEmbed(cfg.patch_size, 3, cfg.enc_embed_dim),
            "enc_blocks": build_encoder_blocks(
                cfg.enc_embed_dim, cfg.enc_depth, cfg.enc_num_heads, cfg.mlp_ratio, fp16_qk=True
            ),
            "enc_norm": layer_norm(cfg.enc_embed_dim),
        }

    @staticmethod
    def build_ray_map(cfg) -> dict[str, nn.Module]:
        """The ray-map encoder (present in the checkpoint, never run by online inference)."""
        return {
            "patch_embed_ray_map": PatchEmbed(cfg.patch_size, 6, cfg.enc_embed_dim),
            "enc_blocks_ray_map": build_encoder_blocks(
                cfg.enc_embed_dim, cfg.ray_enc_depth, cfg.ray_enc_num_heads, cfg.mlp_ratio, fp16_qk=False
            ),
            "enc_norm_ray_map": layer_norm(cfg.enc_embed_dim),
        }


def encode_image(
    patch_embed: PatchEmbed,
    blocks: nn.ModuleList,
    norm: nn.LayerNorm,
    img: torch.Tensor,
    num_heads: int,
    rope_base: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the encoder on img [1, 3, H, W] (float32, [-1, 1]).

    Returns:
        tokens [1, (H/16)*(W/16), enc_dim] after `enc_norm`, positions [1, N, 2] int64 (y, x).
    """
    p = patch_embed.patch_size
    rows, cols = img.shape[-2] // p, img.shape[-1] // p
    x = patch_embed(img).float()  # the residual stream stays float32 when the conv runs in bf16 (fast mode)
    pos = grid_positions(rows, cols, img.device).expand(x.shape[0], -1, -1)
    rope = make_rope_table(pos, x.shape[-1] // num_heads, rope_base)
    for blk in blocks:
        x = blk(x, rope)
    return norm(x), pos
