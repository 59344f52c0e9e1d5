"""The offline refinement stage: a job's decoded messages in, refined messages out.

`refine_job(header, frames, tracks, end, options)` never modifies its inputs (the raw file stays as it
is) and never raises on bad data: whatever it cannot do is left unchanged and explained in
`header['refinement']['reasons']`. Steps, in order:
1. smoothing per person and contiguous segment (outlier frames + zero-phase filters on SO(3) and on
   the pelvis position, as wide per frame as the data allow and robust to large noise samples:
   `smooth.robust_filter`; for the pelvis orientation and the upper body, one width for the whole segment
   instead where cross-validation prefers it; camera only if asked); the same filters capped at narrower
   widths give the pose that contacts are found on;
2. gravity and floor (`ground.estimate_floor`) and one rigid transform A (4x4, raw W -> refined world)
   applied to cameras, people and points, so reprojection is unchanged; with the floor known, the pelvis's
   horizontal axes filtered again on their own, wider (`_smooth_root_horizontal`);
3. foot contacts (`contacts`; where someone jumps, found again with each ground phase's root filtered
   apart from the flights, so the take-off and landing kinks do not blur them); where someone jumps the
   leg joint rotations filtered again per ground and flight phase (`_piecewise_body`); the pelvis height
   in flight put on a ballistic path joined to the push and landing around it, the root moved towards where
   the planted feet put it, foot lock + penetration removal (`footlock`), in the refined world.
The refined world keeps the protocol's conventions (OpenCV axes, metres) with the floor at y = 0 and
up = -y; `header['conventions']['from_raw']` holds A and `['world']` names the refined world.
Per frame, `people['contacts']` [n, 4] u1 marks contacts (left heel, left toe, right heel, right toe).
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from ..body_model import BodyModel
from ..rotations import axis_angle_to_matrix, matrix_to_quaternion, quaternion_to_matrix
from . import options as o
from .contacts import centred_speed, detect_contacts, dilate
from .footlock import (GRAVITY_MS2, apply_leg_ik, ballistic_root, flight_runs, ground_root, lock_corrections,
                       penetration_push, planted_root_shift, root_shift, within_reach)
from .ground import estimate_floor, floor_transform
from .kinematics import (BODY_JOINTS, L_ANKLE, L_FOOT, L_HIP, L_KNEE, R_ANKLE, R_FOOT, R_HIP, R_KNEE, BodyShape,
                         foot_points, forward, leg_extension, local_matrices)
from .options import CleanupOptions
from .smooth import (acceleration_axes, adaptive_filter, continuous, fill_frames, gaussian_filter, noise_sigma,
                     outlier_frames, robust_filter, smooth_quaternions)
from .so3 import aa_to_quat, quat_to_aa

REFINED_WORLD = ("refined: OpenCV axes (x right, y down, z forward), metres; floor plane y = 0, up = -y; "
                 "the first camera looks along +z (ground-projected) and stands above the origin; "
                 "p_refined = from_raw @ p_raw")
# SMPL-X rotation fields: (name, joints) in the full-pose order used here.
# body_pose rows of hips, knees, ankles, feet (body_pose starts at joint 1: joint 0 is the global orientation)
LEG_ROWS = [j - 1 for j in (L_HIP, R_HIP, L_KNEE, R_KNEE, L_ANKLE, R_ANKLE, L_FOOT, R_FOOT)]
HIPS_KNEES = slice(0, 4)  # their places in LEG_ROWS (a crouch bends them)
# body joints (0 = pelvis orientation) whose rotation keeps the adaptive widths only where leave-one-out
# cross-validation prefers them to one width for the whole segment (`smooth.cross_validated_level`): the pelvis
# orientation, spine, neck, head, collars and arms. Their rotations came 15-26 % closer to the truth on the
# test scenes; on 56 generated scenes the mean MPJPE fell from 9.3 to 8.5 mm, one knee pop went away and no
# other criterion changed. The legs carry the feet, which the contacts and the lock are found on: with one
# width for the legs too, 4-5 walkers' knees popped per 28 scenes and skating rose to 0.9 mm/frame. Someone who
# jumps keeps the adaptive widths for the pelvis orientation too (`_Person.orient_adaptive`): one width for
# the whole clip blurred its pitch at the take-offs and landings, and two jumpers' knees popped.
CROSS_VALIDATED_JOINTS = ~np.isin(np.arange(BODY_JOINTS), [r + 1 for r in LEG_ROWS])
ROT_FIELDS = (("global_orient", 1), ("body_pose", 21), ("jaw_pose", 1), ("leye_pose", 1), ("reye_pose", 1),
              ("left_hand_pose", 15), ("right_hand_pose", 15))


@dataclass
class Refined:
    """Refined messages (inputs are untouched) and the report stored in header['refinement']."""

    header: dict | None
    frames: list[dict]
    tracks: list[dict]
    end: dict | None
    report: dict = field(default_factory=dict)


@dataclass
class _Person:
    pid: int
    where: list[tuple[int, int]]  # (frame position, row) per sample
    rot: dict[str, np.ndarray]  # field -> [T, k, 3] axis-angle float64
    transl: np.ndarray  # [T, 3]
    betas: np.ndarray  # [T, B]
    valid: np.ndarray  # [T] all values finite
    pelvis0: np.ndarray | None = None  # [T, 3] J_0(β_frame)
    contacts: np.ndarray | None = None  # [T, 4]
    changed: bool = False
    sel: np.ndarray | None = None  # rows of this person in the stacked table
    root_obs: np.ndarray | None = None  # [T, 3] pelvis samples before smoothing (outlier frames filled)
    body_obs: np.ndarray | None = None  # [T, 22, 4] body quaternions before smoothing (sign-continuous, outliers filled)
    detect: dict | None = None  # the pose contacts are found on: 'body' [T, 22, 3] axis-angle, 'root' [T, 3] pelvis
    orient_adaptive: np.ndarray | None = None  # [T, 1, 3] pelvis orientation with the adaptive widths alone


def _py(value):
    """numpy scalars/arrays -> plain Python values for the header (msgpack-safe)."""
    if isinstance(value, dict):
        return {str(k): _py(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_py(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _fps(header: dict, frames: list[dict]) -> float:
    times = np.array([f.get("time", np.nan) for f in frames], dtype=np.float64)
    dt = np.diff(times)
    dt = dt[np.isfinite(dt) & (dt > 0)]
    if len(dt):
        return float(1.0 / np.median(dt))
    fps = float((header.get("video") or {}).get("fps") or 30.0)
    stride = int((header.get("options") or {}).get("stride") or 1)
    return fps / max(stride, 1) if np.isfinite(fps) and fps > 0 else 30.0


def _segments(positions: np.ndarray, valid: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) sample ranges of consecutive frames whose values are all finite."""
    out = []
    start = None
    for i in range(len(positions) + 1):
        ok = i < len(positions) and valid[i] and (start is None or positions[i] == positions[i - 1] + 1)
        if start is not None and not ok:
            out.append((start, i))
            start = None
        if start is None and i < len(positions) and valid[i]:
            start = i
    return out


class _LockCounts(NamedTuple):
    """What step 3 did to one person (summed into the report)."""

    contact_samples: int
    ik_clamped_frames: int
    penetration_frames_fixed: int
    ballistic_frames: int


@dataclass
class _Rows:
    """Every frame's people rows stacked: offsets [F+1] into the table, and per field a float64 table
    (rotations [N, k, 3], transl [N, 3], betas [N, B]); NaN where a frame's array was missing or malformed."""

    offsets: np.ndarray
    ids: np.ndarray
    tables: dict[str, np.ndarray]


def _stack_rows(frames: list[dict]) -> _Rows:
    counts = []
    ids = []
    for f in frames:
        i = np.asarray((f.get("people") or {}).get("id", np.zeros(0, np.int32))).reshape(-1)
        ids.append(i.astype(np.int64))
        counts.append(len(i))
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    shapes = {name: (n, 3) for name, n in ROT_FIELDS}
    shapes["transl"] = (3,)
    tables = {}
    people_maps = [f.get("people") or {} for f in frames]
    for name, shape in list(shapes.items()) + [("betas", None)]:
        parts = [m.get(name) for m in people_maps]
        if shape is None:  # betas: the width of the first well-formed array
            shape = next((np.shape(a)[1:] for a in parts if a is not None and np.ndim(a) == 2), (10,))
        size = int(np.prod(shape))
        out = []
        for a, n in zip(parts, counts):
            if a is None and name != "betas" and name != "transl":
                out.append(np.zeros((n,) + shape))  # a missing pose field counts as zero rotation
            elif a is None or len(a) != n or np.size(a) != n * size:
                out.append(np.full((n,) + shape, np.nan))  # malformed: the row is invalid, left unchanged
            else:
                out.append(a)
        tables[name] = (np.concatenate([np.reshape(a, (len(a),) + shape) for a in out]).astype(np.float64)
                        if out else np.zeros((0,) + shape))
    return _Rows(offsets, np.concatenate(ids) if ids else np.zeros(0, np.int64), tables)


def collect_people(rows: _Rows) -> list[_Person]:
    """Per track id (in order of appearance), its samples in frame order (float64 copies)."""
    frame_of = np.repeat(np.arange(len(rows.offsets) - 1), np.diff(rows.offsets))
    people = []
    _, first = np.unique(rows.ids, return_index=True)
    for pid in rows.ids[np.sort(first)]:
        sel = np.flatnonzero(rows.ids == pid)
        where = list(zip(frame_of[sel].tolist(), (sel - rows.offsets[frame_of[sel]]).tolist()))
        rot = {name: rows.tables[name][sel] for name, _ in ROT_FIELDS}
        transl, betas = rows.tables["transl"][sel], rows.tables["betas"][sel]
        finite = np.isfinite(transl).all(1) & np.isfinite(betas).all(1)
        for v in rot.values():
            finite &= np.isfinite(v).all((1, 2))
        people.append(_Person(int(pid), where, rot, transl, betas, finite, sel=sel))
    return people


def _each_person(work, people: list) -> list:
    """work(p) for every person, on threads: people are independent and numpy releases the GIL in the
    large array operations, so a crowd's smoothing spreads over the cores (Blender's Python included)."""
    if len(people) < 2:
        return [work(p) for p in people]
    with ThreadPoolExecutor(max_workers=min(len(people), os.cpu_count() or 1)) as pool:
        return list(pool.map(work, people))


def _levels(levels_s: tuple[float, ...], strength: float, fps: float) -> tuple[float, ...]:
    """Filter widths in frames for widths in seconds at smoothing strength 1."""
    return tuple(strength * fps * w for w in levels_s)


def _smooth_person(p: _Person, segs: list[tuple[int, int]], fps: float, strength: float) -> int:
    """Offline filter in place on each segment; returns the number of outlier frames replaced."""
    outliers = 0
    for s, e in segs:
        if e - s < 3:
            continue
        body = np.concatenate([p.rot["global_orient"][s:e], p.rot["body_pose"][s:e]], 1)  # [n, 22, 3]
        q_body = aa_to_quat(body)
        root = p.pelvis0[s:e] + p.transl[s:e]
        qc = continuous(q_body)
        if p.root_obs is None:
            p.root_obs = np.full((len(p.transl), 3), np.nan)
        bad = outlier_frames(np.concatenate([root, qc.reshape(e - s, -1)], 1), threshold=o.OUTLIER_THRESHOLD)
        outliers += int(bad.sum())
        p.root_obs[s:e] = fill_frames(root, bad)
        if p.body_obs is None:
            p.body_obs = np.full((len(p.transl), 22, 4), np.nan)
        p.body_obs[s:e] = fill_frames(qc, bad)
        if p.detect is None:
            p.detect = {"body": np.full((len(p.transl), 22, 3), np.nan), "root": np.full((len(p.transl), 3), np.nan)}
        q_body, q_detect = robust_filter(p.body_obs[s:e], _levels(o.SIGMA_BODY_LEVELS_S, strength, fps),
                                         o.GAMMA_BODY, o.BODY_CLIP, noise_dims=3,
                                         cap=_cap(o.SIGMA_BODY_LEVELS_S, o.CONTACT_SIGMA_MAX_BODY_S),
                                         cross_validate=CROSS_VALIDATED_JOINTS)
        q_body /= np.linalg.norm(q_body, axis=-1, keepdims=True)
        q_orient = robust_filter(p.body_obs[s:e, :1], _levels(o.SIGMA_BODY_LEVELS_S, strength, fps), o.GAMMA_BODY,
                                 o.BODY_CLIP, noise_dims=3)  # for someone who turns out to jump (step 3)
        if p.orient_adaptive is None:
            p.orient_adaptive = np.full((len(p.transl), 1, 3), np.nan)
        p.orient_adaptive[s:e] = quat_to_aa(q_orient / np.linalg.norm(q_orient, axis=-1, keepdims=True))
        p.detect["body"][s:e] = quat_to_aa(q_detect / np.linalg.norm(q_detect, axis=-1, keepdims=True))
        aa = quat_to_aa(q_body)
        p.rot["global_orient"][s:e], p.rot["body_pose"][s:e] = aa[:, :1], aa[:, 1:]
        for name, _n in ROT_FIELDS[2:]:
            q = smooth_quaternions(aa_to_quat(p.rot[name][s:e]), strength * o.SIGMA_HANDS_S * fps, bad)
            p.rot[name][s:e] = quat_to_aa(q)
        # per axis of the root's own acceleration: a jump's vertical take-off does not narrow the
        # filter of its quiet horizontal axes
        axes = acceleration_axes(p.root_obs[s:e])
        root, root_detect = robust_filter((p.root_obs[s:e] @ axes.T)[..., None],
                                          _levels(o.SIGMA_ROOT_LEVELS_S, strength, fps), o.GAMMA_ROOT, o.ROOT_CLIP,
                                          cap=_cap(o.SIGMA_ROOT_LEVELS_S, o.CONTACT_SIGMA_MAX_ROOT_S))
        p.transl[s:e] = root[..., 0] @ axes - p.pelvis0[s:e]
        p.detect["root"][s:e] = root_detect[..., 0] @ axes
    p.changed = True
    return outliers


def _smooth_root_horizontal(p: _Person, segs: list[tuple[int, int]], fps: float, strength: float) -> None:
    """Filter the pelvis's horizontal axes again (x and z of the refined world, the floor plane) from its
    samples, with the wider levels and larger gamma that level travel allows (options
    SIGMA_ROOT_HORIZONTAL_LEVELS_S, GAMMA_ROOT_HORIZONTAL). Before the floor is known the first pass filters
    along the root's own acceleration axes, which the noise tilts by tens of degrees, so a step's vertical
    bob and a jump's take-off narrowed the horizontal filter too. Per axis, the adaptive widths are kept only
    where leave-one-out cross-validation prefers them to one width for the whole stretch: their per-frame
    tests cannot see a bias smaller than the narrow fits' noise, and a stander's slow sway lost 15-30 % of
    its amplitude to them. The vertical and the pose contacts are found on keep the first pass."""
    if p.root_obs is None:
        return
    levels = _levels(o.SIGMA_ROOT_HORIZONTAL_LEVELS_S, strength, fps)
    flat = [0, 2]
    for s, e in segs:
        if e - s < 3 or not np.isfinite(p.root_obs[s:e]).all():
            continue
        root = robust_filter(p.root_obs[s:e, flat, None], levels, o.GAMMA_ROOT_HORIZONTAL, o.ROOT_CLIP,
                             cross_validate=True)[..., 0]
        p.transl[s:e, flat] = root - p.pelvis0[s:e, flat]


def _piecewise_body(p: _Person, s: int, e: int, flights, fps: float, strength: float) -> None:
    """Leg joint rotations filtered again with each take-off and landing as a breakpoint: every ground and flight
    phase of segment s..e on its own; in the ground phases the hips and knees within the narrower band
    GAMMA_GROUND_PHASE_LEGS (crouches and landings), away from the phase's take-off and landing ends."""
    bounds = [0] + [b for f in flights for b in f] + [e - s]
    levels = _levels(o.SIGMA_BODY_LEVELS_S, strength, fps)
    legs = np.array(LEG_ROWS) + 1  # body quaternion rows (0 is the global orientation)
    noise = noise_sigma(p.body_obs[s:e, legs], 3)  # the segment's noise level: a short phase alone misjudges it
    keep = max(1, int(round(o.PHASE_EDGE_KEEP_S * fps)))
    for phase, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
        if b - a < 3:
            continue
        fit = tuple(w for w in levels if 3 * w <= b - a) or levels[:1]  # wider windows only see reflections
        obs = p.body_obs[s + a:s + b, legs]
        if phase % 2 == 0:  # a ground phase (phases alternate, starting on the ground)
            q, narrow = adaptive_filter(obs, fit, o.GAMMA_BODY, noise_dims=3, noise=noise,
                                        also_gamma=o.GAMMA_GROUND_PHASE_LEGS)
            # frames from the nearest take-off or landing (the segment's own ends are no breakpoint)
            i = np.arange(b - a, dtype=np.float64)
            edge = np.minimum(i if a > 0 else np.inf, (b - a - 1 - i) if b < e - s else np.inf)
            inner = np.clip((edge - keep) / keep, 0.0, 1.0)[:, None, None]
            q[:, HIPS_KNEES] = (1 - inner) * q[:, HIPS_KNEES] + inner * narrow[:, HIPS_KNEES]  # same fits, same signs
        else:
            q = adaptive_filter(obs, fit, o.GAMMA_BODY, noise_dims=3, noise=noise)
        q /= np.linalg.norm(q, axis=-1, keepdims=True)
        p.rot["body_pose"][s + a:s + b, LEG_ROWS] = quat_to_aa(q)


def _contacts_and_lock(p: _Person, shape: BodyShape, segs: list[tuple[int, int]], fps: float, opts: CleanupOptions,
                       grounded: bool, breakpoints: bool) -> _LockCounts:
    """Step 3 for one person, in place: contacts per segment, take-offs and landings as breakpoints of the
    smoothing (with or without the lock: they are how the motion is filtered), the flights' ballistic pelvis
    height, then (foot_lock) the lock: anchors, pelvis shifts, penetration push and leg IK."""
    n_contact = clamped = pushed = n_flight = 0
    p.contacts = np.zeros((len(p.where), 4), bool)
    for s, e in segs:
        if e - s < 3:
            continue
        local, rot, pos = _kinematics(p, shape, s, e)
        pts = foot_points(shape, rot, pos)
        seen = _detect_points(p, shape, s, e)
        pelvis_d, pts_d = seen if seen is not None else (pos[:, 0], pts)
        con = detect_contacts(pts_d, fps, floor_known=grounded)
        p.contacts[s:e] = con
        if grounded and p.root_obs is not None and opts.smooth > 0 and flight_runs(con.any(1)):
            # ground phases filtered apart from the flights, then contacts found again without the blur
            levels = _levels(o.SIGMA_ROOT_LEVELS_S[:_cap(o.SIGMA_ROOT_LEVELS_S, o.CONTACT_SIGMA_MAX_ROOT_S) + 1],
                             opts.smooth, fps)
            ground = ground_root(pelvis_d, p.root_obs[s:e], con.any(1), levels, o.GAMMA_ROOT) - pelvis_d
            con = detect_contacts(pts_d + ground[:, None], fps, floor_known=grounded)
            p.contacts[s:e] = con
        flights = flight_runs(con.any(1))
        if flights and p.orient_adaptive is not None:  # a jumper's pelvis pitches at take-off and landing
            p.rot["global_orient"][s:e] = p.orient_adaptive[s:e]
            local, rot, pos = _kinematics(p, shape, s, e)
            pts = foot_points(shape, rot, pos)
        if breakpoints and p.body_obs is not None and flights:
            # a take-off and a landing bend the knees at once: a filter window spanning one blurs the
            # bend (straighter legs, the pelvis too high on the ground frames next to it)
            _piecewise_body(p, s, e, flights, fps, opts.smooth)
            local, rot, pos = _kinematics(p, shape, s, e)
            pts = foot_points(shape, rot, pos)
        if grounded and p.root_obs is not None:  # free fall where no foot touches the floor
            flight = ballistic_root(pos[:, 0], p.root_obs[s:e], con.any(1), fps)
            pos, pts = pos + flight[:, None], pts + flight[:, None]
            p.transl[s:e] += flight
            n_flight += int(np.any(flight != 0, axis=1).sum())
        if not opts.foot_lock:
            continue
        # lock a little beyond the detected edges (smoothing spreads the swing into them), but only
        # where the evidence agrees: before a contact where the foot is already low and settling (a foot
        # still swinging in or falling from a jump stays free), after it where it is still low and slow
        # (a swinging foot stays free)
        low = (-pts[..., 1] if grounded else pts[..., 1].max(0) - pts[..., 1]) <= o.LOCK_DILATE_MAX_H
        speed = centred_speed(pts, fps)
        lock = dilate(con, int(round(o.LOCK_DILATE_S * fps)), before=low & (speed <= o.LOCK_DILATE_BEFORE_MAX_MS),
                      after=low & (speed <= o.LOCK_DILATE_MAX_MS))
        ankles = [L_ANKLE, R_ANKLE]
        # after a take-off the carried correction fades by one step of the input's noise per frame at most
        fade = (o.TAKE_OFF_FADE_NOISE_STEPS * noise_sigma(p.root_obs[s:e], 3) * np.sqrt(6.0)
                if p.root_obs is not None and np.isfinite(p.root_obs[s:e]).all() else None)
        corr, ankle_rot = lock_corrections(pts, rot[:, ankles], pos[:, ankles], lock, fps, grounded, fade)
        # sole points as the held foot orientations place them, for the penetration test
        rel = np.einsum("tfba,tfkb->tfka", rot[:, ankles], pts.reshape(-1, 2, 2, 3) - pos[:, ankles, None])
        pts = (pos[:, ankles, None] + np.einsum("tfab,tfkb->tfka", ankle_rot, rel)).reshape(-1, 4, 3)
        held = np.stack([lock[:, :2].any(1), lock[:, 2:].any(1)], 1)
        # the root moves towards where the planted feet put it, then as far as legs held out of
        # reach need (not for the blend windows, where the foot is free); locked feet keep their targets
        legs = pos[:, ankles] - pos[:, [L_HIP, R_HIP]]
        planted = planted_root_shift(corr, held, legs, fps, o.ROOT_FROM_FEET_ALONG_LEG,
                                     o.ROOT_FROM_FEET_ACROSS_LEG)
        for shift in (planted, None):
            if shift is None:
                shift = root_shift(pos, np.where(held[..., None], corr, 0.0), fps, _held_reach(p, shape, s, e))
            moving = np.linalg.norm(corr, axis=-1, keepdims=True) > 1e-7
            corr = corr - np.where(moving, shift[:, None], 0.0)
            pos, pts = pos + shift[:, None], pts + shift[:, None]
            p.transl[s:e] += shift
        corr = within_reach(pos, corr, ~held, o.LOCK_FREE_REACH_MARGIN, o.LOCK_FREE_EXTEND_MAX)
        if grounded:
            before = corr.copy()
            corr = penetration_push(pts, corr)
            pushed += int(np.sum(np.abs(corr - before).sum((1, 2)) > 1e-7))
        new_local, c = apply_leg_ik(local, rot, pos, corr, ankle_rot)
        clamped += c
        body_aa = quat_to_aa(matrix_to_quaternion(new_local[:, 1:BODY_JOINTS]))
        ik_rows = LEG_ROWS[:6]  # the rows the IK changes: hips, knees, ankles
        p.rot["body_pose"][s:e, ik_rows] = body_aa[:, ik_rows]
        n_contact += int(con.sum())
    p.changed = True
    if not opts.foot_lock:
        p.contacts = None  # found for the breakpoints only: not written without the lock
    return _LockCounts(n_contact, clamped, pushed, n_flight)


def _held_reach(p: _Person, shape: BodyShape, s: int, e: int) -> np.ndarray | float:
    """How straight [n, 2] (share of thigh + shin) a held leg may be before the pelvis moves towards its foot:
    as straight as the observed knee has it (unsmoothed: smoothing rounds off the straightest frames, a walker's
    heel strike and toe-off), within [LOCK_REACH_MARGIN, LOCK_REACH_OBSERVED_MAX]; LOCK_REACH_MARGIN without
    observations (smoothing off)."""
    if p.body_obs is None:
        return o.LOCK_REACH_MARGIN
    knees = quaternion_to_matrix(p.body_obs[s:e, [L_KNEE, R_KNEE]])  # renormalises (outlier frames were interpolated)
    return np.clip(leg_extension(shape, knees), o.LOCK_REACH_MARGIN, o.LOCK_REACH_OBSERVED_MAX)


def _turned(rotation: np.ndarray, aa: np.ndarray) -> np.ndarray:
    """Axis-angle world orientations aa [..., 3] turned by the world rotation [3, 3] (rotation @ R)."""
    return quat_to_aa(matrix_to_quaternion(rotation @ axis_angle_to_matrix(aa)))


def _cap(levels_s: tuple[float, ...], max_s: float) -> int:
    """Index of the widest of levels_s (seconds) not wider than max_s."""
    return max(0, int(np.searchsorted(levels_s, max_s + 1e-9)) - 1)


def _kinematics(p: _Person, shape: BodyShape, s: int, e: int):
    local = local_matrices(p.rot["global_orient"][s:e, 0], p.rot["body_pose"][s:e])
    rot, pos = forward(shape, local, p.pelvis0[s:e] + p.transl[s:e])
    return local, rot, pos


def _detect_points(p: _Person, shape: BodyShape, s: int, e: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(pelvis [n, 3], sole points [n, 4, 3]) of the pose contacts are found on, None without one."""
    if p.detect is None or not np.isfinite(p.detect["root"][s:e]).all():
        return None
    body = p.detect["body"][s:e]
    rot, pos = forward(shape, local_matrices(body[:, 0], body[:, 1:]), p.detect["root"][s:e])
    return pos[:, 0], foot_points(shape, rot, pos)


def refine_job(header: dict | None, frames: list[dict], tracks: list[dict] | None = None, end: dict | None = None,
               options: CleanupOptions | dict | None = None, transform: np.ndarray | None = None) -> Refined:
    """Refine one job's messages (see the module docstring). Never raises on bad data.

    transform: a known W -> refined 4x4 to use instead of estimating the floor (e.g. the alignment an
    imported scene already has, so a re-applied person stays in the same world); ignored with ground 'off'.
    """
    tracks = list(tracks or [])
    opts = CleanupOptions.from_dict(options)
    reasons: list[str] = []
    report = {"stage": "offline", "options": opts.to_dict(), "reasons": reasons}
    unchanged = Refined(header, list(frames), tracks, end, report)
    if header is None:
        reasons.append("no header: nothing to refine")
        return unchanged
    if header.get("refinement"):
        reasons.append("already refined: the header records an earlier refinement; refine the raw file instead")
        return unchanged
    try:
        body = BodyModel.from_header(header)
    except Exception as exc:  # a header without a usable body model: keep the data
        reasons.append(f"header has no usable body_model ({type(exc).__name__}: {exc}); data left unchanged")
        return _finish(unchanged, header, np.eye(4), False)
    if not frames:
        reasons.append("no frames: nothing to refine")
        return _finish(unchanged, header, np.eye(4), False)
    try:
        return _refine(header, list(frames), tracks, end, opts, body, report, transform)
    except Exception as exc:  # last resort: a bug must not cost the user the import
        reasons.append(f"refinement failed ({type(exc).__name__}: {exc}); data left unchanged")
        return _finish(unchanged, header, np.eye(4), False)


def _refine(header, frames, tracks, end, opts: CleanupOptions, body: BodyModel, report: dict,
            given: np.ndarray | None = None) -> Refined:
    reasons = report["reasons"]
    fps = _fps(header, frames)
    report["fps"] = fps
    rows = _stack_rows(frames)
    people = collect_people(rows)
    track_betas = {int(t["id"]): np.asarray(t["betas"], np.float64) for t in tracks
                   if "betas" in t and np.isfinite(np.asarray(t["betas"], np.float64)).all()}
    if not people:
        reasons.append("no people in any frame: smoothing and foot lock skipped")
    shapes, segments = {}, {}
    for p in people:
        positions = np.array([k for k, _ in p.where])
        segments[p.pid] = _segments(positions, p.valid)
        bad = int((~p.valid).sum())
        if bad:
            reasons.append(f"person {p.pid}: {bad} frame(s) with NaN/inf values left unchanged")
        if len(positions) > 1 and np.any(np.diff(positions) > 1):
            reasons.append(f"person {p.pid}: track has gaps; each part is filtered on its own")
        if not any(e - s >= 3 for s, e in segments[p.pid]):
            reasons.append(f"person {p.pid}: fewer than 3 consecutive valid frames; not filtered or locked")
        betas = track_betas.get(p.pid)
        if betas is None:
            good = p.betas[p.valid]
            betas = np.median(good, 0) if len(good) else np.zeros(p.betas.shape[1])
        shapes[p.pid] = BodyShape.from_model(body, betas)
        pel = body.rest_joints(np.where(np.isfinite(p.betas), p.betas, 0.0))[..., 0, :]
        p.pelvis0 = pel

    # 1. smoothing
    smooth_rep = {"applied": False}
    if opts.smooth > 0:
        n_out = sum(_each_person(lambda p: _smooth_person(p, segments[p.pid], fps, opts.smooth), people))
        smooth_rep = {"applied": bool(people), "filter": f"outlier frames (Hampel, 7 frames, {o.OUTLIER_THRESHOLD:g}x "
                      "median deviation) + zero-phase filters: body rotations and root translation by an adaptive "
                      "local quadratic fit (per frame the widest of the listed widths the data allow; samples beyond "
                      "huber_clip times the noise level clipped to it, then refitted), hands/face "
                      "and camera by a Gaussian; rotations as sign-continuous quaternions (chordal SO(3) mean)",
                      "sigma_s": {"body_rotations": [opts.smooth * w for w in o.SIGMA_BODY_LEVELS_S],
                                  "hands_face_rotations": opts.smooth * o.SIGMA_HANDS_S,
                                  "root_translation": [opts.smooth * w for w in o.SIGMA_ROOT_LEVELS_S],
                                  "root_horizontal_after_floor": [opts.smooth * w for w in o.SIGMA_ROOT_HORIZONTAL_LEVELS_S],
                                  "camera": opts.smooth * o.SIGMA_CAMERA_S if opts.smooth_camera else 0.0},
                      "huber_clip": {"body_rotations": o.BODY_CLIP, "root_translation": o.ROOT_CLIP},
                      "gamma": {"body_rotations": o.GAMMA_BODY, "root_translation": o.GAMMA_ROOT,
                                "root_horizontal_after_floor": o.GAMMA_ROOT_HORIZONTAL},
                      "cross_validated": {"body_joints": np.flatnonzero(CROSS_VALIDATED_JOINTS).tolist(),
                                          "except": "the pelvis orientation (joint 0) of someone who jumps",
                                          "root_horizontal_after_floor": True,
                                          "choice": "per joint (axis) the adaptive widths or one width for the "
                                                    "whole segment, whichever leave-one-out cross-validation prefers"},
                      "outlier_frames": n_out}
    report["smooth"] = smooth_rep

    # cameras as float64 [F, 4, 4]; smoothed only on request
    c2w = np.stack([np.asarray(f["camera"]["cam_to_world"], np.float64) for f in frames])
    cams_changed = False
    if opts.smooth > 0 and opts.smooth_camera and len(frames) >= 3 and np.isfinite(c2w).all():
        q = smooth_quaternions(matrix_to_quaternion(c2w[:, :3, :3]), opts.smooth * o.SIGMA_CAMERA_S * fps)
        c2w[:, :3, :3] = quaternion_to_matrix(q)
        c2w[:, :3, 3] = gaussian_filter(c2w[:, :3, 3], opts.smooth * o.SIGMA_CAMERA_S * fps)
        cams_changed = True

    # 2. ground
    transform = np.eye(4)
    ground_rep = {"applied": False, "mode": opts.ground}
    if opts.ground != "off" and given is not None:
        transform = np.asarray(given, np.float64).reshape(4, 4)
        ground_rep = {"applied": not np.allclose(transform, np.eye(4)), "mode": opts.ground, "evidence": "given",
                      "confidence": 1.0}
    elif opts.ground != "off":
        feet, trunks = [], []
        for p in people:
            for s, e in segments[p.pid]:
                if e - s < 3:
                    continue
                _, rot, pos = _kinematics(p, shapes[p.pid], s, e)
                pts = foot_points(shapes[p.pid], rot, pos)
                feet.append(pts if opts.smooth > 0 else gaussian_filter(pts, 2.0))
                trunks.append(pos[:, 12] - pos[:, 0])
        points = _scene_points(frames, end)
        first = c2w[0] if np.isfinite(c2w[0]).all() else None
        est = estimate_floor(points, feet, fps, np.concatenate(trunks) if trunks else None, first, opts.ground)
        reasons.extend(est.reasons)
        ground_rep = {"applied": est.found, "mode": opts.ground, "evidence": est.evidence,
                      "confidence": est.confidence, "details": _py(est.details)}
        if est.found:
            transform = floor_transform(est.normal, est.offset, first)
            ground_rep.update(normal_raw=_py(est.normal), offset_raw_m=float(est.offset))
    report["ground"] = ground_rep
    grounded = bool(ground_rep["applied"])
    rot_a, t_a = transform[:3, :3], transform[:3, 3]
    if grounded:
        c2w = transform @ c2w
        cams_changed = True
        for p in people:
            p.rot["global_orient"] = _turned(rot_a, p.rot["global_orient"])
            p.transl = (p.pelvis0 + p.transl) @ rot_a.T + t_a - p.pelvis0
            if p.root_obs is not None:
                p.root_obs = p.root_obs @ rot_a.T + t_a
            if p.orient_adaptive is not None:
                p.orient_adaptive = _turned(rot_a, p.orient_adaptive)
            if p.detect is not None:
                p.detect["body"][:, 0] = _turned(rot_a, p.detect["body"][:, 0])
                p.detect["root"] = p.detect["root"] @ rot_a.T + t_a
            p.changed = True

    if grounded and opts.smooth > 0:
        for p in people:
            _smooth_root_horizontal(p, segments[p.pid], fps, opts.smooth)

    # 3. contacts; take-offs and landings as breakpoints of the smoothing (with or without the lock: they
    # are how the motion is filtered, not a lock); foot lock
    lock_rep = {"applied": False}
    breakpoints = grounded and opts.smooth > 0
    totals = _LockCounts(0, 0, 0, 0)
    if (opts.foot_lock or breakpoints) and people:
        # one person after another: the lock is many small steps in Python, which threads only contend for
        # (4 x 3,000 frames took 25-30 % more CPU on 2 cores when this ran on `_each_person`)
        counts = [_contacts_and_lock(p, shapes[p.pid], segments[p.pid], fps, opts, grounded, breakpoints)
                  for p in people]
        totals = _LockCounts(*(sum(column) for column in zip(*counts)))
    if smooth_rep["applied"]:
        smooth_rep["take_off_landing_breakpoints"] = {
            "applied": breakpoints, "ballistic_frames": totals.ballistic_frames, "flight_join_s": o.FLIGHT_JOIN_S,
            "ground_phase_hips_knees_gamma": o.GAMMA_GROUND_PHASE_LEGS, "phase_edge_keep_s": o.PHASE_EDGE_KEEP_S,
            "g_ms2": GRAVITY_MS2,
            "model": "leg rotations filtered per ground and flight phase (a ground phase's hips and knees within "
                     "the narrower band ground_phase_hips_knees_gamma, beyond phase_edge_keep_s of its ends); "
                     "pelvis height in flight on a free fall "
                     "fitted with the push and landing frames around it (cubics joined C1), handed over to "
                     "the smoothed root across those frames"}
    if opts.foot_lock and people:
        lock_rep = {"applied": True, "contact_samples": totals.contact_samples,
                    "ik_clamped_frames": totals.ik_clamped_frames,
                    "penetration_frames_fixed": totals.penetration_frames_fixed,
                    "floor": "y = 0" if grounded else "per-run height",
                    "params": {"height_m": o.CONTACT_HEIGHT_M, "enter_speed_ms": o.CONTACT_ENTER_MS,
                               "leave_speed_ms": o.CONTACT_LEAVE_MS, "end_speed_ms": o.CONTACT_END_MS,
                               "min_run_s": o.CONTACT_MIN_RUN_S,
                               "fill_gap_s": o.CONTACT_FILL_GAP_S, "fill_gap_at_clip_ends_if_low_s": o.CONTACT_EDGE_FILL_S,
                               "blend_s": o.LOCK_BLEND_S,
                               "take_off_fade_noise_steps_per_frame": o.TAKE_OFF_FADE_NOISE_STEPS,
                               "take_off_pull_speed_ms": list(o.TAKE_OFF_PULL_SPEED_MS),
                               "blend_to_anchor": o.LOCK_BLEND_TO_ANCHOR,
                               "blend_to_anchor_fade_m": [o.LOCK_BLEND_NEAR_M, o.LOCK_BLEND_FAR_M],
                               "blend_pull_down_max_height_m": o.LOCK_PULL_DOWN_MAX_H,
                               "lock_beyond_contact_s": o.LOCK_DILATE_S,
                               "lock_beyond_contact_max_height_m": o.LOCK_DILATE_MAX_H,
                               "lock_after_contact_max_speed_ms": o.LOCK_DILATE_MAX_MS,
                               "lock_before_contact_max_speed_ms": o.LOCK_DILATE_BEFORE_MAX_MS,
                               "root_from_planted_feet_weight": {"along_leg": o.ROOT_FROM_FEET_ALONG_LEG,
                                                                 "across_leg": o.ROOT_FROM_FEET_ACROSS_LEG},
                               "reach_margin": {"held": [o.LOCK_REACH_MARGIN, o.LOCK_REACH_OBSERVED_MAX],
                                                "held_within": "the observed (unsmoothed) knee's extension",
                                                "free": o.LOCK_FREE_REACH_MARGIN,
                                                "free_lengthen_at_most": o.LOCK_FREE_EXTEND_MAX}}}
        if not grounded:
            reasons.append("foot lock without a floor: anchors keep each contact's own height; no penetration removal")
    report["foot_lock"] = lock_rep

    out_frames = _write_frames(frames, rows, people, c2w if cams_changed else None, transform if grounded else None)
    new_end = end
    if grounded and end is not None and isinstance(end.get("scene_points"), dict) and "xyz" in end["scene_points"]:
        sp = dict(end["scene_points"])
        sp["xyz"] = _transform_points(sp["xyz"], transform)
        new_end = {**end, "scene_points": sp}
    return _finish(Refined(header, out_frames, tracks, new_end, report), header, transform, grounded)


def _transform_points(xyz, transform: np.ndarray) -> np.ndarray:
    xyz = np.asarray(xyz, np.float64).reshape(-1, 3)
    return (xyz @ transform[:3, :3].T + transform[:3, 3]).astype(np.float32)


def _scene_points(frames: list[dict], end: dict | None) -> np.ndarray | None:
    """The accumulated cloud of `done` if present, else an even subset of the per-frame points."""
    if end is not None and isinstance(end.get("scene_points"), dict):
        xyz = np.asarray(end["scene_points"].get("xyz", np.zeros((0, 3))), np.float64).reshape(-1, 3)
        if len(xyz):
            return xyz
    parts = []
    for f in frames:
        xyz = np.asarray((f.get("points") or {}).get("xyz", np.zeros((0, 3))), np.float64).reshape(-1, 3)
        if len(xyz):
            parts.append(xyz[::max(1, len(xyz) // 500)])
    return np.concatenate(parts) if parts else None


def _write_frames(frames, rows: _Rows, people: list[_Person], c2w: np.ndarray | None,
                  transform: np.ndarray | None) -> list[dict]:
    """New frame messages: people fields rebuilt from the refined per-person values (float32, the
    original shapes), cameras and points replaced where they changed; input arrays are never written."""
    changed = [p for p in people if p.changed]
    fields = [name for name, _ in ROT_FIELDS] + ["transl"] if changed else []
    tables = {name: rows.tables[name].copy() for name in fields}
    lock = any(p.contacts is not None for p in people)
    contacts = np.zeros((len(rows.ids), 4), np.uint8) if lock else None
    for p in people:
        if p.changed:
            for name, _ in ROT_FIELDS:
                tables[name][p.sel] = p.rot[name]
            tables["transl"][p.sel] = p.transl
        if contacts is not None and p.contacts is not None:
            contacts[p.sel] = p.contacts
    out = []
    for k, f in enumerate(frames):
        nf = dict(f)
        a, b = rows.offsets[k], rows.offsets[k + 1]
        pm = dict(f.get("people") or {})
        for name in fields:
            if name in pm:
                orig = np.asarray(pm[name])
                pm[name] = tables[name][a:b].reshape(orig.shape).astype(orig.dtype)
        if contacts is not None:
            pm["contacts"] = contacts[a:b].copy()
        nf["people"] = pm
        if c2w is not None:
            cam = dict(f["camera"])
            cam["cam_to_world"] = c2w[k].astype(np.float32)
            nf["camera"] = cam
        if transform is not None and isinstance(f.get("points"), dict) and "xyz" in f["points"]:
            pts = dict(f["points"])
            pts["xyz"] = _transform_points(pts["xyz"], transform)
            nf["points"] = pts
        out.append(nf)
    return out


def _finish(result: Refined, header: dict, transform: np.ndarray, grounded: bool) -> Refined:
    """Stamp the refined header (conventions + refinement report) onto a copy of `header`."""
    h = dict(header)
    conv = dict(header.get("conventions") or {})
    if grounded:
        conv["raw_world"] = conv.get("world")
        conv["world"] = REFINED_WORLD
    conv["from_raw"] = _py(transform)
    h["conventions"] = conv
    h["refinement"] = _py(result.report)
    result.header = h
    return result
