"""Humanoid skeletons built from bone names and rest positions, as Mixamo, UE5, MPFB, Rigify-metarig-like
and SMPL-X-like rigs would have them, plus a synthetic SMPL-X source motion with walking foot contacts.

`skeleton(style, pose='T'|'A', height=..., roll_seed=...)` returns a `Skeleton`: bone names, parents,
heads, tails (metres, Z up, facing -Y) and rolls (radians); the same data builds a bpy armature in
tests/blender and a `RigSpec` here (`rig_spec`, with any roll -> rest matrix like Blender: Y along the
bone, rolled about it). Proportions differ from SMPL-X on purpose (legs, arms, spine lengths).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from blender_addon.core.body_model import BodyModel
from blender_addon.core.retarget.rig import RigSpec, compose_local
from blender_addon.core.rotations import quaternion_to_matrix
from blender_addon.core.skeleton import build_rig_rest, pose_to_bone_channels


@dataclass
class Skeleton:
    names: list[str]
    parents: list[int]
    heads: np.ndarray
    tails: np.ndarray
    rolls: np.ndarray


def _blender_bone_matrix(head, tail, roll) -> np.ndarray:
    """Blender's rest matrix of a bone (vec_roll_to_mat3): minimal rotation Y -> direction, then roll."""
    y = np.asarray(tail, float) - np.asarray(head, float)
    y /= np.linalg.norm(y)
    x, yy, z = y
    if yy > -1 + 1e-6:
        # rotation taking (0,1,0) onto y (Rodrigues, axis (z, 0, -x))
        k = np.array([[0, 0, 0], [0, 0, 0], [0, 0, 0]], float)
        v = np.array([z, 0.0, -x])
        vx = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
        base = np.eye(3) + vx + vx @ vx / (1 + yy) + k
    else:
        base = np.diag([-1.0, -1.0, 1.0])
    c, s = np.cos(roll), np.sin(roll)
    roll_m = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    m = np.eye(4)
    m[:3, :3] = base @ roll_m
    m[:3, 3] = head
    return m


def rig_spec(sk: Skeleton, object_matrix=None) -> RigSpec:
    rest = np.stack([_blender_bone_matrix(h, t, r) for h, t, r in zip(sk.heads, sk.tails, sk.rolls)])
    return RigSpec(tuple(sk.names), np.array(sk.parents), rest,
                   np.eye(4) if object_matrix is None else np.asarray(object_matrix, float),
                   lengths=np.linalg.norm(sk.tails - sk.heads, axis=1))


class _Builder:
    def __init__(self):
        self.names, self.parents, self.heads, self.tails = [], [], [], []

    def add(self, name, parent, head, tail):
        self.names.append(name)
        self.parents.append(-1 if parent is None else self.names.index(parent))
        self.heads.append(np.asarray(head, float))
        self.tails.append(np.asarray(tail, float))
        return name

    def chain(self, names, parent, points):
        for k, name in enumerate(names):
            parent = self.add(name, parent, points[k], points[k + 1])
        return parent


def _points(a, b, n):
    return [np.asarray(a, float) + (np.asarray(b, float) - np.asarray(a, float)) * k / n for k in range(n + 1)]


def skeleton(style: str, pose: str = "T", height: float = 1.0, roll_seed: int | None = None,
             prefix: str = "mixamorig:") -> Skeleton:
    """A humanoid of `style` ('MIXAMO', 'UE5', 'MPFB', 'METARIG') in T- or A-pose, scaled by `height`."""
    s = height
    arm_down = 0.0 if pose == "T" else np.radians(45.0)
    pelvis = np.array([0.0, 0.0, 1.02]) * s
    chest_top = np.array([0.0, 0.02, 1.46]) * s
    neck_top = np.array([0.0, 0.0, 1.60]) * s
    head_top = np.array([0.0, -0.02, 1.80]) * s
    b = _Builder()
    legs, arms = {}, {}
    for side, sx in (("L", 1.0), ("R", -1.0)):
        hip = np.array([0.10 * sx, 0.0, 0.96]) * s
        knee = np.array([0.11 * sx, -0.02, 0.53]) * s
        ankle = np.array([0.11 * sx, 0.03, 0.09]) * s
        toe = np.array([0.11 * sx, -0.10, 0.025]) * s
        toe_end = np.array([0.11 * sx, -0.17, 0.02]) * s
        legs[side] = (hip, knee, ankle, toe, toe_end)
        clav = np.array([0.03 * sx, 0.0, 1.42]) * s
        shoulder = np.array([0.19 * sx, 0.02, 1.43]) * s
        d = np.array([np.cos(arm_down) * sx, 0.0, -np.sin(arm_down)])
        elbow = shoulder + 0.29 * s * d
        wrist = elbow + 0.26 * s * d
        hand_end = wrist + 0.09 * s * d
        arms[side] = (clav, shoulder, elbow, wrist, hand_end, d)
    if style == "MIXAMO":
        p = prefix
        b.add(p + "Hips", None, pelvis, pelvis + [0, 0, 0.1 * s])
        top = b.chain([p + "Spine", p + "Spine1", p + "Spine2"], p + "Hips", _points(pelvis + [0, 0, 0.1 * s], chest_top, 3))
        b.add(p + "Neck", top, chest_top, neck_top)
        b.add(p + "Head", p + "Neck", neck_top, head_top)
        for side, name in (("L", "Left"), ("R", "Right")):
            hip, knee, ankle, toe, toe_end = legs[side]
            b.chain([p + f"{name}UpLeg", p + f"{name}Leg", p + f"{name}Foot", p + f"{name}ToeBase"], p + "Hips",
                    [hip, knee, ankle, toe, toe_end])
            clav, shoulder, elbow, wrist, hand_end, d = arms[side]
            b.chain([p + f"{name}Shoulder", p + f"{name}Arm", p + f"{name}ForeArm", p + f"{name}Hand"], top,
                    [clav, shoulder, elbow, wrist, hand_end])
            _fingers(b, p + f"{name}Hand", wrist, d, s, side, lambda f, k, n=name: p + f"{n}Hand{f.title()}{k}")
    elif style == "UE5":
        b.add("root", None, [0, 0, 0], [0, 0.2 * s, 0])
        b.add("pelvis", "root", pelvis, pelvis + [0, 0, 0.08 * s])
        top = b.chain([f"spine_0{k}" for k in range(1, 6)], "pelvis", _points(pelvis + [0, 0, 0.08 * s], chest_top, 5))
        b.chain(["neck_01", "neck_02", "head"], top, _points(chest_top, neck_top, 2) + [head_top])
        for side, sl in (("L", "l"), ("R", "r")):
            hip, knee, ankle, toe, toe_end = legs[side]
            b.chain([f"thigh_{sl}", f"calf_{sl}", f"foot_{sl}", f"ball_{sl}"], "pelvis", [hip, knee, ankle, toe, toe_end])
            b.add(f"thigh_twist_01_{sl}", f"thigh_{sl}", (hip + knee) / 2, knee)
            clav, shoulder, elbow, wrist, hand_end, d = arms[side]
            b.chain([f"clavicle_{sl}", f"upperarm_{sl}", f"lowerarm_{sl}", f"hand_{sl}"], top,
                    [clav, shoulder, elbow, wrist, hand_end])
            b.add(f"upperarm_twist_01_{sl}", f"upperarm_{sl}", (shoulder + elbow) / 2, elbow)
            b.add(f"lowerarm_twist_01_{sl}", f"lowerarm_{sl}", (elbow + wrist) / 2, wrist)
            _fingers(b, f"hand_{sl}", wrist, d, s, side, lambda f, k, sl=sl: f"{f}_0{k}_{sl}")
        b.add("ik_foot_root", "root", [0, 0, 0], [0, 0, 0.1 * s])
    elif style == "MPFB":
        b.add("root", None, pelvis, pelvis + [0, 0, 0.06 * s])
        top = b.chain(["spine05", "spine04", "spine03", "spine02", "spine01"], "root",
                      _points(pelvis + [0, 0, 0.06 * s], chest_top, 5))
        b.chain(["neck01", "neck02", "neck03", "head"], top, _points(chest_top, neck_top, 3) + [head_top])
        for side in ("L", "R"):
            hip, knee, ankle, toe, toe_end = legs[side]
            b.add(f"pelvis.{side}", "root", pelvis, hip)
            mid_k, mid_s = (hip + knee) / 2, (knee + ankle) / 2
            b.chain([f"upperleg01.{side}", f"upperleg02.{side}", f"lowerleg01.{side}", f"lowerleg02.{side}",
                     f"foot.{side}"], f"pelvis.{side}", [hip, mid_k, knee, mid_s, ankle, toe])
            for t in (1, 2, 3, 4, 5):
                off = np.array([(t - 3) * 0.012 * (1 if side == "L" else -1), 0, 0]) * s
                b.add(f"toe{t}-1.{side}", f"foot.{side}", toe + off, toe_end + off)
            clav, shoulder, elbow, wrist, hand_end, d = arms[side]
            mid_u, mid_l = (shoulder + elbow) / 2, (elbow + wrist) / 2
            b.chain([f"clavicle.{side}", f"shoulder01.{side}"], top, [clav, (clav + shoulder) / 2, shoulder])
            b.chain([f"upperarm01.{side}", f"upperarm02.{side}", f"lowerarm01.{side}", f"lowerarm02.{side}",
                     f"wrist.{side}"], f"shoulder01.{side}", [shoulder, mid_u, elbow, mid_l, wrist, hand_end])
            names = {"thumb": 1, "index": 2, "middle": 3, "ring": 4, "pinky": 5}
            _fingers(b, f"wrist.{side}", wrist, d, s, side, lambda f, k, side=side: f"finger{names[f]}-{k}.{side}")
    elif style == "METARIG":  # Rigify human metarig names (the real metarig is tested through Rigify itself)
        b.chain(["spine", "spine.001", "spine.002", "spine.003"], None, _points(pelvis, chest_top, 4))
        b.chain(["spine.004", "spine.005", "spine.006"], "spine.003", _points(chest_top, neck_top, 2) + [head_top])
        for side in ("L", "R"):
            hip, knee, ankle, toe, toe_end = legs[side]
            b.chain([f"thigh.{side}", f"shin.{side}", f"foot.{side}", f"toe.{side}"], "spine", [hip, knee, ankle, toe, toe_end])
            clav, shoulder, elbow, wrist, hand_end, d = arms[side]
            b.chain([f"shoulder.{side}", f"upper_arm.{side}", f"forearm.{side}", f"hand.{side}"], "spine.003",
                    [clav, shoulder, elbow, wrist, hand_end])
            pre = {"thumb": "thumb", "index": "f_index", "middle": "f_middle", "ring": "f_ring", "pinky": "f_pinky"}
            _fingers(b, f"hand.{side}", wrist, d, s, side, lambda f, k, side=side: f"{pre[f]}.0{k}.{side}")
    else:
        raise ValueError(style)
    rng = np.random.default_rng(roll_seed)
    rolls = rng.uniform(-np.pi, np.pi, len(b.names)) if roll_seed is not None else np.zeros(len(b.names))
    return Skeleton(b.names, b.parents, np.array(b.heads), np.array(b.tails), rolls)


def _fingers(b: _Builder, parent: str, wrist, d, s, side, name_of) -> None:
    base = wrist + 0.09 * s * d
    side_dir = np.array([0.0, -1.0, 0.0])
    for i, f in enumerate(("thumb", "index", "middle", "ring", "pinky")):
        start = base + side_dir * (0.03 * (1.5 - i)) * s
        fd = d if f != "thumb" else (d + np.array([0, -0.7, -0.3])) / np.linalg.norm(d + np.array([0, -0.7, -0.3]))
        pts = [start + fd * 0.028 * s * k for k in range(4)]
        b.chain([name_of(f, k) for k in (1, 2, 3)], parent, pts)


# ------------------------------------------------------------------------------------ source motion
def smplx_source(body: BodyModel, betas=None) -> tuple[RigSpec, object]:
    """The add-on's own SMPL-X rig (core.skeleton) as a RigSpec, and its RigRest."""
    rest = build_rig_rest(body, np.zeros(10) if betas is None else betas)
    lengths = np.linalg.norm(rest.tails - rest.heads, axis=1)
    return RigSpec(rest.names, rest.parents, rest.matrices, np.eye(4), lengths=lengths), rest


def walking_motion(n_frames: int, fps: float = 30.0, seed: int = 0, amplitude: float = 0.5,
                   pelvis_height: float = 0.9):
    """SMPL-X full pose [T, 55, 3] (radians) of a walk with random limb motion, and the pelvis W position
    [T, 3] (W, y down): random smooth limb motion, the pelvis `pelvis_height` above W's y = 0 plane moving
    along x at 0.6 m/s."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_frames) / fps
    pose = np.zeros((n_frames, 55, 3))
    freq = rng.uniform(0.3, 1.2, (55, 3))
    phase = rng.uniform(0, 2 * np.pi, (55, 3))
    amp = rng.uniform(0.0, amplitude, (55, 3))
    pose += amp * np.sin(2 * np.pi * freq * t[:, None, None] + phase)
    pose[:, 0] = [np.pi, 0.0, 0.0]  # upright in W (y down): SMPL's y up -> W's -y
    pose[:, 0, 1] += 0.3 * np.sin(2 * np.pi * 0.2 * t)
    pelvis = np.stack([0.6 * t, -pelvis_height + 0.02 * np.sin(4 * np.pi * t), 4.0 + 0.1 * t], axis=1)
    return pose, pelvis


def source_local(rest, pose: np.ndarray, pelvis_world: np.ndarray) -> np.ndarray:
    """Local matrices [T, J, 4, 4] of the SMPL-X rig for full pose [T, J, 3] and pelvis W positions [T, 3]."""
    quats, root_loc = pose_to_bone_channels(pose, pelvis_world, rest)
    loc = np.zeros(quats.shape[:2] + (3,))
    loc[:, 0] = root_loc
    return compose_local(quaternion_to_matrix(quats), loc)


def lock_feet(source: RigSpec, local: np.ndarray, runs) -> np.ndarray:
    """Shift the root so that joint `name`'s head stays at its world position of frame a, on the floor
    (its rest height), for every (name, a, b) run; returns new local matrices [T, J, 4, 4]."""
    from blender_addon.core.retarget.rig import forward

    local = local.copy()
    root_rot = source.rest[0, :3, :3]
    for name, a, b in runs:
        j = source.index[name]
        heads = forward(source, local)[:, j, :3, 3]
        anchor = heads[a].copy()
        anchor[2] = source.rest[j, 2, 3]
        local[a:b, 0, :3, 3] += (anchor - heads[a:b]) @ root_rot  # R_restᵀ·Δ for row vectors
    return local
