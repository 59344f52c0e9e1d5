"""Rotation conversions in numpy (batched over any leading dims), float64 throughout.

Quaternions are (w, x, y, z), the order of Blender's `rotation_quaternion` (F-curve index 0..3).
Axis-angle vectors are rotation vectors (unit axis times angle in radians), as SMPL-X uses them.
"""
from __future__ import annotations

import numpy as np


def axis_angle_to_matrix(aa: np.ndarray) -> np.ndarray:
    """Rotation vectors [..., 3] -> rotation matrices [..., 3, 3] (Rodrigues; exact near zero).

    R = I + a·K + b·K² with K = [v]×, a = sin(t)/t, b = (1 - cos t)/t², t = |v|, written out
    element-wise (K² = v·vᵀ - t²·I) because batched 3x3 matmuls are slow in numpy.
    """
    aa = np.asarray(aa, dtype=np.float64)
    x, y, z = aa[..., 0], aa[..., 1], aa[..., 2]
    t2 = x * x + y * y + z * z
    t = np.sqrt(t2)
    small = t < 1e-8
    safe = np.where(small, 1.0, t)
    # sin(t)/t and (1-cos t)/t² with their Taylor limits for tiny angles
    a = np.where(small, 1.0 - t2 / 6.0, np.sin(safe) / safe)
    b = np.where(small, 0.5 - t2 / 24.0, (1.0 - np.cos(safe)) / (safe * safe))
    c = 1.0 - b * t2  # diagonal: 1 + b·(v_i² - t²)
    r = np.empty(aa.shape[:-1] + (3, 3))
    r[..., 0, 0] = c + b * x * x
    r[..., 1, 1] = c + b * y * y
    r[..., 2, 2] = c + b * z * z
    bxy, bxz, byz = b * x * y, b * x * z, b * y * z
    r[..., 0, 1], r[..., 1, 0] = bxy - a * z, bxy + a * z
    r[..., 0, 2], r[..., 2, 0] = bxz + a * y, bxz - a * y
    r[..., 1, 2], r[..., 2, 1] = byz - a * x, byz + a * x
    return r


def matrix_to_quaternion(r: np.ndarray) -> np.ndarray:
    """Rotation matrices [..., 3, 3] -> unit quaternions [..., 4] (w, x, y, z), w >= 0 where possible.

    Numerically stable (Shepperd): the symmetric 4x4 matrix K = 4·q·qᵀ written from the matrix entries
    has, in its row with the largest diagonal (the largest of w², x², y², z²), 4·q_k·q; that row
    normalised is ±q. Most animation rotations have w² largest, so that row is computed for all and
    the other rows only where needed (this runs on every key of every bone).
    """
    r = np.asarray(r, dtype=np.float64)
    m00, m11, m22 = r[..., 0, 0], r[..., 1, 1], r[..., 2, 2]
    diag = np.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1)
    q = np.stack([diag[..., 0], r[..., 2, 1] - r[..., 1, 2], r[..., 0, 2] - r[..., 2, 0],
                  r[..., 1, 0] - r[..., 0, 1]], -1)
    best = np.argmax(diag, axis=-1)
    other = best != 0
    if other.any():
        m, d, b = r[other], diag[other], best[other]
        k = np.empty(m.shape[:-2] + (4, 4))
        k[..., 0, :] = q[other]
        s01, s02, s12 = m[..., 0, 1] + m[..., 1, 0], m[..., 0, 2] + m[..., 2, 0], m[..., 1, 2] + m[..., 2, 1]
        k[..., 1, :] = np.stack([k[..., 0, 1], d[..., 1], s01, s02], -1)
        k[..., 2, :] = np.stack([k[..., 0, 2], s01, d[..., 2], s12], -1)
        k[..., 3, :] = np.stack([k[..., 0, 3], s02, s12, d[..., 3]], -1)
        q[other] = np.take_along_axis(k, b[:, None, None], -2)[:, 0, :]
    q = np.where(q[..., :1] < 0, -q, q)
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def quaternion_to_matrix(q: np.ndarray) -> np.ndarray:
    """Quaternions [..., 4] (w, x, y, z; normalised here) -> rotation matrices [..., 3, 3]."""
    q = np.asarray(q, dtype=np.float64)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    out = np.empty(q.shape[:-1] + (3, 3))  # filled in place: two stacking layers cost more than the maths
    out[..., 0, 0], out[..., 0, 1], out[..., 0, 2] = 1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)
    out[..., 1, 0], out[..., 1, 1], out[..., 1, 2] = 2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)
    out[..., 2, 0], out[..., 2, 1], out[..., 2, 2] = 2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)
    return out


def quaternion_continuity(q: np.ndarray, previous: np.ndarray | None = None) -> np.ndarray:
    """Flip signs along axis 0 (time) so consecutive quaternions lie in the same hemisphere.

    q [T, ..., 4]: a time series (any channels after the time axis). `previous` [..., 4]: the last
    quaternion already keyed (continues a stream across batches), or None. Returns a new array where
    dot(q[t], q[t-1]) >= 0 for every t, so linear interpolation never takes the long way round.
    """
    q = np.array(q, dtype=np.float64, copy=True)
    if q.shape[0] == 0:
        return q
    ref = q[0] if previous is None else np.asarray(previous, dtype=np.float64)
    if previous is not None:
        q[0] = np.where(np.sum(q[0] * ref, -1, keepdims=True) < 0, -q[0], q[0])
    # sign of each step relative to its predecessor, accumulated: s_t = prod_{k<=t} sign(dot(q_k, q_{k-1}))
    dots = np.sum(q[1:] * q[:-1], axis=-1)
    step = np.where(dots < 0, -1.0, 1.0)
    sign = np.concatenate([np.ones((1,) + step.shape[1:]), np.cumprod(step, axis=0)], axis=0)
    return q * sign[..., None]
