"""DINOv2 ViT backbone of the human branch (Multi-HMR's fine-tuned copy; keys `backbone.encoder.*`).

Input: the padded square image [1, 3, R, R] in the CUT3R [-1, 1] range; it is re-normalised with
ImageNet mean/std inside (`imagenet_renormalise`). Output: the last block's tokens after the final
LayerNorm with the class token dropped, [1, (R/14)^2, dim] row-major.

The stored position table covers a 37x37 grid (518 px). It is resized on every call with bicubic
interpolation driven by *scale factors* ((g + 0.1) / 37, not an output size), exactly like
DINOv2's `interpolate_pos_encoding`; the class entry is not interpolated. The resized table only
depends on the weights and R, so it is cached until the parameter changes.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from backend.model.layers.blocks import DinoBlock, layer_norm

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def imagenet_renormalise(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """[-1, 1] image [B, 3, H, W] -> ImageNet-normalised (mean/std [1, 3, 1, 1]), the reference's op order."""
    return (x * 0.5 + 0.5 - mean) / std


class _DinoPatchEmbed(nn.Module):
    def __init__(self, patch_size: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class DinoVisionTransformer(nn.Module):
    """The ViT itself (keys `cls_token`, `pos_embed`, `mask_token`, `patch_embed.proj`, `blocks.N`, `norm`)."""

    def __init__(self, dim: int, depth: int, num_heads: int, mlp_ratio: float, patch_size: int,
                 pos_grid: int, interpolate_offset: float) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.pos_grid = pos_grid
        self.interpolate_offset = interpolate_offset
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, pos_grid * pos_grid + 1, dim))
        self.mask_token = nn.Parameter(torch.zeros(1, dim))  # unused (masked pre-training)
        self.patch_embed = _DinoPatchEmbed(patch_size, dim)
        self.blocks = nn.ModuleList(DinoBlock(dim, num_heads, mlp_ratio) for _ in range(depth))
        self.norm = layer_norm(dim)
        self._pos_cache: tuple[tuple, torch.Tensor] | None = None

    def interpolated_pos_embed(self, grid: int) -> torch.Tensor:
        """Position table for a grid x grid token map: [1, 1 + grid^2, dim] float32."""
        key = (grid, self.pos_embed.device, self.pos_embed.data_ptr(), self.pos_embed._version,
               torch.is_inference_mode_enabled())
        if self._pos_cache is not None and self._pos_cache[0] == key:
            return self._pos_cache[1]
        table = self.pos_embed.float()
        dim = table.shape[-1]
        m = self.pos_grid
        if grid == m:
            out = table
        else:
            scale = float(grid + self.interpolate_offset) / m
            patch = table[:, 1:].reshape(1, m, m, dim).permute(0, 3, 1, 2)
            patch = F.interpolate(patch, scale_factor=(scale, scale), mode="bicubic", antialias=False)
            if patch.shape[-2:] != (grid, grid):
                raise ValueError(f"DINOv2 position table resized to {tuple(patch.shape[-2:])}, expected {grid}x{grid}")
            patch = patch.permute(0, 2, 3, 1).reshape(1, -1, dim)
            out = torch.cat((table[:, 0][None], patch), dim=1)
        if not out.requires_grad:  # never cache a piece of an autograd graph
            self._pos_cache = (key, out)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, 3, R, R] ImageNet-normalised -> normalised patch tokens [B, (R/14)^2, dim]."""
        grid = x.shape[-1] // self.patch_size
        tokens = self.patch_embed(x)
        tokens = torch.cat((self.cls_token.expand(tokens.shape[0], -1, -1), tokens), dim=1)
        tokens = tokens + self.interpolated_pos_embed(grid)
        for blk in self.blocks:
            tokens = blk(tokens)
        return self.norm(tokens)[:, 1:]


class DinoV2Backbone(nn.Module):
    """Wrapper matching Multi-HMR's `Dinov2Backbone` (the ViT under `.encoder`)."""

    def __init__(self, cfg) -> None:
        super().__init__()
        self.patch_size = cfg.patch_size
        self.embed_dim = cfg.embed_dim
        self.encoder = DinoVisionTransformer(
            cfg.embed_dim, cfg.depth, cfg.num_heads, cfg.mlp_ratio, cfg.patch_size, cfg.pos_grid, cfg.interpolate_offset
        )
        self._pixel_stats: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    def pixel_stats(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """ImageNet mean/std [1, 3, 1, 1] float32 on `device`, made once per device (a constant built
        from host data on every frame would be a blocking host->device copy on a GPU)."""
        stats = self._pixel_stats.get(device)
        if stats is None:
            stats = tuple(torch.tensor(v, device=device).reshape(1, 3, 1, 1) for v in (IMAGENET_MEAN, IMAGENET_STD))
            self._pixel_stats[device] = stats
        return stats

    def forward(self, img_mhmr: torch.Tensor) -> torch.Tensor:
        """img_mhmr [B, 3, R, R] in [-1, 1] -> tokens [B, (R/14)^2, dim]."""
        return self.encoder(imagenet_renormalise(img_mhmr, *self.pixel_stats(img_mhmr.device)))
