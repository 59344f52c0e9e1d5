"""The SMPL-X body model as the result header carries it (`header.body_model`), in numpy.

Everything here is in SMPL-X's canonical frame (y up, facing +z, metres) unless a name says otherwise:
shaped template and rest joints from betas, the joint names, and a linear-blend-skinning forward pass
(`lbs`) that reproduces the `smplx` package's SMPL-X layer without pose correctives (tested against it).

The pose vector order is SMPL-X's full pose: joint 0 global_orient, 1..21 body_pose, 22 jaw, 23 left eye,
24 right eye, 25..39 left hand, 40..54 right hand (`full_pose`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .rotations import axis_angle_to_matrix

NUM_JOINTS = 55

# Standard SMPL-X joint names (55-joint order), used when the header has none.
SMPLX_JOINT_NAMES = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "left_ankle",
    "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar", "right_collar", "head",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "jaw",
    "left_eye_smplhf", "right_eye_smplhf",
    "left_index1", "left_index2", "left_index3", "left_middle1", "left_middle2", "left_middle3",
    "left_pinky1", "left_pinky2", "left_pinky3", "left_ring1", "left_ring2", "left_ring3",
    "left_thumb1", "left_thumb2", "left_thumb3",
    "right_index1", "right_index2", "right_index3", "right_middle1", "right_middle2", "right_middle3",
    "right_pinky1", "right_pinky2", "right_pinky3", "right_ring1", "right_ring2", "right_ring3",
    "right_thumb1", "right_thumb2", "right_thumb3",
)

POSE_FIELDS = ("global_orient", "body_pose", "jaw_pose", "leye_pose", "reye_pose", "left_hand_pose",
               "right_hand_pose")


@dataclass
class BodyModel:
    """Arrays of `header.body_model` (float64 copies) plus derived joint regressions.

    v_template [V, 3], shapedirs [V, 3, B], J_regressor [J, V], lbs_weights [V, J], parents [J] (-1 root),
    faces [F, 3] int32, joint_names (J strings); optional hand means [15, 3] each (added to the hand poses
    when the header says flat_hand_mean is False); optional exprdirs [V, 3, E] (expression blend shapes)
    and posedirs [P, V*3] (pose correctives, P = 9·(J-1), smplx's layout).
    """

    v_template: np.ndarray
    shapedirs: np.ndarray
    J_regressor: np.ndarray
    lbs_weights: np.ndarray
    parents: np.ndarray
    faces: np.ndarray
    joint_names: tuple[str, ...]
    left_hand_mean: np.ndarray | None = None
    right_hand_mean: np.ndarray | None = None
    exprdirs: np.ndarray | None = None
    posedirs: np.ndarray | None = None

    def __post_init__(self) -> None:
        # joints are linear in betas: J(β) = J_template + J_dirs·β (cheap per frame and per track)
        self.J_template = self.J_regressor @ self.v_template
        self.J_dirs = np.einsum("jv,vkb->jkb", self.J_regressor, self.shapedirs)

    @property
    def num_joints(self) -> int:
        return len(self.parents)

    @classmethod
    def from_header(cls, header: dict) -> "BodyModel":
        """Build from a decoded `header` message (uses header['body_model'] and header['smplx'])."""
        bm = header["body_model"]
        smplx = header.get("smplx") or {}
        parents = np.asarray(bm["parents"], dtype=np.int64)
        names = smplx.get("joint_names") or []
        if len(names) < len(parents):
            names = list(names) + list(SMPLX_JOINT_NAMES[len(names):len(parents)])
            names += [f"joint_{j}" for j in range(len(names), len(parents))]
        left = right = None
        if smplx.get("flat_hand_mean", True) is False:
            left, right = _hand_means(bm)
        return cls(
            v_template=np.asarray(bm["v_template"], dtype=np.float64),
            shapedirs=np.asarray(bm["shapedirs"], dtype=np.float64),
            J_regressor=np.asarray(bm["J_regressor"], dtype=np.float64),
            lbs_weights=np.asarray(bm["lbs_weights"], dtype=np.float64),
            parents=parents,
            faces=np.asarray(bm["faces"], dtype=np.int32),
            joint_names=tuple(str(n) for n in names[:len(parents)]),
            left_hand_mean=left, right_hand_mean=right,
            exprdirs=np.asarray(bm["exprdirs"], dtype=np.float32) if "exprdirs" in bm else None,
            posedirs=np.asarray(bm["posedirs"], dtype=np.float32) if "posedirs" in bm else None,
        )

    def shaped_vertices(self, betas: np.ndarray) -> np.ndarray:
        """Rest vertices [V, 3] float64 for betas [B'] (B' <= B; missing betas are zero), SMPL frame."""
        b = self._betas(betas)
        return self.v_template + self.shapedirs @ b

    def rest_joints(self, betas: np.ndarray) -> np.ndarray:
        """Rest joints [..., J, 3] float64 for betas [..., B'] = J_regressor·(v_template + shapedirs·β)."""
        b = self._betas(betas)
        return self.J_template + np.einsum("jkb,...b->...jk", self.J_dirs, b)

    def full_pose(self, people: dict, rows: np.ndarray | slice = slice(None)) -> np.ndarray:
        """Axis-angle full pose [n, J, 3] float64 from a frame's `people` map (rows select persons).

        Missing pose fields count as zeros; hand means are added when the model is not flat-hand.
        """
        gl = np.asarray(people["global_orient"])[rows]
        n = gl.shape[0]
        parts = []
        sizes = {"global_orient": 1, "body_pose": 21, "jaw_pose": 1, "leye_pose": 1, "reye_pose": 1,
                 "left_hand_pose": 15, "right_hand_pose": 15}
        for name in POSE_FIELDS:
            if name in people:
                parts.append(np.asarray(people[name], dtype=np.float64)[rows].reshape(n, sizes[name], 3))
            else:
                parts.append(np.zeros((n, sizes[name], 3)))
        pose = np.concatenate(parts, axis=1)
        if self.left_hand_mean is not None:
            pose[:, 25:40] += self.left_hand_mean
            pose[:, 40:55] += self.right_hand_mean
        return pose[:, :self.num_joints]

    def lbs(self, full_pose: np.ndarray, betas: np.ndarray, transl: np.ndarray, correctives: bool = False,
            expression: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Posed vertices [V, 3] and joints [J, 3] (float64, the pose's frame, e.g. W).

        full_pose [J, 3] axis-angle, betas [B'], transl [3]. Equals smplx's SMPL-X layer output with
        zero expression (joints: the first J of its joints output); pose correctives are added when
        `correctives` is set and the model has posedirs (otherwise it equals the layer with zero posedirs).
        `expression` [E] adds the expression blend shapes to the vertices but, like the Blender rig,
        regresses the joints from the betas only (smplx also moves face joints with the expression).
        """
        v_shaped = self.shaped_vertices(betas)
        if expression is not None and self.exprdirs is not None:
            e = np.asarray(expression, dtype=np.float64)
            v_shaped = v_shaped + self.exprdirs[:, :, :len(e)].astype(np.float64) @ e
        if correctives and self.posedirs is not None:
            feature = pose_feature(axis_angle_to_matrix(full_pose[1:]))
            v_shaped = v_shaped + (feature @ self.posedirs).reshape(-1, 3)
        joints = self.rest_joints(betas)
        world_rot, world_pos = self.forward_kinematics(full_pose, joints)
        # per-joint affine: x -> R_j (x - J_j) + P_j
        a = world_pos - np.einsum("jab,jb->ja", world_rot, joints)
        blend_r = np.einsum("vj,jab->vab", self.lbs_weights, world_rot)
        blend_t = self.lbs_weights @ a
        verts = np.einsum("vab,vb->va", blend_r, v_shaped) + blend_t
        return verts + transl, world_pos + transl

    def forward_kinematics(self, full_pose: np.ndarray, joints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World rotations [J, 3, 3] and posed joint positions [J, 3] for local axis-angle full_pose [J, 3]."""
        local = axis_angle_to_matrix(full_pose)
        rot = np.empty_like(local)
        pos = np.empty((len(self.parents), 3))
        for j, p in enumerate(self.parents):
            if p < 0:
                rot[j], pos[j] = local[j], joints[j]
            else:
                rot[j] = rot[p] @ local[j]
                pos[j] = pos[p] + rot[p] @ (joints[j] - joints[p])
        return rot, pos

    def _betas(self, betas: np.ndarray) -> np.ndarray:
        b = np.asarray(betas, dtype=np.float64)
        nb = self.shapedirs.shape[-1]
        if b.shape[-1] < nb:
            b = np.concatenate([b, np.zeros(b.shape[:-1] + (nb - b.shape[-1],))], axis=-1)
        return b[..., :nb]


def pose_feature(local_rot: np.ndarray) -> np.ndarray:
    """Pose-corrective weights [..., 9·(J-1)]: (R_j - I) of the non-root local rotations [..., J-1, 3, 3],
    flattened row-major per joint (smplx's `pose_feature`, the weights of posedirs / corrective shape keys)."""
    r = np.asarray(local_rot)
    return (r - np.eye(3)).reshape(r.shape[:-3] + (-1,))


def _hand_means(bm: dict) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Hand mean poses [15, 3] from optional header keys (hands_meanl/-r or left/right_hand_mean)."""
    for lk, rk in (("hands_meanl", "hands_meanr"), ("left_hand_mean", "right_hand_mean")):
        if lk in bm and rk in bm:
            return (np.asarray(bm[lk], dtype=np.float64).reshape(15, 3),
                    np.asarray(bm[rk], dtype=np.float64).reshape(15, 3))
    return None, None
