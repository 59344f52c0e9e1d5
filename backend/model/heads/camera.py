"""Camera pose head: the decoded pose token -> camera-to-world pose of the current chunk.

`PoseHead` (keys `pose_head.mlp.fc1/fc2`): Linear(C -> 4C) -> GELU -> Linear(4C -> 7) giving the raw
(t (3), q (4)). `decode_pose` applies the 'exp' translation rule t * expm1(|t|) / max(|t|, 1e-8)
and normalises the quaternion, real part first (w, x, y, z), sign-flipped so that w >= 0.
Camera axes are OpenCV (x right, y down, z forward); the world is the chunk's first camera.
"""
from __future__ import annotations

import functools

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
    """camera_pose [B, 7] -> 4x4 camera-to-world matrices [B, 4, 4].

    The reference's quaternion_to_matrix, entry by entry: R_e = 1 - 2s (a + b) on the diagonal and
    2s (a ± b) off it, a and b products of two quaternion components, 2s = 2 / |q|^2. The products come
    from one outer product and are combined with the same operations in the same order, so the
    result is bit-identical to the 9-formula version with a fifth of the ops (this runs every frame).
    """
    t, q = camera_pose[..., :3], camera_pose[..., 3:]
    two_s = 2.0 / (q * q).sum(-1)
    products = (q[..., :, None] * q[..., None, :]).flatten(-2)  # [..., 16]: q_a * q_b at 4 a + b
    first, second, sign, diagonal = _rotation_terms(q.device, q.dtype)
    scaled = two_s[..., None] * (products[..., first] + products[..., second] * sign)
    rot = torch.where(diagonal, 1 - scaled, scaled).reshape(*q.shape[:-1], 3, 3)
    out = torch.zeros(*q.shape[:-1], 4, 4, dtype=q.dtype, device=q.device)
    out[..., :3, :3] = rot
    out[..., :3, 3] = t
    out[..., 3, 3].fill_(1)  # in place: a Python scalar assigned by indexing is a host->device copy
    return out


# (w, x, y, z) = components 0..3. Entry e of R (row-major) is [1 -] 2s (q_a q_b +/- q_c q_d).
_ROTATION_TERMS = (  # (a, b), (c, d), sign, diagonal
    ((2, 2), (3, 3), 1, True), ((1, 2), (3, 0), -1, False), ((1, 3), (2, 0), 1, False),
    ((1, 2), (3, 0), 1, False), ((1, 1), (3, 3), 1, True), ((2, 3), (1, 0), -1, False),
    ((1, 3), (2, 0), -1, False), ((2, 3), (1, 0), 1, False), ((1, 1), (2, 2), 1, True),
)


@functools.lru_cache(maxsize=8)
def _rotation_terms(device: torch.device, dtype: torch.dtype):
    with torch.inference_mode(False):  # normal tensors: usable in and out of inference mode
        first = torch.tensor([4 * a + b for (a, b), _, _, _ in _ROTATION_TERMS], device=device)
        second = torch.tensor([4 * c + d for _, (c, d), _, _ in _ROTATION_TERMS], device=device)
        sign = torch.tensor([s for _, _, s, _ in _ROTATION_TERMS], dtype=dtype, device=device)
        diagonal = torch.tensor([d for _, _, _, d in _ROTATION_TERMS], device=device)
    return first, second, sign, diagonal
