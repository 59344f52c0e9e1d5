"""Geometry of the post-processing, as the reference's demo does it: poses, chunk alignment, focal
estimation, rotation conversions. Pure torch, vectorised, on whatever device the inputs live on.

Conventions: cameras are OpenCV (x right, y down, z forward); `c2w` maps camera coordinates into the
world frame W (the first processed frame's camera); rotation matrices act on column vectors.
Quaternions from the model are real-first (w, x, y, z).
"""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from backend.model.heads.camera import pose_to_matrix


def pose_encoding_to_c2w(camera_pose: torch.Tensor) -> torch.Tensor:
    """Model `camera_pose` [..., 7] = (tx, ty, tz, qw, qx, qy, qz) -> camera-to-world [..., 4, 4].

    The one definition of the pose encoding lives with the camera head; the quaternion is used as
    given (s = 2 / |q|^2, as the reference's `quaternion_to_matrix`).
    """
    return pose_to_matrix(camera_pose)


class ChunkAligner:
    """Online chunk alignment, one kept frame at a time.

    After a reset the model's new chunk starts in the camera frame of the reset view, so every pose
    of chunk k is left-multiplied by the product of the reset views' c2w of chunks 0..k-1. The
    reference computes this after the run with a cumulative matrix product; here the running product
    (`base`) is the only state: aligned_i = base · c2w_i, and after a reset view base ← aligned_i.
    Overlap views (the re-processed reset image that starts the next chunk) must not be fed in.
    """

    def __init__(self) -> None:
        self.base: torch.Tensor | None = None  # [4, 4], None = identity

    def align(self, c2w: torch.Tensor, reset: bool) -> torch.Tensor:
        """c2w [4, 4] of a kept frame in its chunk's frame -> c2w [4, 4] in the first chunk's frame."""
        aligned = c2w if self.base is None else self.base @ c2w
        if reset:
            self.base = aligned
        return aligned


def transform_points(c2w: torch.Tensor, pts: torch.Tensor) -> torch.Tensor:
    """Apply a rigid 4x4 transform [4, 4] to points [..., 3] (R·p + t)."""
    rot, t = c2w[:3, :3], c2w[:3, 3]
    return pts @ rot.T + t


def estimate_focal_weiszfeld(pts3d: torch.Tensor, iterations: int = 10) -> torch.Tensor:
    """Focal length (pixels) of each view from its camera-frame point map (the reference's Weiszfeld estimate).

    Args:
        pts3d: [B, H, W, 3] points in each camera frame (`pts3d_in_self_view`).
    Returns:
        [B] focal lengths in model pixels (same for x and y), principal point (W div 2, H div 2),
        OpenCV pixel convention (pixel (col, row) at integer coordinates). All pixels count (no
        confidence), NaN/inf of X/Z become 0, 10 Weiszfeld re-weightings with distance clamp 1e-8,
        result clipped to >= 0 — the reference's `estimate_focal_knowing_depth(..., 'weiszfeld')`.
    """
    b, h, w, _ = pts3d.shape
    pixels = _centred_pixel_grid(h, w, pts3d.device, pts3d.dtype)  # [2, HW]: x, y planes
    focals = []
    for view in pts3d.reshape(b, -1, 3):
        # a = (X/Z, Y/Z) as two contiguous planes [2, HW]; few, fused ops per iteration: the map is
        # small, so the op count, not the arithmetic, sets the cost
        z = view[:, 2]
        xy_over_z = torch.stack([view[:, 0] / z, view[:, 1] / z]).nan_to_num_(posinf=0.0, neginf=0.0)
        dots = torch.stack([(xy_over_z * pixels).sum(0), (xy_over_z * xy_over_z).sum(0)])  # [2, HW]
        sums = dots.sum(1)  # the reference's ratio of means is this ratio of sums
        focal = sums[0:1] / sums[1:2]
        for _ in range(iterations):
            squares = torch.addcmul(pixels, xy_over_z, focal, value=-1.0).square_()  # (pixel - f * xy/z)^2
            # 1 / max(|r|, 1e-8) with |r| = sqrt(rx^2 + ry^2), the reference's norm
            weight = (squares[0] + squares[1]).clamp_min_(1e-16).rsqrt_()
            sums = dots @ weight
            focal = sums[0:1] / sums[1:2]
        focals.append(focal)
    return torch.cat(focals).clip(min=0.0)


@functools.lru_cache(maxsize=8)
def _centred_pixel_grid(h: int, w: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """[2, h*w]: rows (x - w div 2) and (y - h div 2) of every pixel, row-major (cached per size)."""
    with torch.inference_mode(False):  # a normal tensor: usable inside and outside inference mode
        ys, xs = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij")
        return torch.stack([xs.reshape(-1) - w // 2, ys.reshape(-1) - h // 2]).to(dtype)


def intrinsics_matrix(focal: torch.Tensor, pp: tuple[float, float] | torch.Tensor) -> torch.Tensor:
    """[[f, 0, ppx], [0, f, ppy], [0, 0, 1]] from a scalar focal tensor; same dtype/device."""
    k = torch.zeros(3, 3, dtype=focal.dtype, device=focal.device)
    k[0, 0] = focal
    k[1, 1] = focal
    k[0, 2] = float(pp[0])
    k[1, 2] = float(pp[1])
    k[2, 2] = 1.0
    return k


def unpad_square_map(square: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Map a padded-square map [B, R, R] back to the model image [B, h, w] (reference `unpad_image`).

    Nearest-neighbour resize R -> M = max(h, w), then a centre crop of (h, w) with offsets
    ((M - h) div 2, (M - w) div 2).
    """
    m = max(h, w)
    resized = F.interpolate(square[:, None], size=(m, m), mode="nearest")[:, 0]
    top, left = (m - h) // 2, (m - w) // 2
    return resized[:, top:top + h, left:left + w]


def _quat_candidate_maps() -> tuple[torch.Tensor, torch.Tensor]:
    """The four (unnormalised) quaternion formulas of Shepperd's method are affine in the 9 matrix
    entries: q_c = R.flatten() @ W[:, c] + b[c]. Returns W [9, 4 * 4] and b [4 * 4] (float64)."""
    w = torch.zeros(9, 4, 4, dtype=torch.float64)
    b = torch.zeros(4, 4, dtype=torch.float64)

    def e(r: int, c: int) -> int:
        return 3 * r + c

    for i in range(3):  # pivot on the diagonal entry i
        j, k = (i + 1) % 3, (i + 2) % 3
        b[i, i] = 1.0  # q_i = 1 - trace + 2 m_ii = 1 + m_ii - m_jj - m_kk
        w[e(i, i), i, i], w[e(j, j), i, i], w[e(k, k), i, i] = 1.0, -1.0, -1.0
        w[e(j, i), i, j] = w[e(i, j), i, j] = 1.0  # q_j = m_ji + m_ij
        w[e(k, i), i, k] = w[e(i, k), i, k] = 1.0  # q_k = m_ki + m_ik
        w[e(k, j), i, 3], w[e(j, k), i, 3] = 1.0, -1.0  # q_w = m_kj - m_jk
    # pivot on the trace: (m21 - m12, m02 - m20, m10 - m01, 1 + trace)
    w[e(2, 1), 3, 0], w[e(1, 2), 3, 0] = 1.0, -1.0
    w[e(0, 2), 3, 1], w[e(2, 0), 3, 1] = 1.0, -1.0
    w[e(1, 0), 3, 2], w[e(0, 1), 3, 2] = 1.0, -1.0
    b[3, 3] = 1.0
    w[e(0, 0), 3, 3] = w[e(1, 1), 3, 3] = w[e(2, 2), 3, 3] = 1.0
    return w.reshape(9, 16), b.reshape(16)


_QUAT_W, _QUAT_B = _quat_candidate_maps()


@functools.lru_cache(maxsize=8)
def _quat_maps_on(device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.inference_mode(False):  # normal tensors, usable in and out of inference mode
        return _QUAT_W.to(device=device, dtype=dtype), _QUAT_B.to(device=device, dtype=dtype)


def rotmat_to_quat_xyzw(rot: torch.Tensor) -> torch.Tensor:
    """Rotation matrices [..., 3, 3] -> unit quaternions [..., 4] (x, y, z, w).

    Largest-of(diagonal, trace) rule (Shepperd's method, as in scipy/roma): of the four algebraically
    equal formulas the one with the largest pivot is used, which is the well-conditioned one. All
    four are affine in the matrix entries, so they come out of one small matmul.
    """
    diag = torch.diagonal(rot, dim1=-2, dim2=-1)  # [..., 3]
    choice = torch.cat([diag, diag.sum(-1, keepdim=True)], -1).argmax(-1)  # first maximum on ties
    flat = rot.reshape(*rot.shape[:-2], 9)
    w, b = _quat_maps_on(rot.device, rot.dtype)
    cands = (flat @ w + b).reshape(*rot.shape[:-2], 4, 4)  # [..., candidate, xyzw]
    quat = torch.gather(cands, -2, choice[..., None, None].expand(*choice.shape, 1, 4))[..., 0, :]
    return quat / quat.norm(dim=-1, keepdim=True)


def quat_xyzw_to_rotvec(quat: torch.Tensor) -> torch.Tensor:
    """Unit quaternions [..., 4] (x, y, z, w) -> axis-angle [..., 3], shortest arc (angle in [0, pi]).

    rotvec = v * angle / sin(angle / 2) with angle / 2 = atan2(|v|, w), written with the normalised
    sinc (exactly 1 at 0, accurate near it), so small angles need no special case.
    """
    quat = torch.where(quat[..., 3:4] < 0, -quat, quat)
    vec = quat[..., :3]
    half = torch.atan2(vec.norm(dim=-1, keepdim=True), quat[..., 3:4])
    return vec * (2.0 / torch.sinc(half / torch.pi))


def rotmat_to_rotvec(rot: torch.Tensor) -> torch.Tensor:
    """Rotation matrices [..., 3, 3] -> axis-angle [..., 3] (via the unit quaternion, shortest arc)."""
    return quat_xyzw_to_rotvec(rotmat_to_quat_xyzw(rot))


def rotvec_to_rotmat(rotvec: torch.Tensor) -> torch.Tensor:
    """Axis-angle [..., 3] -> rotation matrices [..., 3, 3] (Rodrigues; first order below 1e-6 rad)."""
    angle = rotvec.norm(dim=-1, keepdim=True)
    small = angle < 1e-6
    axis = rotvec / torch.where(small, torch.ones_like(angle), angle)
    x, y, z = axis.unbind(-1)
    zero = torch.zeros_like(x)
    kmat = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], -1).reshape(*x.shape, 3, 3)
    eye = torch.eye(3, dtype=rotvec.dtype, device=rotvec.device).expand(kmat.shape)
    s, c = torch.sin(angle)[..., None], torch.cos(angle)[..., None]
    full = eye + s * kmat + (1 - c) * (kmat @ kmat)
    rx, ry, rz = rotvec.unbind(-1)
    first = eye + torch.stack([zero, -rz, ry, rz, zero, -rx, -ry, rx, zero], -1).reshape(*x.shape, 3, 3)
    return torch.where(small[..., None], first, full)
