"""A synthetic SMPL-X body model for tests: same file layout as the real `SMPLX_NEUTRAL.npz`.

The real model is licensed per user and cannot live in the repository, so the tests generate a
stand-in with the *same keys, dtypes, shapes and kinematic tree* (55 joints, 10,475 vertices,
20,908 faces, 400 shape/expression directions, 486 pose correctives) and random but well-behaved
values: a stick-figure body in the SMPL-X rest pose convention (T-pose, y up, metres, facing +z),
every vertex skinned to its own bone (partly blended with the parent's), joints that the joint
regressor reproduces exactly for the mean shape, small smooth shape and expression blend shapes.
The `smplx` package loads it like the real file.

Deterministic: the same seed gives byte-identical arrays.

Usage::

    path = write_synthetic_smplx(tmp_dir / "SMPLX_NEUTRAL.npz")   # ~0.6 MB compressed
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

NUM_JOINTS = 55
NUM_VERTICES = 10475
NUM_FACES = 20908
NUM_SHAPE_DIRS = 400  # 300 shape + 100 expression, as in SMPL-X v1.1
NUM_POSE_DIRS = 486  # 54 non-root joints x 9
SHAPE_IN_USE = 10  # what the reference layer reads: shapedirs[..., :10] and [..., 300:310]
EXPR_START = 300

# Standard SMPL-X parents (55-joint order); -1 is the root.
PARENTS = np.array(
    [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 15, 15, 15,
     20, 25, 26, 20, 28, 29, 20, 31, 32, 20, 34, 35, 20, 37, 38,
     21, 40, 41, 21, 43, 44, 21, 46, 47, 21, 49, 50, 21, 52, 53], dtype=np.int64)

# Rest joints of the 22 body joints (T-pose, y up, metres, +x = the body's left).
_BODY = {
    0: (0.0, 0.0, 0.0), 1: (0.06, -0.09, 0.0), 3: (0.0, 0.11, -0.01), 4: (0.11, -0.47, 0.01),
    6: (0.0, 0.24, 0.01), 7: (0.07, -0.88, -0.03), 9: (0.0, 0.30, 0.02), 10: (0.12, -0.94, 0.10),
    12: (0.0, 0.51, -0.01), 13: (0.08, 0.42, 0.0), 15: (0.0, 0.66, 0.04), 16: (0.18, 0.45, -0.01),
    18: (0.44, 0.43, -0.03), 20: (0.70, 0.44, -0.02), 22: (0.0, 0.62, 0.07), 23: (0.03, 0.70, 0.10),
}
_MIRROR = {2: 1, 5: 4, 8: 7, 11: 10, 14: 13, 17: 16, 19: 18, 21: 20, 24: 23}
# finger bases relative to the left wrist: index, middle, pinky, ring, thumb (SMPL-X order)
_FINGERS = [((0.09, 0.0, 0.03), (0.03, 0.0, 0.0)), ((0.095, 0.0, 0.01), (0.032, 0.0, 0.0)),
            ((0.08, 0.0, -0.035), (0.022, 0.0, 0.0)), ((0.09, 0.0, -0.012), (0.028, 0.0, 0.0)),
            ((0.03, -0.01, 0.04), (0.02, 0.0, 0.02))]


def rest_joints() -> np.ndarray:
    """Designed rest joints [55, 3] float64 (what the regressor returns for the mean shape)."""
    joints = np.zeros((NUM_JOINTS, 3))
    for j, xyz in _BODY.items():
        joints[j] = xyz
    for right, left in _MIRROR.items():
        joints[right] = joints[left] * (-1.0, 1.0, 1.0)
    for hand, wrist, sign in ((25, 20, 1.0), (40, 21, -1.0)):
        for f, (base, step) in enumerate(_FINGERS):
            for k in range(3):
                offset = np.array(base) + k * np.array(step)
                joints[hand + 3 * f + k] = joints[wrist] + offset * (sign, 1.0, 1.0)
    return joints


def _bone_direction(joints: np.ndarray, j: int) -> tuple[np.ndarray, float]:
    """Unit direction and length of the segment a part's vertices are spread along."""
    children = np.flatnonzero(PARENTS == j)
    if len(children):
        d = joints[children].mean(0) - joints[j]
        if np.linalg.norm(d) < 1e-3:  # pelvis: children around it
            d = np.array([0.0, -0.05, 0.0])
    else:
        d = joints[j] - joints[PARENTS[j]]
        d = d / max(np.linalg.norm(d), 1e-6) * min(0.15, 0.5 * np.linalg.norm(d) + 0.01)
    length = float(np.linalg.norm(d))
    return d / length, length


def _radius(j: int) -> float:
    if j >= 25:
        return 0.008
    if j in (15,):
        return 0.09
    if j in (22, 23, 24):
        return 0.02
    if j in (0, 3, 6, 9):
        return 0.12
    return 0.05


def synthetic_smplx_arrays(seed: int = 0, pose_correctives: bool = True) -> dict[str, np.ndarray]:
    """All arrays of a synthetic `SMPLX_NEUTRAL.npz` (keys, dtypes and shapes of SMPL-X v1.1).

    Args:
        seed: generator seed (deterministic output).
        pose_correctives: if False, `posedirs` is all zeros, so linear blend skinning alone
            reproduces the layer's vertices (handy for renderers without pose correctives).
    """
    rng = np.random.default_rng(seed)
    joints = rest_joints()
    weights_per_part = np.array([3.0 if j < 25 else 1.0 for j in range(NUM_JOINTS)])
    weights_per_part[15] = 6.0
    counts = np.floor(weights_per_part / weights_per_part.sum() * NUM_VERTICES).astype(int)
    counts[15] += NUM_VERTICES - counts.sum()
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])

    v_template = np.zeros((NUM_VERTICES, 3))
    part = np.zeros(NUM_VERTICES, dtype=np.int64)
    along = np.zeros(NUM_VERTICES)
    j_regressor = np.zeros((NUM_JOINTS, NUM_VERTICES))
    for j in range(NUM_JOINTS):
        a, n = starts[j], counts[j]
        direction, length = _bone_direction(joints, j)
        # an orthonormal frame around the bone
        helper = np.array([0.0, 0.0, 1.0]) if abs(direction[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
        u = np.cross(direction, helper)
        u /= np.linalg.norm(u)
        w = np.cross(direction, u)
        r = _radius(j)
        # first 8 vertices: a symmetric ring at the joint, so the regressor returns the joint exactly
        ring = np.linspace(0, 2 * np.pi, 8, endpoint=False)
        v_template[a:a + 8] = joints[j] + 0.5 * r * (np.cos(ring)[:, None] * u + np.sin(ring)[:, None] * w)
        j_regressor[j, a:a + 8] = 1.0 / 8
        t = rng.uniform(0.0, 1.0, n - 8)
        phi = rng.uniform(0.0, 2 * np.pi, n - 8)
        rad = r * (0.8 + 0.2 * rng.uniform(size=n - 8))
        v_template[a + 8:a + n] = (joints[j] + (t * length)[:, None] * direction
                                   + rad[:, None] * (np.cos(phi)[:, None] * u + np.sin(phi)[:, None] * w))
        part[a:a + n] = j
        along[a + 8:a + n] = t

    # skinning: own bone, blended with the parent near the joint
    weights = np.zeros((NUM_VERTICES, NUM_JOINTS))
    blend = np.where((along < 0.25) & (PARENTS[part] >= 0), 0.4 * (0.25 - along) / 0.25, 0.0)
    weights[np.arange(NUM_VERTICES), part] = 1.0 - blend
    has_parent = PARENTS[part] >= 0
    weights[np.arange(NUM_VERTICES)[has_parent], PARENTS[part][has_parent]] += blend[has_parent]

    # faces: triangles inside each part, counts proportional to the part's vertices
    face_counts = np.floor(counts / NUM_VERTICES * NUM_FACES).astype(int)
    face_counts[15] += NUM_FACES - face_counts.sum()
    faces = np.concatenate([starts[j] + np.stack([rng.permutation(counts[j])[:3] for _ in range(face_counts[j])])
                            for j in range(NUM_JOINTS)]).astype(np.uint32)

    # blend shapes: smooth, small (a few cm at |beta| = 1); expression only moves the head and jaw
    shapedirs = np.zeros((NUM_VERTICES, 3, NUM_SHAPE_DIRS))
    centred = v_template - v_template.mean(0)
    for k in range(SHAPE_IN_USE):
        linear = rng.normal(0.0, 0.03, (3, 3))
        shapedirs[:, :, k] = centred @ linear.T + rng.normal(0.0, 0.002, 3)
    face_part = np.isin(part, (15, 22, 23, 24))
    for k in range(SHAPE_IN_USE):
        linear = rng.normal(0.0, 0.02, (3, 3))
        shapedirs[face_part, :, EXPR_START + k] = (v_template[face_part] - joints[15]) @ linear.T

    posedirs = np.zeros((NUM_VERTICES, 3, NUM_POSE_DIRS))
    if pose_correctives:
        # small correctives of the torso vertices for the spine joints only (sparse: compresses well)
        torso = np.flatnonzero(np.isin(part, (0, 3, 6, 9)))
        spine_cols = np.concatenate([np.arange(9 * (j - 1), 9 * j) for j in (3, 6, 9)])
        posedirs[np.ix_(torso, np.arange(3), spine_cols)] = rng.normal(0.0, 0.002, (len(torso), 3, len(spine_cols)))

    head_faces = np.flatnonzero(np.isin(part[faces[:, 0]], (15, 22)))
    lmk_faces_idx = rng.choice(head_faces, 51, replace=False).astype(np.int64)
    lmk_bary = rng.dirichlet(np.ones(3), 51)
    dyn_faces = rng.choice(head_faces, (79, 17)).astype(np.int64)
    dyn_bary = rng.dirichlet(np.ones(3), (79, 17))

    def hand_components() -> np.ndarray:
        q, _ = np.linalg.qr(rng.normal(size=(45, 45)))
        return q

    kintree = np.stack([PARENTS, np.arange(NUM_JOINTS)]).astype(np.int64)
    kintree[0, 0] = 4294967295  # the real file stores the root's parent as uint32(-1)
    return {
        "v_template": v_template,
        "f": faces,
        "J_regressor": j_regressor,
        "weights": weights,
        "kintree_table": kintree,
        "shapedirs": shapedirs,
        "posedirs": posedirs,
        "hands_componentsl": hand_components(),
        "hands_componentsr": hand_components(),
        "hands_meanl": rng.normal(0.0, 0.1, 45),
        "hands_meanr": rng.normal(0.0, 0.1, 45),
        "lmk_faces_idx": lmk_faces_idx,
        "lmk_bary_coords": lmk_bary,
        "dynamic_lmk_faces_idx": dyn_faces,
        "dynamic_lmk_bary_coords": dyn_bary,
    }


def write_synthetic_smplx(path: str | Path, seed: int = 0, pose_correctives: bool = True) -> Path:
    """Write a synthetic `SMPLX_NEUTRAL.npz` (compressed) to `path` and return the path.

    `path` may be a folder: the file is then written to `path/SMPLX_NEUTRAL.npz`.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "SMPLX_NEUTRAL.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **synthetic_smplx_arrays(seed, pose_correctives))
    return path
