"""Output activations of the heads (the reference's `postprocess*` rules), as plain functions.

- `exp_points`: xyz / max(|xyz|, 1e-8) * expm1(|xyz|)  (depth_mode 'exp': points, SMPL-X head
  translation, camera translation).
- `exp_confidence`: 1 + exp(x)  (conf_mode ('exp', 1, inf)).
- `score_sigmoid`: sigmoid(x) * (1 - 2e-6) + 1e-6  (detection scores, mask probabilities).
- `rgb_from_logits`: 2 * (score_sigmoid(x) - 0.5), range about [-1, 1].
"""
from __future__ import annotations

import torch


def exp_points(xyz: torch.Tensor) -> torch.Tensor:
    """[..., 3] raw -> [..., 3] with norm expm1(|raw|), direction kept."""
    d = xyz.norm(dim=-1, keepdim=True)
    return xyz / d.clip(min=1e-8) * torch.expm1(d)


def exp_confidence(x: torch.Tensor) -> torch.Tensor:
    """Confidence >= 1 from a raw channel (any shape)."""
    return 1 + x.exp()


def score_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """Probability in (1e-6, 1 - 1e-6) from logits (any shape)."""
    return torch.sigmoid(x) * (1 - 2e-6) + 1e-6


def rgb_from_logits(x: torch.Tensor) -> torch.Tensor:
    return (score_sigmoid(x) - 0.5) * 2
