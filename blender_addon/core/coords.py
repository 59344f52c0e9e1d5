"""Coordinate frames: the model's OpenCV world W, SMPL-X's canonical body frame, and Blender's Z-up world.

Frames (all right-handed, metres):
    W        OpenCV camera frame of the first processed frame: x right, y down, z forward.
    Blender  Z-up world: x right, y away from the first camera, z up (-Y is "front" of a T-posed rig).
    SMPL     the SMPL-X template's own frame: y up, the body faces +z, +x is the body's left.
    camera   OpenCV camera axes (x right, y down, z forward) vs Blender camera axes (x right, y up,
             looking along -z).

`M` takes W to Blender, p_blender = M @ p_W, i.e. (x, y, z) -> (x, z, -y). `C` takes SMPL canonical to
Blender, (x, y, z) -> (x, -z, y), so a rig built from the template stands upright in Blender. (C = Mᵀ.)
A camera pose becomes matrix_world = M4 @ cam_to_world @ diag(1, -1, -1, 1): W to Blender on the left,
OpenCV camera axes to Blender camera axes (flip y and z) on the right.
"""
from __future__ import annotations

import numpy as np

# W (OpenCV world) -> Blender world: (x, y, z) -> (x, z, -y).
M = np.array([[1.0, 0.0, 0.0],
              [0.0, 0.0, 1.0],
              [0.0, -1.0, 0.0]])
M4 = np.eye(4)
M4[:3, :3] = M

# SMPL-X canonical (y up, facing +z) -> Blender (z up, facing -y): (x, y, z) -> (x, -z, y).
C = np.array([[1.0, 0.0, 0.0],
              [0.0, 0.0, -1.0],
              [0.0, 1.0, 0.0]])

# OpenCV camera axes -> Blender camera axes (flip y and z).
CV_TO_BLENDER_CAMERA = np.diag([1.0, -1.0, -1.0, 1.0])


def world_points_to_blender(xyz: np.ndarray) -> np.ndarray:
    """Points in W [..., 3] (any float dtype, metres) -> Blender world [..., 3] float32: (x, z, -y)."""
    xyz = np.asarray(xyz)
    out = np.empty(xyz.shape, dtype=np.float32)
    out[..., 0] = xyz[..., 0]
    out[..., 1] = xyz[..., 2]
    out[..., 2] = -xyz[..., 1]
    return out


def camera_matrix_world(cam_to_world: np.ndarray) -> np.ndarray:
    """OpenCV cam_to_world [..., 4, 4] (camera axes -> W) -> Blender camera matrix_world [..., 4, 4] float64.

    The result maps Blender camera axes (looking down -z, y up) into Blender world coordinates.
    The rotation part is re-orthonormalised (nearest rotation, via SVD) so a slightly non-rigid
    prediction still gives a clean camera; the translation is kept.
    """
    c2w = np.asarray(cam_to_world, dtype=np.float64)
    out = M4 @ c2w @ CV_TO_BLENDER_CAMERA
    out[..., :3, :3] = nearest_rotation(out[..., :3, :3])
    out[..., 3, :] = (0.0, 0.0, 0.0, 1.0)
    return out


def nearest_rotation(r: np.ndarray) -> np.ndarray:
    """Project 3x3 matrices [..., 3, 3] onto SO(3) (polar decomposition through SVD), float64."""
    u, _, vt = np.linalg.svd(np.asarray(r, dtype=np.float64))
    det = np.linalg.det(u @ vt)
    u[..., :, 2] *= det[..., None]  # flip the last axis where needed so det = +1
    return u @ vt
