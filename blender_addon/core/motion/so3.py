"""Quaternion helpers for motion clean-up (numpy, float64, batched over leading dims).

Quaternions are (w, x, y, z) like `core.rotations`; rotation vectors are axis * angle (radians).
"""
from __future__ import annotations

import numpy as np


def aa_to_quat(aa: np.ndarray) -> np.ndarray:
    """Rotation vectors [..., 3] -> unit quaternions [..., 4] (w >= 0 for angles <= pi)."""
    aa = np.asarray(aa, dtype=np.float64)
    angle = np.linalg.norm(aa, axis=-1, keepdims=True)
    half = 0.5 * angle
    small = angle < 1e-8
    scale = np.where(small, 0.5 - angle * angle / 48.0, np.sin(half) / np.where(small, 1.0, angle))
    return np.concatenate([np.cos(half), aa * scale], axis=-1)


def quat_to_aa(q: np.ndarray) -> np.ndarray:
    """Quaternions [..., 4] (any sign, normalised here) -> rotation vectors [..., 3], angle in [0, pi]."""
    q = np.asarray(q, dtype=np.float64)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    q = np.where(q[..., :1] < 0, -q, q)
    s = np.linalg.norm(q[..., 1:], axis=-1, keepdims=True)
    angle = 2.0 * np.arctan2(s, q[..., :1])
    small = s < 1e-8
    scale = np.where(small, 2.0 / np.maximum(q[..., :1], 1e-12), angle / np.where(small, 1.0, s))
    return q[..., 1:] * scale


def quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product a*b [..., 4] (the rotation b first, then a)."""
    aw, ax, ay, az = np.moveaxis(np.asarray(a, dtype=np.float64), -1, 0)
    bw, bx, by, bz = np.moveaxis(np.asarray(b, dtype=np.float64), -1, 0)
    return np.stack([aw * bw - ax * bx - ay * by - az * bz,
                     aw * bx + ax * bw + ay * bz - az * by,
                     aw * by - ax * bz + ay * bw + az * bx,
                     aw * bz + ax * by - ay * bx + az * bw], axis=-1)


def quat_conj(q: np.ndarray) -> np.ndarray:
    out = np.array(q, dtype=np.float64, copy=True)
    out[..., 1:] *= -1.0
    return out


def align_signs(q: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Flip each quaternion of q [..., 4] into the hemisphere of `reference` (broadcastable)."""
    return np.where(np.sum(q * reference, axis=-1, keepdims=True) < 0, -q, q)
