"""Multi-layer perceptrons with the reference's parameter names.

- `Mlp`: fc1 -> GELU(erf) -> fc2 (CroCo/DINOv2 transformer MLP, camera pose head).
- `RegressionMLP`: Linear -> ReLU -> Linear, registered as indices 0 and 2 of a Sequential
  (Multi-HMR's detection and offset heads: keys `mlp_classif.0`, `mlp_classif.2`).
- `SMPLDecoder`: `mlp.layers.0` Linear -> GELU -> `mlp.layers.2` Linear (Human3R's fusion,
  SMPL-X parameter and mask heads).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Mlp(nn.Module):
    """fc1 -> GELU (exact erf) -> fc2. Input [..., in_dim] -> [..., out_dim]."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int | None = None) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_dim, hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, out_dim or in_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = self.fc1.weight.dtype
        if x.dtype == dtype or torch.is_autocast_enabled(x.device.type):
            return self.fc2(F.gelu(self.fc1(x)))
        # bf16 weights in an fp32 region (fast mode's decoder): the MLP alone in bf16, output as x
        return self.fc2(F.gelu(self.fc1(x.to(dtype)))).to(x.dtype)


class RegressionMLP(nn.Sequential):
    """Linear(in, hidden) -> ReLU -> Linear(hidden, out) with Sequential indices 0, 1, 2."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int) -> None:
        super().__init__(nn.Linear(in_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, out_dim))


class _LayerList(nn.Module):
    """Holds `layers` = [Linear, GELU, Linear] (state-dict keys `layers.0`, `layers.2`)."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(in_dim, hidden_dim), nn.GELU(), nn.Linear(hidden_dim, out_dim)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class SMPLDecoder(nn.Module):
    """Two-layer GELU MLP: [..., in_dim] -> [..., out_dim], hidden = in_dim * mlp_ratio."""

    def __init__(self, in_dim: int, out_dim: int, mlp_ratio: int = 4) -> None:
        super().__init__()
        self.mlp = _LayerList(in_dim, in_dim * mlp_ratio, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x)
