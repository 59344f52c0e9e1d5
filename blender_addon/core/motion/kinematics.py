"""Batched forward kinematics of the SMPL-X body chain and the four foot contact points.

Frames: positions in the world of the poses (W or the refined world), metres; rotations are world
rotation matrices. SMPL-X places joint j at R_parent·(J_j − J_parent) + pos_parent with the root at
J_0(β) + transl, rotated by global_orient about J_0 (see `core.body_model`).

Foot contact points (`FOOT_POINTS` order: left heel, left toe, right heel, right toe) are points on the
rest sole: the sole below the ankle (heel) and below the foot joint (toe ball), both at the height of the
shaped rest mesh's lowest vertex, carried by the ankle and foot joints' rotations.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..body_model import BodyModel
from ..rotations import axis_angle_to_matrix

BODY_JOINTS = 22  # pelvis .. right_wrist: the chain that moves the feet, spine, head and arms
PELVIS, L_HIP, R_HIP, L_KNEE, R_KNEE, L_ANKLE, R_ANKLE, L_FOOT, R_FOOT = 0, 1, 2, 4, 5, 7, 8, 10, 11
FOOT_POINTS = ("left_heel", "left_toe", "right_heel", "right_toe")
FOOT_POINT_JOINT = np.array([L_ANKLE, L_FOOT, R_ANKLE, R_FOOT])
LEGS = ((L_HIP, L_KNEE, L_ANKLE), (R_HIP, R_KNEE, R_ANKLE))  # per foot: hip, knee, ankle


@dataclass
class BodyShape:
    """Rest geometry of one person (SMPL canonical frame, metres).

    rest [22, 3] body rest joints for the track's betas; parents [22]; sole_offsets [4, 3] the foot
    points relative to their joints (FOOT_POINT_JOINT) in the rest pose.
    """

    rest: np.ndarray
    parents: np.ndarray
    sole_offsets: np.ndarray

    @classmethod
    def from_model(cls, body: BodyModel, betas: np.ndarray) -> "BodyShape":
        joints = body.rest_joints(np.asarray(betas, dtype=np.float64))
        verts = body.shaped_vertices(np.asarray(betas, dtype=np.float64))
        sole = verts[:, 1].min()
        offsets = np.zeros((4, 3))
        offsets[:, 1] = sole - joints[FOOT_POINT_JOINT, 1]
        return cls(rest=joints[:BODY_JOINTS], parents=np.asarray(body.parents[:BODY_JOINTS]), sole_offsets=offsets)


def forward(shape: BodyShape, local: np.ndarray, root: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World rotations [T, 22, 3, 3] and joint positions [T, 22, 3].

    local [T, 22, 3, 3] local rotation matrices (joint 0 = global_orient); root [T, 3] the pelvis
    position (J_0(β_frame) + transl).
    """
    return forward_rest(shape.rest, shape.parents, local, root)


def forward_rest(rest: np.ndarray, parents: np.ndarray, local: np.ndarray, root: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`forward` with rest joints [22, 3] shared by all samples or [T, 22, 3] per sample (several people)."""
    t = local.shape[0]
    rot = np.empty((t, BODY_JOINTS, 3, 3))
    pos = np.empty((t, BODY_JOINTS, 3))
    rot[:, 0] = local[:, 0]
    pos[:, 0] = root
    bone = rest - rest[..., parents.clip(0), :]  # [(T,) 22, 3] offset of each joint from its parent
    for j in range(1, BODY_JOINTS):
        p = parents[j]
        rot[:, j] = rot[:, p] @ local[:, j]
        if bone.ndim == 2:
            pos[:, j] = pos[:, p] + rot[:, p] @ bone[j]
        else:
            pos[:, j] = pos[:, p] + np.einsum("tab,tb->ta", rot[:, p], bone[:, j])
    return rot, pos


def foot_points(shape: BodyShape | np.ndarray, rot: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Foot contact points [T, 4, 3] (FOOT_POINTS order) from `forward`'s outputs; `shape` may also be
    sole offsets [T, 4, 3] per sample."""
    offsets = shape.sole_offsets if isinstance(shape, BodyShape) else np.asarray(shape)
    r = rot[:, FOOT_POINT_JOINT]
    spec = "tkab,kb->tka" if offsets.ndim == 2 else "tkab,tkb->tka"
    return pos[:, FOOT_POINT_JOINT] + np.einsum(spec, r, offsets)


def leg_extension(shape: BodyShape, knee_local: np.ndarray) -> np.ndarray:
    """Hip-ankle distance as a share of thigh + shin [T, 2] (left, right) for the knees' local rotations
    knee_local [T, 2, 3, 3]: the distance depends on the knee's rotation only (the hip turns thigh and shin
    together)."""
    out = np.empty(knee_local.shape[:2])
    for foot, (hip, knee, ankle) in enumerate(LEGS):
        thigh, shin = shape.rest[knee] - shape.rest[hip], shape.rest[ankle] - shape.rest[knee]
        reach = np.linalg.norm(thigh + knee_local[:, foot] @ shin, axis=-1)
        out[:, foot] = reach / (np.linalg.norm(thigh) + np.linalg.norm(shin))
    return out


def local_matrices(global_orient: np.ndarray, body_pose: np.ndarray) -> np.ndarray:
    """[T, 3] + [T, 21, 3] axis-angle -> local matrices [T, 22, 3, 3]."""
    aa = np.concatenate([np.asarray(global_orient, np.float64)[:, None], np.asarray(body_pose, np.float64)], 1)
    return axis_angle_to_matrix(aa)
