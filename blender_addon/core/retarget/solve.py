"""Rest-pose-corrected transfer of world bone directions from an SMPL-X rig onto any humanoid rig.

Rotations (3x3, world unless noted; O = object rotation without scale, A = rest bone rotation in
armature space, P = posed armature-space rotation):
1. Reference pose of the target, parents first: K_b = R_p·(O_t·A_p)ᵀ·(O_t·A_b) (the bone carried by its
   parent's reference; a root bone: K_b = O_t·A_b). A bone mapped to joint s is swung (minimal rotation,
   keeping its roll) so its direction equals s's rest direction: R_b = Swing(K_b·ŷ → O_s·A_s·ŷ)·K_b;
   other bones keep R_b = K_b. The target's own rest (T-pose, A-pose, any roll or axis) is only read.
2. Per frame, the source's world delta D_s(t) = O_s·P_s(t)·(O_s·A_s)ᵀ. Mapped bones: G_b = D_s·R_b, so
   the target bone points exactly where the source bone points. Chain bones (spine, neck of another
   length) take D interpolated (slerp) at their normalised arc position along the source chain. Other
   bones follow their parent: G_b = G_p·R_pᵀ·R_b.
   A bone whose parent is mapped to its joint's own parent skips the world rotations: its local rotation
   is the source joint's local rotation between two constant matrices (see `retarget_channels`), so the
   source's forward kinematics only runs for the joints the other bones, the root and the feet need.
3. Local rotation for Blender: M_b = O_tᵀ·G_b, L_b = A_bᵀ·A_p·M_pᵀ·M_b (root: A_bᵀ·M_b).
4. Root: the hips bone's head moves by k·(pelvis(t) − pelvis_rest) in world space, k = target leg
   length / source leg length (hip→knee→ankle, world units), from its own rest position; in-place drops
   the horizontal (world x, y) part. Optionally foot contacts of the source are kept planted
   (`contacts.root_offsets`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..rotations import matrix_to_quaternion, quaternion_to_matrix
from .bonemaps import BODY_JOINTS, BoneMap
from .contacts import ContactOptions, detect_contacts, root_offsets
from .rig import RigError, RigSpec, forward, pose_all, posed_bones

_Y = np.array([0.0, 1.0, 0.0])
FOOT_POINTS = ("left_ankle", "left_foot", "right_ankle", "right_foot")
LEG = (("left_hip", "left_knee", "left_ankle"), ("right_hip", "right_knee", "right_ankle"))


@dataclass
class RetargetOptions:
    in_place: bool = False
    keep_contacts: bool = True
    fps: float = 30.0  # frames per second of the motion (contact speeds)
    contacts: ContactOptions = field(default_factory=ContactOptions)


@dataclass
class RetargetResult:
    """Local channels for the target: bones [n] names written, rotations [n, T, 3, 3] (bone-local),
    hips_location [T, 3] (the hips bone's pose location, None without a hips bone), leg ratio k,
    contacts [T, 4] of the source foot points (FOOT_POINTS), unmapped = SMPL-X body joints no target
    bone follows, root_shift [T, 3] world metres added by contact keeping."""

    bones: list[str]
    rotations: np.ndarray
    hips: str | None
    hips_location: np.ndarray | None
    leg_ratio: float
    contacts: np.ndarray | None
    unmapped: list[str]
    root_shift: np.ndarray | None = None


def swing(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Minimal rotation [3, 3] taking unit vector a onto unit vector b."""
    a = a / np.linalg.norm(a)
    b = b / np.linalg.norm(b)
    v = np.cross(a, b)
    c = float(np.dot(a, b))
    if c < -1.0 + 1e-12:  # opposite: half turn about any axis perpendicular to a
        axis = np.cross(a, [1.0, 0.0, 0.0])
        if np.linalg.norm(axis) < 1e-6:
            axis = np.cross(a, [0.0, 0.0, 1.0])
        axis /= np.linalg.norm(axis)
        return 2.0 * np.outer(axis, axis) - np.eye(3)
    vx = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + vx + vx @ vx / (1.0 + c)


def slerp_matrices(r0: np.ndarray, r1: np.ndarray, t: float) -> np.ndarray:
    """Spherical interpolation between rotation stacks r0, r1 [T, 3, 3] at fraction t."""
    if t <= 0.0:
        return r0
    if t >= 1.0:
        return r1
    q0, q1 = matrix_to_quaternion(r0), matrix_to_quaternion(r1)
    dot = np.sum(q0 * q1, axis=-1, keepdims=True)
    q1 = np.where(dot < 0, -q1, q1)
    dot = np.abs(dot).clip(max=1.0)
    theta = np.arccos(dot)
    s = np.sin(theta)
    small = s < 1e-8
    w0 = np.where(small, 1.0 - t, np.sin((1.0 - t) * theta) / np.where(small, 1.0, s))
    w1 = np.where(small, t, np.sin(t * theta) / np.where(small, 1.0, s))
    return quaternion_to_matrix(w0 * q0 + w1 * q1)


def leg_length(rig: RigSpec, bones: dict[str, str]) -> float:
    """Mean hip→knee→ankle length of both legs in world units; bones maps joint -> bone name."""
    heads = (rig.object_matrix @ rig.rest)[:, :3, 3]
    total = []
    for chain in LEG:
        if all(j in bones for j in chain):
            h = [heads[rig.index[bones[j]]] for j in chain]
            total.append(np.linalg.norm(h[1] - h[0]) + np.linalg.norm(h[2] - h[1]))
    if not total:
        raise RigError("the bone map has no complete leg (hip, knee, ankle); map them to scale the root motion")
    return float(np.mean(total))


def _arc_positions(heads: np.ndarray, tail: np.ndarray) -> np.ndarray:
    """Normalised arc length [n] of each bone's midpoint along a chain of heads [n, 3] ending at tail [3]."""
    pts = np.vstack([heads, tail[None]])
    seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    total = cum[-1] if cum[-1] > 0 else 1.0
    return (cum[:-1] + 0.5 * seg) / total


def retarget(source: RigSpec, source_local: np.ndarray, target: RigSpec, bone_map: BoneMap,
             options: RetargetOptions | None = None) -> RetargetResult:
    """Retarget source motion (local matrices [T, Js, 4, 4], see `rig.forward`) onto `target`
    (see `retarget_channels`)."""
    return retarget_channels(source, np.ascontiguousarray(np.moveaxis(source_local[..., :3, :3], 1, 0)),
                             np.ascontiguousarray(np.moveaxis(source_local[..., :3, 3], 1, 0)), target, bone_map,
                             options)


def retarget_channels(source: RigSpec, rotation: np.ndarray, location: np.ndarray, target: RigSpec,
                      bone_map: BoneMap, options: RetargetOptions | None = None) -> RetargetResult:
    """Retarget source motion, bone-major local rotations [Js, T, 3, 3] and locations [Js, T, 3], onto
    `target`.

    `bone_map` must already be resolved against the target (`BoneMap.resolve`). Raises RigError when
    a mapped source joint is missing from the source or the map has no usable leg.
    """
    o = options or RetargetOptions()
    missing_src = sorted({s for s in bone_map.bones.values() if s not in source.index}
                         | {s for src, _ in bone_map.chains for s in src if s not in source.index})
    if missing_src:
        raise RigError(f"the source rig has no bone(s) {', '.join(missing_src)} named in the bone map")
    t_frames = rotation.shape[1]
    o_s, o_t = source.object_rotation, target.object_rotation
    n_t = len(target.names)
    a_t = target.rest[:, :3, :3]
    w_rest_s = o_s @ source.rest[:, :3, :3]  # [Js, 3, 3]
    w_rest_t_full = target.object_matrix @ target.rest
    src_world_rest = source.object_matrix @ source.rest
    chain_bones = {b for src, tgt in bone_map.chains for b in tgt if b not in bone_map.bones}
    written = [b for b, name in enumerate(target.names) if name in bone_map.bones or name in chain_bones]
    joint_of = {b: source.index[bone_map.bones[target.names[b]]] for b in written if target.names[b] in bone_map.bones}

    # 1. reference pose of the target
    ref = np.empty((n_t, 3, 3))
    for b, p in enumerate(target.parents):
        k_b = o_t @ a_t[b] if p < 0 else ref[p] @ (o_t @ a_t[p]).T @ (o_t @ a_t[b])
        if b in joint_of:
            k_b = swing(k_b @ _Y, w_rest_s[joint_of[b]] @ _Y) @ k_b
        ref[b] = k_b

    # A bone mapped to joint s whose parent is mapped to s's own parent needs no forward kinematics:
    # G_pᵀ·G_b = R_pᵀ·W_p·(P_pᵀ·P_s)·W_sᵀ·R_b and P_pᵀ·P_s = A_pᵀ·A_s·L_s (W = O_s·A, the source's
    # world rest), so L_b = (C_b·R_pᵀ·O_s·A_s)·L_s·(W_sᵀ·R_b), constants around the source's local rotation.
    direct = [b for b in written if b in joint_of and target.parents[b] in joint_of
              and source.parents[joint_of[b]] == joint_of[target.parents[b]]]
    # the rest go through world rotations G: theirs and their parents' (undriven parents follow their own
    # parent up to a driven bone: local stays at rest, G_b = G_p·R_pᵀ·R_b)
    direct_set = set(direct)
    general = [b for b in written if b not in direct_set]
    needed = np.zeros(n_t, dtype=bool)
    for b in general:
        needed[b] = True
        p = target.parents[b]
        while p >= 0 and not needed[p]:
            needed[p] = True
            if p in joint_of or target.names[p] in chain_bones:
                break
            p = target.parents[p]
    chain_joints = [source.index[j] for src, tgt in bone_map.chains for j in src]
    feet_and_pelvis = [source.index[j] for j in FOOT_POINTS + ("pelvis",) if j in source.index]
    fk_joints = sorted({joint_of[b] for b in np.flatnonzero(needed) if b in joint_of} | set(chain_joints)
                       | set(feet_and_pelvis))
    # bone-major [J, T, ...] throughout: every bone's frames are one contiguous block
    posed_r, posed_h = pose_all(source, rotation, location, fk_joints)

    def delta(j):  # D_s = O_s·P_s·(O_s·A_s)ᵀ [..., T, 3, 3] of source joint(s) j
        d = posed_r[j] @ np.swapaxes(w_rest_s[j], -1, -2)[..., None, :, :]
        return d if np.allclose(o_s, np.eye(3)) else o_s @ d

    chain_delta: dict[str, np.ndarray] = {}
    for src, tgt in bone_map.chains:
        si = [source.index[s] for s in src]
        ti = [target.index[b] for b in tgt]
        if not any(needed[b] for b in ti if target.names[b] in chain_bones):
            continue
        src_tail = src_world_rest[si[-1], :3, 3] + w_rest_s[si[-1]] @ _Y * (
            source.lengths[si[-1]] * source.object_scale if source.lengths is not None else 0.0)
        tgt_tail = w_rest_t_full[ti[-1], :3, 3] + (w_rest_t_full[ti[-1], :3, :3] @ _Y) * (
            target.lengths[ti[-1]] if target.lengths is not None else 0.0)
        us = _arc_positions(src_world_rest[si, :3, 3], src_tail)
        ut = _arc_positions(w_rest_t_full[ti, :3, 3], tgt_tail)
        for b, u in zip(tgt, ut):
            if b not in chain_bones:
                continue
            k = int(np.clip(np.searchsorted(us, u) - 1, 0, len(si) - 1))
            if k + 1 < len(si) and u > us[k]:
                lam = (u - us[k]) / (us[k + 1] - us[k])
                chain_delta[b] = slerp_matrices(delta(si[k]), delta(si[k + 1]), float(lam))
            else:
                chain_delta[b] = delta(si[0] if u <= us[0] else si[k])

    # 2. world rotations G of the bones that need them, in compact slots [n + 1, T, 3, 3]; the last
    # slot is the identity "world" of a parent nobody animates
    slot = np.full(n_t, -1, dtype=np.int64)
    slot[np.flatnonzero(needed)] = np.arange(int(needed.sum()))
    none = int(needed.sum())
    world = np.empty((none + 1, t_frames, 3, 3))
    world[none] = np.eye(3)
    animated = np.zeros(n_t, dtype=bool)
    mapped = [b for b in np.flatnonzero(needed) if b in joint_of]
    if mapped:
        world[slot[mapped]] = delta([joint_of[b] for b in mapped]) @ ref[mapped, None]
    for b in np.flatnonzero(needed):
        if target.names[b] in chain_delta:
            world[slot[b]] = chain_delta[target.names[b]] @ ref[b]
    animated[mapped] = True
    animated[[target.index[name] for name in chain_delta]] = True
    for level in target.depth_levels()[1:]:
        follow = level[needed[level] & ~animated[level]]
        follow = follow[animated[target.parents[follow]]]
        if len(follow):
            fp = target.parents[follow]
            world[slot[follow]] = world[slot[fp]] @ (np.swapaxes(ref[fp], -1, -2) @ ref[follow])[:, None]
            animated[follow] = True

    # 3. bone-local rotations L_b = C_b·G_pᵀ·G_b with M = O_tᵀ·G: C_b = A_bᵀ·A_p (a parent not animated:
    # G_p = O_t·A_p, folded into C_b with the identity slot as G_p; a root: C_b = A_bᵀ·O_tᵀ)
    w_idx = np.array(written, dtype=np.int64)
    parent = target.parents[w_idx]
    has_world = (parent >= 0) & animated[np.maximum(parent, 0)] | np.isin(parent, list(joint_of))
    rest_p = a_t[np.maximum(parent, 0)]
    left = np.swapaxes(a_t[w_idx], -1, -2) @ np.where(
        (parent < 0)[:, None, None], o_t.T,
        np.where(has_world[:, None, None], rest_p, rest_p @ np.swapaxes(o_t @ rest_p, -1, -2)))
    rotations = np.empty((len(written), t_frames, 3, 3))  # bone-major: contiguous per bone
    position = {b: i for i, b in enumerate(written)}
    if direct:
        i = [position[b] for b in direct]
        s = [joint_of[b] for b in direct]
        rp = ref[target.parents[direct]]
        k1 = left[i] @ np.swapaxes(rp, -1, -2) @ o_s @ source.rest[s, :3, :3]
        k2 = np.swapaxes(w_rest_s[s], -1, -2) @ ref[direct]
        rotations[i] = k1[:, None] @ rotation[s] @ k2[:, None]
    if general:
        i = [position[b] for b in general]
        gp = target.parents[general]
        parent_world = world[np.where(has_world[i], slot[np.maximum(gp, 0)], none)]
        rotations[i] = left[i, None] @ np.swapaxes(parent_world, -1, -2) @ world[slot[general]]

    joint_to_bone = {}
    for bone, joint in bone_map.bones.items():
        joint_to_bone.setdefault(joint, bone)
    unmapped = [j for j in BODY_JOINTS if j not in joint_to_bone
                and not any(j in src for src, _ in bone_map.chains)]
    src_bones = {j: j for j in source.names}
    k = leg_length(target, joint_to_bone) / leg_length(source, src_bones)

    result = RetargetResult([target.names[b] for b in written], rotations, None, None, k, None, unmapped)
    hips = bone_map.hips
    if hips is None or hips not in target.index or "pelvis" not in source.index:
        return result
    h = target.index[hips]
    pelvis = source.index["pelvis"]
    p_src = posed_h[pelvis] @ source.object_matrix[:3, :3].T + source.object_matrix[:3, 3]
    p_src0 = src_world_rest[pelvis, :3, 3]
    move = k * (p_src - p_src0)
    if o.in_place:
        move[:, :2] = 0.0
    head_w = w_rest_t_full[h, :3, 3] + move  # [T, 3]
    result.hips = hips
    rot_by_bone = dict(zip(written, rotations))
    result.hips_location = _hips_location(target, h, rot_by_bone, head_w)

    if o.keep_contacts and all(j in joint_to_bone for j in FOOT_POINTS) and all(j in source.index for j in FOOT_POINTS):
        si = [source.index[j] for j in FOOT_POINTS]
        src_pts = np.moveaxis(posed_h[si], 0, 1) @ source.object_matrix[:3, :3].T + source.object_matrix[:3, 3]
        contacts = detect_contacts(src_pts, o.fps, o.contacts)
        ti = [target.index[joint_to_bone[j]] for j in FOOT_POINTS]
        posed_t = posed_bones(target, rot_by_bone, {h: result.hips_location}, ti)
        tgt_pts = np.stack([np.broadcast_to(posed_t[b][1], (t_frames, 3)) for b in ti], axis=1)
        tgt_pts = tgt_pts @ target.object_matrix[:3, :3].T + target.object_matrix[:3, 3]
        rest_z = w_rest_t_full[ti, 2, 3]
        src_rest_z = src_world_rest[si, 2, 3]
        expected = rest_z + k * (src_pts[..., 2] - src_rest_z)
        pins = contacts.copy()  # a foot is pinned at its ankle while that is planted, else at its toe
        pins[:, 1] &= ~contacts[:, 0]
        pins[:, 3] &= ~contacts[:, 2]
        shift = root_offsets(tgt_pts, expected, pins)
        if o.in_place:
            shift[:, :2] = 0.0
        result.contacts = contacts
        result.root_shift = shift
        result.hips_location = _hips_location(target, h, rot_by_bone, head_w + shift)
    return result


def _hips_location(target: RigSpec, h: int, rotations: dict, head_w: np.ndarray) -> np.ndarray:
    """Pose location [T, 3] of bone h that puts its head at world positions head_w [T, 3]; rotations
    {bone: [T, 3, 3]} are the local rotations written (ancestors of h carry no location keys)."""
    inv_obj = np.linalg.inv(target.object_matrix)
    head_a = head_w @ inv_obj[:3, :3].T + inv_obj[:3, 3]
    # with zero location the head sits at the rest-carried position; location moves it along base_r
    base_r, base_t = posed_bones(target, {b: r for b, r in rotations.items() if b != h}, {}, [h])[h]
    diff = head_a - base_t
    return diff @ base_r if base_r.ndim == 2 else np.einsum("tab,ta->tb", base_r, diff)


def local_matrices(target: RigSpec, written: list[int] | list[str], rotations: np.ndarray, hips: int | None,
                   hips_location: np.ndarray | None) -> np.ndarray:
    """The target's local matrices [T, J, 4, 4] from the channels of a RetargetResult."""
    idx = [b if isinstance(b, (int, np.integer)) else target.index[b] for b in written]
    local = np.broadcast_to(np.eye(4), (rotations.shape[1], len(target.names), 4, 4)).copy()
    for i, b in enumerate(idx):
        local[:, b, :3, :3] = rotations[i]
    if hips is not None and hips_location is not None:
        local[:, hips, :3, 3] = hips_location
    return local


def world_heads(rig: RigSpec, local: np.ndarray, bones=None) -> np.ndarray:
    """World bone head positions [T, J, 3] for local matrices [T, J, 4, 4] (or [T, len(bones), 3])."""
    posed = forward(rig, local, bones)
    if bones is not None:
        posed = posed[:, bones]
    return np.einsum("ab,tjb->tja", rig.object_matrix[:3, :3], posed[..., :3, 3]) + rig.object_matrix[:3, 3]


def world_directions(rig: RigSpec, local: np.ndarray) -> np.ndarray:
    """World unit bone directions (Y axes) [T, J, 3] for local matrices [T, J, 4, 4]."""
    posed = forward(rig, local)
    d = np.einsum("ab,tjb->tja", rig.object_matrix[:3, :3], posed[..., :3, 1])
    return d / np.linalg.norm(d, axis=-1, keepdims=True)
