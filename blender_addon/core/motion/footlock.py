"""Foot locking during contacts and floor penetration removal, by analytic two-bone leg IK.

Per foot (heel + toe sole points) and contact run: each point in contact gets an anchor, the median of
its horizontal positions over the run, at the floor (y = 0) when the floor is known; the foot is moved
rigidly (its world orientation is kept) by the mean error of its contacting points, so the contact
points stay put. Around each run the correction fades out over a blend window (smoothstep, 0.13 s)
instead of switching off, so there is no pop. In that window the foot is aimed mostly (85 %) at the run's
anchors rather than kept at the edge frame's offset: a detected edge a frame early or late (smoothing
blurs landings and take-offs) then still holds a foot that is really planted. That pull fades out (smoothstep)
for a foot 4 to 8 cm from its anchors: one that far has really lifted off or not yet landed, and pulling it
back put its ankle 5-8 cm off a swing the raw frame had within 2 cm. Before a contact the foot is
still in the air, so that window never pulls it down towards the floor; after one, a foot already higher
than 4 cm is taking off and is pulled down no further than the edge's own offset; likewise a run's first
frames whose foot is still higher than 4 cm (a landing found a frame early) are held in place but not yet
pulled down. After a take-off (a flight follows) the flight's own free pose is the better guess: what the
window carries over fades by no more than the input noise's step per frame (usually within a frame), and the
pull towards the anchors holds only a foot still moving slowly (a take-off found a frame early). A foot point
still below the floor after that is pushed up by exactly its depth (no float is added).

The root: the planted feet's anchors (medians over whole contact runs) measure where the body is, so the
pelvis moves towards them (`planted_root_shift`), most of the way along each leg (its length is known)
and little across it (its direction is as noisy as the pose); with no foot on the floor between two
contacts the pelvis height follows a ballistic path with the known g fitted to the flight's samples and,
joined to it C1, the push and landing frames around it (`ballistic_root`, handed over to the smoothed root
there). The ankle target is then reached by two-bone IK on hip-knee-ankle: the knee stays in the plane of
its current bend (pole = current knee), the legs are never stretched: where a held foot's target is out of
reach the pelvis moves towards it (`root_shift`, smoothed), a foot in a blend window gives way short of a
straight leg (`within_reach`), and what is still out of reach is clamped.
"""
from __future__ import annotations

import numpy as np

from . import options as o
from ..rotations import matrix_to_quaternion, quaternion_to_matrix
from .contacts import centred_speed, runs
from .smooth import acceleration_axes, adaptive_filter, continuous, gaussian_filter
from .so3 import align_signs
from .kinematics import LEGS, PELVIS


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _near_share(distance: np.ndarray) -> np.ndarray:
    """Share [n] (0..1) of the pull towards the anchors a blended foot gets at `distance` [n] (m) from them:
    all of it within LOCK_BLEND_NEAR_M (a planted foot blurred by the smoothing), none beyond
    LOCK_BLEND_FAR_M (a foot really swinging away or coming down; its free pose is the better guess),
    smoothstep in between so the correction never pops."""
    return _smoothstep((o.LOCK_BLEND_FAR_M - distance) / (o.LOCK_BLEND_FAR_M - o.LOCK_BLEND_NEAR_M))


def lock_corrections(points: np.ndarray, ankle_rot: np.ndarray, ankle_pos: np.ndarray, contacts: np.ndarray,
                     fps: float, floor_known: bool, fade_step: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-foot ankle translations [T, 2, 3] and ankle world rotations [T, 2, 3, 3] that lock the feet.

    points [T, 4, 3] sole points, ankle_rot [T, 2, 3, 3] / ankle_pos [T, 2, 3] the ankles' world
    rotations and positions, contacts [T, 4]. During a run the foot's world orientation is held at the
    run's mean (so heel and toe both stay put) and blended back to the free one over the window.
    fade_step (m per frame): after a take-off, the most the carried correction fades by per frame (the input
    noise's own step, `o.TAKE_OFF_FADE_NOISE_STEPS`); None fades it over the whole window.
    """
    t = len(points)
    blend = max(1, int(round(o.LOCK_BLEND_S * fps)))
    take_offs = {s for s, _ in flight_runs(contacts.any(1))}  # first frames of the flights
    out = np.zeros((t, 2, 3))
    rot_out = ankle_rot.copy()
    weight = np.zeros((t, 2))
    for foot in range(2):
        rel = np.einsum("tba,tkb->tka", ankle_rot[:, foot], points[:, 2 * foot:2 * foot + 2] - ankle_pos[:, foot, None])
        con = contacts[:, 2 * foot:2 * foot + 2]
        q_free = continuous(matrix_to_quaternion(ankle_rot[:, foot]))
        speed = centred_speed(points[:, 2 * foot:2 * foot + 2].mean(1, keepdims=True), fps)[:, 0] if take_offs else None
        for s, e in runs(con.any(1)):
            q_hold = align_signs(q_free[s:e], q_free[s]).mean(0)
            q_hold /= np.linalg.norm(q_hold)
            r_hold = quaternion_to_matrix(q_hold)
            held = ankle_pos[s:e, foot, None] + np.einsum("ab,tkb->tka", r_hold, rel[s:e])  # points, rotation held
            err = np.zeros((e - s, 3))
            count = np.zeros(e - s)
            anchors = np.full((2, 3), np.nan)
            for k in range(2):
                on = con[s:e, k]
                if not on.any():
                    continue
                anchor = np.median(held[on, k], axis=0)
                if floor_known:
                    anchor[1] = 0.0
                anchors[k] = anchor
                err[on] += anchor - held[on, k]
                count[on] += 1
            err /= np.maximum(count, 1)[:, None]
            if floor_known:  # a run's first frames with the foot still high: held in place, not pulled down yet
                high = -held[:, :, 1].min(1) > o.LOCK_LAND_MAX_H
                lead = np.cumprod(high).astype(bool)
                err[lead, 1] = np.minimum(err[lead, 1], 0.0)
            out[s:e, foot] = err
            rot_out[s:e, foot] = r_hold
            weight[s:e, foot] = 1.0
            for edge, frames in ((s, np.arange(s - 1, max(s - blend, 0) - 1, -1)), (e - 1, np.arange(e, min(e + blend, t)))):
                if not len(frames):
                    continue
                w = _smoothstep(1.0 - np.abs(frames - edge) / (blend + 1))
                take = w > weight[frames, foot]
                frames, w = frames[take], w[take]
                weight[frames, foot] = w
                q = (1 - w)[:, None] * q_free[frames] + w[:, None] * align_signs(q_hold[None], q_free[frames])
                r_blend = quaternion_to_matrix(q)
                rot_out[frames, foot] = r_blend
                # blend the foot's position towards the anchors of the points held at the edge (not the
                # edge's offset): a stance edge detected a frame early or late then costs a fraction of the
                # blurred foot's distance from its anchor, not a whole swing step
                on = con[edge] & np.isfinite(anchors[:, 0])
                if on.any():
                    pts_f = ankle_pos[frames, foot, None] + np.einsum("tab,tkb->tka", r_blend, rel[frames])
                    target = (anchors[on] - pts_f[:, on]).mean(1)
                    share = o.LOCK_BLEND_TO_ANCHOR * _near_share(np.linalg.norm(target, axis=-1))
                    carry = w
                    if edge == e - 1 and e in take_offs:  # the whole body leaves the floor: see TAKE_OFF_FADE_NOISE_STEPS
                        slow, fast = o.TAKE_OFF_PULL_SPEED_MS
                        share = share * _smoothstep((fast - speed[frames]) / (fast - slow))
                        if fade_step is not None:
                            size = max(float(np.linalg.norm(out[edge, foot])), 1e-9)
                            carry = np.minimum(w, np.clip(1.0 - (frames - edge) * fade_step / size, 0.0, 1.0))
                    out[frames, foot] = (carry * (1 - share))[:, None] * out[edge, foot] + (w * share)[:, None] * target
                    # a foot taking off may really be rising: pulled down no more than by the edge's offset
                    high = -pts_f[:, on, 1].mean(1) > o.LOCK_PULL_DOWN_MAX_H
                    out[frames[high], foot, 1] = np.minimum(out[frames[high], foot, 1],
                                                            np.maximum(w[high] * out[edge, foot, 1], 0.0))
                else:
                    out[frames, foot] = w[:, None] * out[edge, foot]
                if edge == s:  # a foot about to land is still in the air: never pulled down to the floor (y down)
                    out[frames, foot, 1] = np.minimum(out[frames, foot, 1], 0.0)
    return out, rot_out


def penetration_push(points: np.ndarray, corrections: np.ndarray, tolerance: float = 0.0) -> np.ndarray:
    """Add to corrections [T, 2, 3] the upward push that keeps every sole point at height >= 0."""
    out = corrections.copy()
    for foot in range(2):
        y = points[:, 2 * foot:2 * foot + 2, 1] + out[:, foot, None, 1]  # y down: depth = y > 0
        depth = np.maximum(y.max(1) - tolerance, 0.0)
        out[:, foot, 1] -= depth
    return out


GRAVITY_MS2 = 9.81


def ballistic_root(root: np.ndarray, observed: np.ndarray, contact: np.ndarray, fps: float) -> np.ndarray:
    """Pelvis translation [T, 3] (vertical component only) that puts each flight phase on a ballistic path
    (refined world, y down).

    root [T, 3] the smoothed pelvis, observed [T, 3] its samples before smoothing, contact [T] any foot
    point in contact. With no foot on the floor between two contacts the body is in free fall: the pelvis
    height follows y0 + v0 t + g t^2 / 2 with g known. y0 and v0 are fitted by least squares together with
    the ground frames next to the flight (`o.FLIGHT_JOIN_S` each side, as far as the clip and the next
    flight allow): the push before and the landing after are cubics joined to the flight with the same
    height and vertical speed at the take-off and the touch-down (half a frame outside the flight), each
    with its own acceleration and jerk. The flight's ends are then pinned by the ground samples around them
    instead of extrapolated from the flight's own dozen noisy samples (a 0.4 s flight's end frame was off by
    up to 3.5 cm that way). The fit replaces the flight frames' height and is handed over to the smoothed
    root across the joined ground frames (smoothstep, no pop). The horizontal axes keep the smoothed root:
    in flight they move at constant speed, a case of the smooth travel that the horizontal filter follows
    over seconds of the ground frames around (a fit of the flight's samples alone was 2 mm rms worse)."""
    out = np.zeros_like(root)
    t_all = len(root)
    flights = flight_runs(contact)
    k = max(2, int(round(o.FLIGHT_JOIN_S * fps)))
    hand_over = _smoothstep(1.0 - np.arange(1, k + 1) / (k + 1))  # [k] 1 -> 0 away from a knot
    for i, (s, e) in enumerate(flights):
        lo = max(0, s - k, flights[i - 1][1] if i else 0)
        hi = min(t_all, e + k, flights[i + 1][0] if i + 1 < len(flights) else t_all)
        if not np.isfinite(observed[lo:hi, 1]).all():
            continue
        fit = _joined_flight(observed[lo:hi, 1], s - lo, e - lo, fps) - root[lo:hi, 1]
        out[s:e, 1] = fit[s - lo:e - lo]
        # the ground frames: the joined fit next to the knot (the smoother's window spans the kink there and
        # bends the root by centimetres), handed over to the smoothed root (wider, less noisy) away from it
        before, after = np.arange(s - 1, lo - 1, -1), np.arange(e, hi)
        out[before, 1] += hand_over[:len(before)] * fit[before - lo]
        out[after, 1] += hand_over[:len(after)] * fit[after - lo]
    return out


def _joined_flight(height: np.ndarray, s: int, e: int, fps: float) -> np.ndarray:
    """Least-squares pelvis height [n] (m, y down) over samples height [n] with frames s..e-1 in free fall
    (g known) and the frames before s / from e on cubics that leave / join the flight C1 at s - 1/2 /
    e - 1/2 (frames). A side with fewer than 2 frames gets fewer terms (a clip edge next to the flight)."""
    tau = (np.arange(len(height)) - s) / fps
    t0, t1 = -0.5 / fps, (e - s - 0.5) / fps
    knot = np.where(tau < t0, t0, np.where(tau >= t1, t1, tau))  # flight time the sample leaves the parabola at
    d = tau - knot  # time past the knot (0 in the flight)
    # flight part continued linearly past the knots: y0 + v0 t + g (knot^2 / 2 + knot d)
    g_term = (0.5 * knot ** 2 + knot * d) * GRAVITY_MS2
    cols = [np.ones_like(tau), tau]
    for side, count in ((tau < t0, s), (tau >= t1, len(tau) - e)):
        for power in (2, 3)[:min(2, count)]:
            cols.append(np.where(side, d ** power / (2 if power == 2 else 6), 0.0))
    a = np.stack(cols, 1)
    coef = np.linalg.lstsq(a, height - g_term, rcond=None)[0]
    return a @ coef + g_term


def flight_runs(contact: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) of the flight phases in contact [T] (any foot point down): runs of >= 3 frames with no
    contact and a contact on both sides (a clip that starts or ends in the air has no known take-off)."""
    return [(s, e) for s, e in runs(~contact) if s > 0 and e < len(contact) and e - s >= 3]


def ground_root(root: np.ndarray, observed: np.ndarray, contact: np.ndarray, sigmas: tuple[float, ...],
                gamma: float) -> np.ndarray:
    """Pelvis positions [T, 3] with every ground phase between flights filtered on its own, for finding
    the contacts (flight frames keep root).

    root [T, 3] the smoothed pelvis, observed [T, 3] its samples before smoothing, contact [T] a first
    contact estimate; sigmas (frames) and gamma as in `smooth.adaptive_filter`. A take-off or a landing
    is a kink in the pelvis path (the push's acceleration turns into free fall at once); a filter whose
    window spans it lifts the ground frames next to it towards the flight by centimetres (up to 5 cm
    measured), and with them the feet, so the last frames before a take-off and the first after a landing
    read as in the air. Filtered alone (per axis of its own acceleration), a ground phase has no such
    bias inside; its ends are noisier, which the contact detector's own smoothing absorbs, while the pose
    keeps the smoothed root (`ballistic_root` and the foot lock correct it)."""
    flights = flight_runs(contact)
    out = root.copy()
    if not flights or not np.isfinite(observed).all():
        return out
    bounds = [0] + [b for f in flights for b in f] + [len(root)]
    for s, e in zip(bounds[::2], bounds[1::2]):
        if e - s < 3:
            continue
        axes = acceleration_axes(observed[s:e])
        out[s:e] = adaptive_filter((observed[s:e] @ axes.T)[..., None], sigmas, gamma)[..., 0] @ axes
    return out


def planted_root_shift(corrections: np.ndarray, held: np.ndarray, legs: np.ndarray, fps: float,
                       along: float, across: float) -> np.ndarray:
    """Pelvis translation [T, 3] towards where the planted feet put it.

    corrections [T, 2, 3] ankle translations that lock the feet, held [T, 2] bool the feet locked, legs
    [T, 2, 3] hip -> ankle vectors. A foot held at its anchor (a median over its whole contact run, far
    less noisy than one frame's root) says where the body is, but not equally well in every direction:
    the leg's bone lengths are known, so along the leg the pelvis is off by little more than the knee
    bend's error, while across the leg it is off by the whole leg's direction error times its length
    (more than the smoothed root's own error). Each held foot's correction is therefore taken with
    weight `along` (0..1; 1 takes the foot's word along the leg in full) on its component along its leg and
    `across` on the rest, averaged over the held feet and faded over the blend window so it never pops."""
    u = legs / np.maximum(np.linalg.norm(legs, axis=-1, keepdims=True), 1e-9)
    on_leg = np.sum(corrections * u, -1, keepdims=True) * u
    weighted = along * on_leg + across * (corrections - on_leg)
    n = held.sum(1)
    mean = np.where(n[:, None] > 0, (weighted * held[..., None]).sum(1) / np.maximum(n, 1)[:, None], 0.0)
    weight = held.any(1).astype(np.float64)
    sigma = 0.5 * o.LOCK_BLEND_S * fps
    if len(n) >= 3:
        mean, weight = gaussian_filter(mean, sigma), gaussian_filter(weight, sigma)
    return mean * np.minimum(weight, 1.0)[:, None]


def _leg_lengths(pos: np.ndarray) -> np.ndarray:
    """Thigh + shin length [T, 2] (left, right) of joint positions pos [T, 22, 3]."""
    return np.stack([np.linalg.norm(pos[:, knee] - pos[:, hip], axis=-1)
                     + np.linalg.norm(pos[:, ankle] - pos[:, knee], axis=-1) for hip, knee, ankle in LEGS], 1)


def root_shift(pos: np.ndarray, corrections: np.ndarray, fps: float, margin: float | np.ndarray) -> np.ndarray:
    """Pelvis translation [T, 3] that brings over-stretched locked legs back into reach.

    pos [T, 22, 3] joint positions, corrections [T, 2, 3] ankle translations, margin a share of the leg, one
    for all or per frame and leg [T, 2]. For each leg whose target is
    farther from the hip than margin * (thigh + shin), the pelvis moves towards the target by the
    deficit; the shift is smoothed over time (Gaussian, half the blend window) so it never pops, and
    six rounds make up for what the smoothing took off the peaks.
    """
    total = np.zeros((len(pos), 3))
    reach = margin * _leg_lengths(pos)
    for _ in range(6):
        shift = np.zeros((len(pos), 3))
        for foot, (hip, _, ankle) in enumerate(LEGS):
            v = pos[:, ankle] + corrections[:, foot] - (pos[:, hip] + total)
            d = np.linalg.norm(v, axis=-1)
            deficit = np.maximum(d - reach[:, foot], 0.0)
            shift += deficit[:, None] * v / np.maximum(d, 1e-9)[:, None]
        total += gaussian_filter(shift, 0.5 * o.LOCK_BLEND_S * fps) if len(shift) >= 3 else shift
    return total


def within_reach(pos: np.ndarray, corrections: np.ndarray, free: np.ndarray, margin: float,
                 extend: float = np.inf) -> np.ndarray:
    """Corrections [T, 2, 3] with each free foot's (free [T, 2]: not held, e.g. in a blend window) shortened so
    its target is no farther from the hip than margin * (thigh + shin), nor than the ankle already is plus
    extend * (thigh + shin) (the leg lengthened by at most that share in one go), unless already so.

    pos [T, 22, 3] joint positions. A blend window aims a foot that is lifting off or coming down at its
    anchors; where that asks for a nearly straight leg, the two-bone IK swings the knee by centimetres in
    one frame (the knee's offset from the hip-ankle line changes fastest near full extension: 8 cm for one
    frame measured at a toe-off). A held foot gets the pelvis moved instead (`root_shift`); a free one is
    only aimed at, so it gives way. Far from straight the same holds for a large lengthening: at a jumper's
    first flight frame the blend straightened the leg by 3.6 % and the knee moved 5 cm. The correction keeps
    its direction; k in [0, 1] scales it."""
    out = corrections.copy()
    length = _leg_lengths(pos)
    for foot, (hip, _, ankle) in enumerate(LEGS):
        a = pos[:, ankle] - pos[:, hip]
        c = corrections[:, foot]
        now = np.linalg.norm(a, axis=-1)
        limit = np.maximum(np.minimum(margin * length[:, foot], now + extend * length[:, foot]), now)
        far = free[:, foot] & (np.linalg.norm(a + c, axis=-1) > limit)
        if not far.any():
            continue
        # the larger root of |a + k c| = limit: k^2 |c|^2 + 2 k a.c + |a|^2 - limit^2 = 0 (|a| <= limit: k >= 0)
        aa, cc, ac = np.sum(a[far] ** 2, -1), np.sum(c[far] ** 2, -1), np.sum(a[far] * c[far], -1)
        k = (-ac + np.sqrt(np.maximum(ac ** 2 - cc * (aa - limit[far] ** 2), 0.0))) / np.maximum(cc, 1e-12)
        out[far, foot] = c[far] * np.clip(k, 0.0, 1.0)[:, None]
    return out


def _rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Minimal rotations [n, 3, 3] taking directions a [n, 3] to b [n, 3]."""
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    v = np.cross(a, b)
    c = np.sum(a * b, -1)
    k = np.zeros(a.shape[:-1] + (3, 3))
    k[..., 0, 1], k[..., 0, 2], k[..., 1, 2] = -v[..., 2], v[..., 1], -v[..., 0]
    k[..., 1, 0], k[..., 2, 0], k[..., 2, 1] = v[..., 2], -v[..., 1], v[..., 0]
    f = 1.0 / np.maximum(1.0 + c, 1e-9)
    return np.eye(3) + k + (k @ k) * f[..., None, None]


def two_bone_ik(hip: np.ndarray, knee: np.ndarray, ankle: np.ndarray,
                target: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Analytic IK for hip-knee-ankle [n, 3] each towards target [n, 3].

    Returns (thigh delta [n, 3, 3], shin delta [n, 3, 3], reached ankle [n, 3]): the new thigh world
    rotation is thigh_delta @ old, the new shin world rotation shin_delta @ thigh_delta @ old. Bone
    lengths are kept; the knee bends in the plane of the current knee offset from the hip-target line.
    """
    l1 = np.linalg.norm(knee - hip, axis=-1)
    l2 = np.linalg.norm(ankle - knee, axis=-1)
    v = target - hip
    d = np.linalg.norm(v, axis=-1)
    d = np.clip(d, np.abs(l1 - l2) + 1e-6, (l1 + l2) * (1 - 1e-6))
    u = v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)
    a = (l1 ** 2 - l2 ** 2 + d ** 2) / (2 * d)
    h = np.sqrt(np.maximum(l1 ** 2 - a ** 2, 0.0))
    pole = knee - hip
    pole = pole - np.sum(pole * u, -1, keepdims=True) * u
    pn = np.linalg.norm(pole, axis=-1, keepdims=True)
    fallback = np.cross(u, np.array([1.0, 0.0, 0.0]))  # a straight leg: bend in the sagittal plane
    pole = np.where(pn > 1e-6, pole / np.maximum(pn, 1e-12), fallback / np.linalg.norm(fallback, axis=-1, keepdims=True))
    new_knee = hip + a[:, None] * u + h[:, None] * pole
    reached = hip + d[:, None] * u
    r1 = _rotation_between(knee - hip, new_knee - hip)
    r2 = _rotation_between(np.einsum("nab,nb->na", r1, ankle - knee), reached - new_knee)
    return r1, r2, reached


def apply_leg_ik(local: np.ndarray, rot: np.ndarray, pos: np.ndarray, corrections: np.ndarray,
                 ankle_rot: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """Move each ankle by corrections [T, 2, 3] with two-bone IK; returns new local matrices [T, 22, 3, 3]
    (hip, knee and ankle locals changed so the foot keeps its world orientation, or takes ankle_rot
    [T, 2, 3, 3]) and the number of clamped (unreachable) frames. rot/pos: `kinematics.forward` outputs."""
    out = local.copy()
    clamped = 0
    for foot, (hip, knee, ankle) in enumerate(LEGS):
        moved = np.linalg.norm(corrections[:, foot], axis=-1) > 1e-7
        if ankle_rot is not None:
            moved |= np.abs(ankle_rot[:, foot] - rot[:, ankle]).sum((1, 2)) > 1e-9
        active = np.flatnonzero(moved)
        if not len(active):
            continue
        target = pos[active, ankle] + corrections[active, foot]
        r1, r2, reached = two_bone_ik(pos[active, hip], pos[active, knee], pos[active, ankle], target)
        clamped += int(np.sum(np.linalg.norm(reached - target, axis=-1) > 1e-4))
        hip_w = r1 @ rot[active, hip]
        knee_w = r2 @ r1 @ rot[active, knee]
        pelvis_w = rot[active, PELVIS]
        out[active, hip] = np.swapaxes(pelvis_w, -1, -2) @ hip_w
        out[active, knee] = np.swapaxes(hip_w, -1, -2) @ knee_w
        foot_w = rot[active, ankle] if ankle_rot is None else ankle_rot[active, foot]
        out[active, ankle] = np.swapaxes(knee_w, -1, -2) @ foot_w
    return out, clamped
