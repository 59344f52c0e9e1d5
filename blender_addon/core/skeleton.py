"""SMPL-X rig in Blender terms: limb-aligned rest bones, and SMPL-X poses as bone-local quaternions.

Rest layout (Blender armature space = Blender world, armature object at identity):
    head_j   = C·J_j(β) + o        C: SMPL canonical -> Blender (coords.C); o grounds the rest T-pose:
                                   pelvis above the origin, lowest rest vertex on z = 0.
    Y axis   along the limb: towards the joint's main child (pelvis -> spine1, spine3 -> neck,
             wrist -> middle1, the only child otherwise); leaves and the head continue the direction
             from their parent. Root without a usable child points up.
    Z axis   ("roll") the rig's front (-Y world) made orthogonal to the bone; bones that point mostly
             forward/backward (feet, eyes, jaw) use world up instead. X = Y × Z.
  These are ordinary bones for retargeting and FBX export: heads on the joints, tails on the next joint.

Pose (per frame, SMPL-X local axis-angle R_j, world-frame root): with R_rest the bone's rest rotation
(bone.matrix_local 3x3, columns = bone axes in armature space)
    q_j    = R_restᵀ · (C·R_j·Cᵀ) · R_rest            for every non-root joint
    q_0    = R_restᵀ · (M·R_go·Cᵀ) · R_rest            root: global_orient acts in W, M takes W to Blender
    loc_0  = R_restᵀ · (M·(J_0(β_frame) + transl) − head_0)     pelvis position in W, per frame
which makes Blender's armature deform equal SMPL-X linear blend skinning (see tests/blender).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .body_model import BodyModel
from .coords import C, M
from .rotations import axis_angle_to_matrix, matrix_to_quaternion

# Main child of joints with several children (by SMPL-X joint name).
MAIN_CHILD = {
    "pelvis": "spine1",
    "spine3": "neck",
    "left_wrist": "left_middle1",
    "right_wrist": "right_middle1",
}
MIN_BONE_LENGTH = 0.01  # metres
_FRONT = np.array([0.0, -1.0, 0.0])
_UP = np.array([0.0, 0.0, 1.0])


@dataclass
class RigRest:
    """The rest pose of one person's rig, in Blender armature space (metres, float64).

    names [J] bone names, parents [J] (-1 root), heads/tails [J, 3], rest_rot [J, 3, 3] (bone axes as
    columns; equals bone.matrix_local[:3, :3]), offset [3] (o above), betas [B] used for the shape,
    vertices [V, 3] the shaped rest mesh in armature space (float32).
    """

    names: tuple[str, ...]
    parents: np.ndarray
    heads: np.ndarray
    tails: np.ndarray
    rest_rot: np.ndarray
    offset: np.ndarray
    betas: np.ndarray
    vertices: np.ndarray

    @property
    def matrices(self) -> np.ndarray:
        """Bone rest matrices [J, 4, 4] (what `edit_bone.matrix` / `bone.matrix_local` hold)."""
        out = np.tile(np.eye(4), (len(self.names), 1, 1))
        out[:, :3, :3] = self.rest_rot
        out[:, :3, 3] = self.heads
        return out


def build_rig_rest(body: BodyModel, betas: np.ndarray, offset: np.ndarray | None = None,
                   rest_rot: np.ndarray | None = None) -> RigRest:
    """Rest bones and shaped mesh for `betas` [B'] (float).

    `offset` and `rest_rot` default to the grounded offset and limb-aligned axes described above;
    pass the values of an existing rig to re-shape it without changing its bone orientations (which
    keeps its already keyed rotations valid).
    """
    betas = np.asarray(betas, dtype=np.float64).reshape(-1)
    verts_smpl = body.shaped_vertices(betas)
    joints = body.rest_joints(betas) @ C.T
    verts = verts_smpl @ C.T
    if offset is None:
        offset = np.array([-joints[0, 0], -joints[0, 1], -verts[:, 2].min()])
    offset = np.asarray(offset, dtype=np.float64)
    heads = joints + offset
    directions, lengths = _bone_directions(heads, body.parents, body.joint_names)
    if rest_rot is None:
        rest_rot = _rest_rotations(directions)
    else:
        rest_rot = np.asarray(rest_rot, dtype=np.float64)
    tails = heads + rest_rot[:, :, 1] * lengths[:, None]
    return RigRest(names=tuple(body.joint_names), parents=np.asarray(body.parents), heads=heads, tails=tails,
                   rest_rot=rest_rot, offset=offset, betas=betas,
                   vertices=(verts + offset).astype(np.float32))


def _bone_directions(heads: np.ndarray, parents: np.ndarray, names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Unit bone directions [J, 3] and lengths [J] (see the module docstring for the rule)."""
    n = len(parents)
    index = {name: j for j, name in enumerate(names)}
    children = [np.flatnonzero(parents == j) for j in range(n)]
    dirs = np.zeros((n, 3))
    lengths = np.zeros(n)
    for j in range(n):  # parents come before children in SMPL-X order
        target = None
        if names[j] in MAIN_CHILD and MAIN_CHILD[names[j]] in index:
            target = index[MAIN_CHILD[names[j]]]
        elif len(children[j]) == 1:
            target = int(children[j][0])
        vec = heads[target] - heads[j] if target is not None else None
        if vec is not None and np.linalg.norm(vec) > 1e-6:
            length = np.linalg.norm(vec)
            dirs[j], lengths[j] = vec / length, max(length, MIN_BONE_LENGTH)
            continue
        p = parents[j]
        vec = heads[j] - heads[p] if p >= 0 else np.zeros(3)
        if np.linalg.norm(vec) > 1e-6:  # leaf: continue the limb from the parent
            length = np.linalg.norm(vec)
            dirs[j], lengths[j] = vec / length, max(0.5 * length, MIN_BONE_LENGTH)
        elif p >= 0:  # coincides with its parent: copy the parent's bone
            dirs[j], lengths[j] = dirs[p], max(0.5 * lengths[p], MIN_BONE_LENGTH)
        else:
            dirs[j], lengths[j] = _UP, 0.1
    return dirs, lengths


def _rest_rotations(directions: np.ndarray) -> np.ndarray:
    """Bone rest rotations [J, 3, 3]: Y = direction, Z = front (or up for front-pointing bones), X = Y × Z."""
    y = directions
    ref = np.where(np.abs(y @ _FRONT)[:, None] > 0.7, _UP, _FRONT)
    z = ref - np.sum(ref * y, axis=1, keepdims=True) * y
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    x = np.cross(y, z)
    return np.stack([x, y, z], axis=-1)


def pose_to_bone_channels(full_pose: np.ndarray, pelvis_world: np.ndarray,
                          rest: RigRest) -> tuple[np.ndarray, np.ndarray]:
    """SMPL-X poses -> pose-bone channels of a rig built by `build_rig_rest`.

    Args:
        full_pose: [T, J, 3] local axis-angle (joint 0 = global_orient in W), radians.
        pelvis_world: [T, 3] posed pelvis joint in W (J_0(β_frame) + transl), metres.
        rest: the rig's rest pose.
    Returns:
        quats [T, J, 4] (w, x, y, z) for pose_bone.rotation_quaternion (not yet sign-continuous),
        root_location [T, 3] for the root bone's pose_bone.location (bone-local, metres).
    """
    full_pose = np.asarray(full_pose, dtype=np.float64)
    local = axis_angle_to_matrix(full_pose)  # [T, J, 3, 3]
    r = rest.rest_rot
    left = np.broadcast_to(C, r.shape).copy()
    left[0] = M  # the root rotation acts in W
    pre = np.swapaxes(r, -1, -2) @ left  # R_restᵀ·C (root: R_restᵀ·M), [J, 3, 3]
    post = C.T @ r  # Cᵀ·R_rest, [J, 3, 3]
    q_mat = pre @ local @ post
    quats = matrix_to_quaternion(q_mat)
    pelvis_b = np.asarray(pelvis_world, dtype=np.float64) @ M.T
    root_loc = (pelvis_b - rest.heads[0]) @ r[0]  # R_restᵀ·(p − h) for row vectors
    return quats, root_loc
