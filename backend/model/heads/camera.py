"""Camera pose head: the decoded pose token -> camera-to-world pose of the current chunk.

`PoseHead` (keys `pose_head.mlp.fc1/fc2`): Linear(C -> 4C) -> GELU -> Linear(4C -> 7) giving the raw
(t (3), q (4)). `decode_pose` applies the 'exp' translation rule t * expm1(|t|) / max(|t|, 1e-8)
and normalises the quaternion, real part first (w, x, y, z), sign-flipped so that w >= 0.
Camera axes are OpenCV (x right, y down, z forward); the world is the chunk's first camera.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from backend.model.layers.mlp import Mlp


class PoseHead(nn.Module):
    def __init__(self, dim: int, mlp_ratio: int = 4) -> None:
        super().__init__()
        self.mlp = Mlp(dim, dim * mlp_ratio, 7)

    def forward(self, pose_token: torch.Tensor) -> torch.Tensor:
        """pose_token [B, C] (normalised) -> raw pose [B, 7]."""
        return self.mlp(pose_token)


def decode_pose(raw: torch.Tensor) -> torch.Tensor:
    """raw [B, 7] -> camera_pose [B, 7] = (tx, ty, tz, qw, qx, qy, qz), c2w, unit quaternion."""
    t = raw[..., :3]
    d = t.norm(dim=-1, keepdim=True)
    t = t * (torch.expm1(d) / d.clip(min=1e-8))  # same rule as exp_points, the reference's op order
    q = F.normalize(raw[..., 3:7], dim=-1)
    q = torch.where(q[..., :1] < 0, -q, q)
    return torch.cat((t, q), dim=-1)


def pose_to_matrix(camera_pose: torch.Tensor) -> torch.Tensor:
    """camera_pose [B, 7] -> 4x4 camera-to-world matrices [B, 4, 4]."""
    t, q = camera_pose[..., :3], camera_pose[..., 3:]
    w, x, y, z = q.unbind(-1)
    s = 2.0 / (q * q).sum(-1)
    rot = torch.stack([
        1 - s * (y * y + z * z), s * (x * y - z * w), s * (x * z + y * w),
        s * (x * y + z * w), 1 - s * (x * x + z * z), s * (y * z - x * w),
        s * (x * z - y * w), s * (y * z + x * w), 1 - s * (x * x + y * y),
    ], dim=-1).reshape(*q.shape[:-1], 3, 3)
    out = torch.zeros(*q.shape[:-1], 4, 4, dtype=q.dtype, device=q.device)
    out[..., :3, :3] = rot
    out[..., :3, 3] = t
    out[..., 3, 3] = 1
    return out
