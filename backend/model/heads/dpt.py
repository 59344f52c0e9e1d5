"""DPT dense head (CroCo `DPTOutputAdapter` as fixed by DUSt3R), one instance per output map.

Input: four token maps (hooks) [B, N_H*N_W, C_k] with N_H = H/16, N_W = W/16 (row-major), token
widths (enc_dim, dec_dim, dec_dim, dec_dim). Output: [B, num_channels, H, W] raw (before the
activations in `activations.py`).

Keys: `act_postprocess.{0..3}.*`, `scratch.layer{1..4}_rn.weight` registered a second time as
`scratch.layer_rn.{0..3}.weight` (the reference's aliasing, so both names are in the state dict),
`scratch.refinenet{1..4}.*`, `head.{0,2,4}.*`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Upsample2x(nn.Module):
    """Bilinear x2 upsampling with align_corners=True (no parameters)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)


class ResidualConvUnit(nn.Module):
    """z + conv2(relu(conv1(relu(z)))), 3x3 convs with bias."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(dim, dim, 3, padding=1)
        self.conv2 = nn.Conv2d(dim, dim, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out = self.conv2(F.relu(self.conv1(F.relu(z))))
        return out + z


class FeatureFusionBlock(nn.Module):
    """(a [+ RCU1(skip)]) -> RCU2 -> upsample x2 (align_corners) -> 1x1 `out_conv`."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.out_conv = nn.Conv2d(dim, dim, 1)
        self.resConfUnit1 = ResidualConvUnit(dim)
        self.resConfUnit2 = ResidualConvUnit(dim)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        if skip is not None:
            x = x + self.resConfUnit1(skip)
        x = self.resConfUnit2(x)
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
        return self.out_conv(x)


class Scratch(nn.Module):
    def __init__(self, layer_dims: tuple[int, ...], feature_dim: int) -> None:
        super().__init__()
        self.layer1_rn = nn.Conv2d(layer_dims[0], feature_dim, 3, padding=1, bias=False)
        self.layer2_rn = nn.Conv2d(layer_dims[1], feature_dim, 3, padding=1, bias=False)
        self.layer3_rn = nn.Conv2d(layer_dims[2], feature_dim, 3, padding=1, bias=False)
        self.layer4_rn = nn.Conv2d(layer_dims[3], feature_dim, 3, padding=1, bias=False)
        # the same four convs again under a second name (reference aliasing)
        self.layer_rn = nn.ModuleList([self.layer1_rn, self.layer2_rn, self.layer3_rn, self.layer4_rn])
        self.refinenet1 = FeatureFusionBlock(feature_dim)
        self.refinenet2 = FeatureFusionBlock(feature_dim)
        self.refinenet3 = FeatureFusionBlock(feature_dim)
        self.refinenet4 = FeatureFusionBlock(feature_dim)


def _act_postprocess(token_dims: tuple[int, ...], layer_dims: tuple[int, ...]) -> nn.ModuleList:
    """Per hook: project tokens and bring them to strides 4, 8, 16, 32 of the image."""
    d0, d1, d2, d3 = layer_dims
    return nn.ModuleList([
        nn.Sequential(nn.Conv2d(token_dims[0], d0, 1), nn.ConvTranspose2d(d0, d0, kernel_size=4, stride=4)),
        nn.Sequential(nn.Conv2d(token_dims[1], d1, 1), nn.ConvTranspose2d(d1, d1, kernel_size=2, stride=2)),
        nn.Sequential(nn.Conv2d(token_dims[2], d2, 1)),
        nn.Sequential(nn.Conv2d(token_dims[3], d3, 1), nn.Conv2d(d3, d3, 3, stride=2, padding=1)),
    ])


class DPTHead(nn.Module):
    """Dense prediction head. See module docstring for shapes."""

    def __init__(self, token_dims: tuple[int, int, int, int], layer_dims: tuple[int, ...], feature_dim: int,
                 last_dim: int, num_channels: int, patch_size: int = 16) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.scratch = Scratch(layer_dims, feature_dim)
        self.head = nn.Sequential(
            nn.Conv2d(feature_dim, feature_dim // 2, 3, padding=1),
            Upsample2x(),
            nn.Conv2d(feature_dim // 2, last_dim, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(last_dim, num_channels, 1),
        )
        self.act_postprocess = _act_postprocess(token_dims, layer_dims)

    def forward(self, hooks: list[torch.Tensor], image_size: tuple[int, int]) -> torch.Tensor:
        H, W = image_size
        nh, nw = H // self.patch_size, W // self.patch_size
        maps = [t.contiguous().reshape(t.shape[0], nh, nw, t.shape[2]).permute(0, 3, 1, 2) for t in hooks]
        maps = [self.act_postprocess[i](m) for i, m in enumerate(maps)]
        maps = [self.scratch.layer_rn[i](m) for i, m in enumerate(maps)]
        path4 = self.scratch.refinenet4(maps[3])[:, :, : maps[2].shape[2], : maps[2].shape[3]]
        path3 = self.scratch.refinenet3(path4, maps[2])
        path2 = self.scratch.refinenet2(path3, maps[1])
        path1 = self.scratch.refinenet1(path2, maps[0])
        return self.head(path1)
