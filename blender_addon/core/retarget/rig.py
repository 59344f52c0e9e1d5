"""A rig as arrays (rest bones, parents, object transform) and Blender's pose-bone forward kinematics.

Blender's chain rule for a pose bone b with parent p (full inheritance), all 4x4 in armature space:
    P_b = P_p · (A_p⁻¹ · A_b) · L_b          root bones: P_b = A_b · L_b
A = rest matrix (`bone.matrix_local`), L = local pose (`pose_bone.matrix_basis` = T(location)·R(rotation)),
P = posed matrix (`pose_bone.matrix`). World = O · P with O the object's `matrix_world` (may hold scale).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..coords import nearest_rotation


class RigError(ValueError):
    """A rig that cannot be retargeted (the message names the bones and what to do)."""


@dataclass
class RigSpec:
    """names [J], parents [J] (-1 root, parents before children), rest [J, 4, 4] armature space
    (metres of the armature), object_matrix [4, 4] world, rotation_modes [J] (pose-bone rotation_mode)."""

    names: tuple[str, ...]
    parents: np.ndarray
    rest: np.ndarray
    object_matrix: np.ndarray
    rotation_modes: tuple[str, ...] | None = None
    lengths: np.ndarray | None = None  # [J] rest bone lengths (armature units)

    def __post_init__(self):
        self.parents = np.asarray(self.parents, dtype=np.int64)
        self.rest = np.asarray(self.rest, dtype=np.float64)
        self.object_matrix = np.asarray(self.object_matrix, dtype=np.float64)
        self.index = {n: i for i, n in enumerate(self.names)}
        if self.rotation_modes is None:
            self.rotation_modes = ("QUATERNION",) * len(self.names)
        for j, p in enumerate(self.parents):
            if p >= j:
                raise RigError(f"bone {self.names[j]!r} comes before its parent; list parents first")

    @property
    def object_rotation(self) -> np.ndarray:
        """The object's world rotation without scale [3, 3]."""
        return nearest_rotation(self.object_matrix[:3, :3])

    @property
    def object_scale(self) -> float:
        """Mean scale of the object's world matrix (1 for an unscaled rig, 0.01 for a cm Mixamo import)."""
        return float(np.cbrt(abs(np.linalg.det(self.object_matrix[:3, :3]))))

    def world_rest(self) -> np.ndarray:
        """Rest bone matrices in world space [J, 4, 4]."""
        return self.object_matrix @ self.rest

    def depth_levels(self) -> list[np.ndarray]:
        """Bone indices grouped by depth in the hierarchy (roots first): every bone of a level has its
        parent in an earlier level, so forward kinematics runs one batched step per level."""
        depth = np.zeros(len(self.names), dtype=np.int64)
        for j, p in enumerate(self.parents):
            if p >= 0:
                depth[j] = depth[p] + 1
        return [np.flatnonzero(depth == d) for d in range(int(depth.max()) + 1)] if len(depth) else []

    def zero_length_bones(self, tolerance: float = 1e-6) -> list[str]:
        if self.lengths is None:
            return []
        return [n for n, l in zip(self.names, self.lengths) if not l > tolerance]


def local_from_posed(rig: RigSpec, posed: np.ndarray) -> np.ndarray:
    """Posed armature-space matrices [T, J, 4, 4] -> local matrices L [T, J, 4, 4] (inverse of `forward`)."""
    out = np.empty_like(posed)
    inv_rest = np.linalg.inv(rig.rest)
    for j, p in enumerate(rig.parents):
        if p < 0:
            out[:, j] = inv_rest[j] @ posed[:, j]
        else:
            out[:, j] = inv_rest[j] @ rig.rest[p] @ np.linalg.inv(posed[:, p]) @ posed[:, j]
    return out


def posed_bones(rig: RigSpec, rotation: dict, location: dict, bones=None) -> dict:
    """Posed armature-space rotations and heads of `bones` (indices; None: all) and their ancestors.

    rotation {bone: [T, 3, 3]} and location {bone: [T, 3]} are local channels (missing: identity / zero).
    Returns {bone: (R [T, 3, 3] or [3, 3], head [T, 3] or [3])}; bones without animated ancestors stay
    unbatched. Rest matrices are rigid (Blender's are), so everything is 3x3 products and vectors.
    """
    n = len(rig.names)
    needed = np.zeros(n, dtype=bool)
    for b in (range(n) if bones is None else bones):
        while b >= 0 and not needed[b]:
            needed[b] = True
            b = rig.parents[b]
    rest_r, rest_t = rig.rest[:, :3, :3], rig.rest[:, :3, 3]
    out = {}
    for j in np.flatnonzero(needed):
        p = rig.parents[j]
        if p < 0:
            base_r, base_t = rest_r[j], rest_t[j]
        else:
            pr, pt = out[p]
            rel_r = rest_r[p].T @ rest_r[j]
            rel_t = rest_r[p].T @ (rest_t[j] - rest_t[p])
            base_r = pr @ rel_r
            base_t = pt + (pr @ rel_t if pr.ndim == 2 else np.einsum("tab,b->ta", pr, rel_t))
        loc = location.get(j)
        if loc is not None:
            base_t = base_t + (loc @ base_r.T if base_r.ndim == 2 else np.einsum("tab,tb->ta", base_r, loc))
        rot = rotation.get(j)
        out[j] = (base_r @ rot if rot is not None else base_r, base_t)
    return out


def pose_all(rig: RigSpec, rotation: np.ndarray, location: np.ndarray | None = None,
             bones=None) -> tuple[np.ndarray, np.ndarray]:
    """Posed armature-space rotations [J, T, 3, 3] and heads [J, T, 3] of every bone (with `bones`,
    indices: of those and their ancestors; other entries undefined) from local rotations [J, T, 3, 3]
    and locations [J, T, 3] (None: zero), all bone-major (each bone's frames contiguous, so gathering a
    level's parents copies whole blocks); one batched step per hierarchy level."""
    n, t_frames = rotation.shape[:2]
    needed = np.ones(n, dtype=bool)
    if bones is not None:
        needed[:] = False
        for b in bones:
            while b >= 0 and not needed[b]:
                needed[b] = True
                b = rig.parents[b]
    rest_r, rest_t = rig.rest[:, :3, :3], rig.rest[:, :3, 3]
    rot = np.empty((n, t_frames, 3, 3))
    head = np.empty((n, t_frames, 3))
    for d, level in enumerate(rig.depth_levels()):
        level = level[needed[level]]
        if not len(level):
            continue
        if d == 0:  # the roots (depth 0): their rest
            base_r = np.broadcast_to(rest_r[level, None], (len(level), t_frames, 3, 3))
            base_t = np.broadcast_to(rest_t[level, None], (len(level), t_frames, 3))
        else:  # rest relative to the parent, carried by the posed parent
            p = rig.parents[level]
            inv_pr = np.swapaxes(rest_r[p], -1, -2)
            parent_r = rot[p]
            base_r = parent_r @ (inv_pr @ rest_r[level])[:, None]
            offset = np.einsum("kij,kj->ki", inv_pr, rest_t[level] - rest_t[p])
            base_t = head[p] + np.einsum("ktij,kj->kti", parent_r, offset)
        if location is not None:
            base_t = base_t + np.einsum("ktij,ktj->kti", base_r, location[level])
        rot[level] = base_r @ rotation[level]
        head[level] = base_t
    return rot, head


def forward(rig: RigSpec, local: np.ndarray, bones=None) -> np.ndarray:
    """Local matrices L [T, J, 4, 4] -> posed armature-space matrices P [T, J, 4, 4] (with `bones`,
    entries of other bones are zero)."""
    out = np.zeros(local.shape)
    if bones is None:
        r, h = pose_all(rig, np.moveaxis(local[..., :3, :3], 1, 0), np.moveaxis(local[..., :3, 3], 1, 0))
        out[..., :3, :3], out[..., :3, 3] = np.moveaxis(r, 0, 1), np.moveaxis(h, 0, 1)
        out[..., 3, 3] = 1.0
        return out
    rot = dict(enumerate(np.ascontiguousarray(np.moveaxis(local[..., :3, :3], 1, 0))))
    loc = dict(enumerate(np.ascontiguousarray(np.moveaxis(local[..., :3, 3], 1, 0))))
    for j, (r, h) in posed_bones(rig, rot, loc, bones).items():
        out[:, j, :3, :3] = r
        out[:, j, :3, 3] = h
        out[:, j, 3, 3] = 1.0
    return out


def compose_local(rotation: np.ndarray, location: np.ndarray) -> np.ndarray:
    """rotation [T, J, 3, 3] and location [T, J, 3] -> local 4x4 [T, J, 4, 4] (T(loc)·R)."""
    out = np.zeros(rotation.shape[:-2] + (4, 4))
    out[..., :3, :3] = rotation
    out[..., :3, 3] = location
    out[..., 3, 3] = 1.0
    return out
