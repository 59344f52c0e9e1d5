"""Local bone rotations [..., 3, 3] as the values of a pose bone's rotation channels, per rotation mode.

QUATERNION -> rotation_quaternion (w, x, y, z), sign-continuous over time; AXIS_ANGLE ->
rotation_axis_angle (angle, x, y, z); Euler orders 'XYZ', 'XZY', 'YXZ', 'YZX', 'ZXY', 'ZYX' ->
rotation_euler (x, y, z) in radians, unwrapped over time so no channel jumps by 2π. Blender's Euler
'XYZ' applies X first, then Y, then Z: R = Rz·Ry·Rx.
"""
from __future__ import annotations

import numpy as np

from ..rotations import matrix_to_quaternion, quaternion_continuity

EULER_ORDERS = ("XYZ", "XZY", "YXZ", "YZX", "ZXY", "ZYX")


def rotation_channels(rot: np.ndarray, mode: str) -> tuple[str, np.ndarray]:
    """rot [T, ..., 3, 3] (time first, then any bones) -> (pose-bone property name, values [T, ..., C])
    for rotation `mode`; continuity and unwrapping run along time."""
    if mode == "QUATERNION":
        return "rotation_quaternion", quaternion_continuity(matrix_to_quaternion(rot))
    if mode == "AXIS_ANGLE":
        q = quaternion_continuity(matrix_to_quaternion(rot))
        w = np.clip(q[..., 0], -1.0, 1.0)
        angle = 2.0 * np.arccos(w)
        s = np.sqrt(np.maximum(1.0 - w * w, 0.0))
        axis = np.where(s[..., None] > 1e-9, q[..., 1:] / np.where(s > 1e-9, s, 1.0)[..., None], [0.0, 1.0, 0.0])
        return "rotation_axis_angle", np.concatenate([angle[..., None], axis], axis=-1)
    if mode in EULER_ORDERS:
        return "rotation_euler", np.unwrap(matrix_to_euler(rot, mode), axis=0)
    raise ValueError(f"unknown rotation mode {mode!r}")


def matrix_to_euler(rot: np.ndarray, order: str) -> np.ndarray:
    """rot [..., 3, 3] -> Euler angles [..., 3] (x, y, z) for Blender's `order` (first axis applied first)."""
    i, j, k = ("XYZ".index(a) for a in order)
    # R = R_k(c)·R_j(b)·R_i(a); parity of the axis permutation decides the signs
    sign = 1.0 if (j - i) % 3 == 1 else -1.0
    r = np.asarray(rot, dtype=np.float64)
    sb = -sign * r[..., k, i]
    b = np.arcsin(np.clip(sb, -1.0, 1.0))
    cb = np.cos(b)
    regular = cb > 1e-7
    a = np.where(regular, np.arctan2(sign * r[..., k, j], r[..., k, k]), np.arctan2(-sign * r[..., j, k], r[..., j, j]))
    c = np.where(regular, np.arctan2(sign * r[..., j, i], r[..., i, i]), 0.0)
    out = np.empty(r.shape[:-2] + (3,))
    out[..., i], out[..., j], out[..., k] = a, b, c
    return out


def euler_to_matrix(angles: np.ndarray, order: str) -> np.ndarray:
    """Euler angles [..., 3] (x, y, z) in Blender's `order` -> rotation matrices [..., 3, 3]."""
    angles = np.asarray(angles, dtype=np.float64)
    out = np.broadcast_to(np.eye(3), angles.shape[:-1] + (3, 3)).copy()
    for axis in order:  # first axis applied first: R = R_last ... R_first
        out = _axis_rotation("XYZ".index(axis), angles[..., "XYZ".index(axis)]) @ out
    return out


def _axis_rotation(axis: int, angle: np.ndarray) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    r = np.zeros(np.shape(angle) + (3, 3))
    a, b = [(1, 2), (2, 0), (0, 1)][axis]
    r[..., axis, axis] = 1.0
    r[..., a, a] = c
    r[..., b, b] = c
    r[..., a, b] = -s
    r[..., b, a] = s
    return r
