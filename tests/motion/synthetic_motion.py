"""Motion with a known answer for the clean-up tests: people walking, standing and jumping on a floor that
the raw world sees tilted and offset, a moving camera, known foot contacts, model-like noise, and a scene
cloud of floor, walls and a table with outliers.

Truth world T: OpenCV axes, floor y = 0, up -y (the refined world's convention). The raw world W is the
first camera's frame, so W = inv(cam0) · T: the camera's pitch, roll and height are the tilt and offset
the refinement must undo. Legs are posed by analytic IK onto designed ankle paths (feet planted during
stance, flat, sole points on the floor); the truth's sole points come from FK of `Person.local`/`root`
(the tests check that the planted ones stay put and on the floor).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from blender_addon.core import protocol
from blender_addon.core.body_model import BodyModel
from blender_addon.core.motion.footlock import apply_leg_ik
from blender_addon.core.motion.kinematics import BodyShape, forward
from blender_addon.core.motion.so3 import quat_to_aa
from blender_addon.core.rotations import axis_angle_to_matrix, matrix_to_quaternion
from tests.support.synthetic_job import JOB, header_message

FPS = 30.0


def _ry(a):
    return axis_angle_to_matrix(np.stack([np.zeros_like(a), a, np.zeros_like(a)], -1))


def _smoothstep(x):
    x = np.clip(x, 0, 1)
    return x * x * (3 - 2 * x)


@dataclass
class Person:
    """Truth of one person in T: local [n, 22, 3, 3], root [n, 3] (pelvis), betas [10], contacts [n, 4]."""

    pid: int
    kind: str
    local: np.ndarray
    root: np.ndarray
    betas: np.ndarray
    contacts: np.ndarray
    shape: BodyShape


def _pose_person(shape: BodyShape, heading: np.ndarray, root: np.ndarray, ankles: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Local rotations [n, 22, 3, 3] reaching ankle targets [n, 2, 3] with flat feet."""
    n = len(t)
    aa = np.zeros((n, 22, 3))
    aa[:, 0] = quat_to_aa(matrix_to_quaternion(_ry(heading) @ axis_angle_to_matrix(np.array([np.pi, 0, 0]))))
    bend = 0.25
    for hip, knee, ankle in ((1, 4, 7), (2, 5, 8)):
        aa[:, hip, 0], aa[:, knee, 0], aa[:, ankle, 0] = -bend, 2 * bend, -bend
    swing = 0.3 * np.sin(2 * np.pi * t)
    aa[:, 16, 2], aa[:, 17, 2] = -1.1 + 0.1 * swing, 1.1 + 0.1 * swing  # arms down-ish, swinging
    aa[:, 18, 1], aa[:, 19, 1] = 0.3 + 0.2 * swing, -0.3 + 0.2 * swing
    aa[:, 15, 1] = 0.2 * np.sin(0.7 * t)  # head turns
    local = axis_angle_to_matrix(aa)
    rot, pos = forward(shape, local, root)
    corr = ankles - pos[:, [7, 8]]
    local, _ = apply_leg_ik(local, rot, pos, corr)
    return local


def make_person(pid: int, kind: str, body: BodyModel, n: int, start: np.ndarray, heading: float,
                rng: np.random.Generator) -> Person:
    betas = rng.normal(0, 0.3, 10)
    shape = BodyShape.from_model(body, betas)
    t = np.arange(n) / FPS
    rest = shape.rest
    # each ankle's height above the shaped sole (y down: ankle y on a planted flat foot); the shaped rest
    # skeleton is not left/right symmetric, so each foot gets its own (one shared height left the right
    # sole up to 9 mm off the floor)
    foot_y = shape.sole_offsets[[0, 2], 1]  # [2]: sole - ankle in the rest (y up) = ankle y in T
    ankle_y = foot_y[0]  # the pelvis height is laid out from the left leg
    leg = np.linalg.norm(rest[7] - rest[1])
    pelvis_above_ankle = (rest[0, 1] - rest[1, 1]) + 0.95 * leg
    fwd = np.array([-np.sin(heading), 0.0, -np.cos(heading)])  # body faces -z rotated by heading about y
    lateral = np.array([rest[7, 0], rest[8, 0]])  # ankle x in canonical (+x = body's left)
    # body's left in T: R_go maps canonical +x to world: Ry(heading)·Rx(pi)·(1,0,0) = Ry(heading)(1,0,0)
    left = _ry(np.array(heading)) @ np.array([1.0, 0, 0])
    ankles = np.zeros((n, 2, 3))
    contacts = np.zeros((n, 4), bool)
    root = np.zeros((n, 3))
    heading_t = np.full(n, heading)
    if kind == "walk":
        v, period, stance = 0.8, 1.0, 0.6
        pel = start[None] + fwd[None] * (v * t)[:, None]
        root[:] = pel
        root[:, 1] = ankle_y - pelvis_above_ankle + 0.01 * np.cos(4 * np.pi * t)
        for f, phase in ((0, 0.0), (1, 0.5)):
            c_all = t / period + phase
            cyc = np.floor(c_all)
            c = c_all - cyc

            def anchor(k):
                tm = (k - phase + stance / 2) * period
                return start[None] + fwd[None] * (v * tm)[:, None] + left[None] * lateral[f]

            a0, a1 = anchor(cyc), anchor(cyc + 1)
            s = np.clip((c - stance) / (1 - stance), 0, 1)
            pos = a0 + (a1 - a0) * _smoothstep(s)[:, None]
            pos[:, 1] = foot_y[f] - 0.08 * np.sin(np.pi * s)
            ankles[:, f] = pos
            contacts[:, 2 * f] = contacts[:, 2 * f + 1] = c < stance
    elif kind == "stand":
        root[:] = start
        root[:, 0] += 0.03 * np.sin(2 * np.pi * 0.3 * t)
        root[:, 1] = ankle_y - pelvis_above_ankle + 0.01 * np.sin(2 * np.pi * 0.2 * t)
        for f in range(2):
            ankles[:, f] = start + left * lateral[f]
            ankles[:, f, 1] = foot_y[f]
        contacts[:] = True
    elif kind == "jump":
        g, flight = 9.81, 0.4
        v0 = g * flight / 2
        period = 1.6
        c = np.mod(t, period)
        h = np.zeros(n)
        # stand 0.3 s, crouch 0.35 s, push 0.15 s (ends at v0), flight 0.4 s, land 0.2 s, rise 0.2 s
        seg = np.array([0.3, 0.35, 0.15, flight, 0.2, 0.2]).cumsum()
        m = (c >= seg[0]) & (c < seg[1])
        h[m] = -0.12 * _smoothstep((c[m] - seg[0]) / 0.35)
        m = (c >= seg[1]) & (c < seg[2])  # Hermite from (-0.12, 0) to (0, v0) over 0.15 s
        u = (c[m] - seg[1]) / 0.15
        h[m] = -0.12 * (2 * u ** 3 - 3 * u ** 2 + 1) + 0.0 * (-2 * u ** 3 + 3 * u ** 2) + v0 * 0.15 * (u ** 3 - u ** 2)
        air = (c >= seg[2]) & (c < seg[3])
        ta = c[air] - seg[2]
        h[air] = v0 * ta - 0.5 * g * ta ** 2
        m = (c >= seg[3]) & (c < seg[4])  # Hermite from (0, -v0) to (-0.1, 0) over 0.2 s
        u = (c[m] - seg[3]) / 0.2
        h[m] = -v0 * 0.2 * (u ** 3 - 2 * u ** 2 + u) - 0.1 * (-2 * u ** 3 + 3 * u ** 2)
        m = (c >= seg[4]) & (c < seg[5])
        h[m] = -0.1 * (1 - _smoothstep((c[m] - seg[4]) / 0.2))
        root[:] = start
        root[:, 1] = ankle_y - pelvis_above_ankle - h
        lift = np.where(air, h, 0.0)
        for f in range(2):
            ankles[:, f] = start + left * lateral[f]
            ankles[:, f, 1] = foot_y[f] - lift
        contacts[:] = ~air[:, None]
    heading_t = heading_t + (0.0 if kind != "stand" else 0.1 * np.sin(0.5 * t))
    local = _pose_person(shape, heading_t, root, ankles, t)
    return Person(pid, kind, local, root, betas, contacts, shape)


def look_at(position: np.ndarray, target: np.ndarray, roll: float) -> np.ndarray:
    """cam_to_world [4, 4] in T of an OpenCV camera at `position` looking at `target` (y down world)."""
    z = target - position
    z /= np.linalg.norm(z)
    x = np.cross(np.array([0.0, 1.0, 0.0]), z)  # world down x forward = camera right
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    r = np.stack([x, y, z], 1) @ axis_angle_to_matrix(np.array([0, 0, roll]))
    out = np.eye(4)
    out[:3, :3], out[:3, 3] = r, position
    return out


@dataclass
class Scene:
    """Raw messages plus the truth: cams_T [F, 4, 4], people, raw_from_truth (W <- T) [4, 4], the cloud's
    floor points in T, and the body model of the header."""

    messages: list[dict]
    people: list[Person]
    cams_T: np.ndarray
    raw_from_truth: np.ndarray
    floor_points_T: np.ndarray
    body: BodyModel


def scene_cloud(rng: np.random.Generator, floor: bool = True, n: int = 6000) -> np.ndarray:
    """Cloud in T: floor (1 cm noise), two walls, a table top at 0.75 m, 30 % uniform outliers."""
    parts = []
    if floor:
        f = np.column_stack([rng.uniform(-5, 5, n), rng.normal(0, 0.01, n), rng.uniform(-2, 12, n)])
        parts.append(f)
    w1 = np.column_stack([rng.uniform(-5, 5, n // 2), -rng.uniform(0, 3, n // 2), 12 + rng.normal(0, 0.01, n // 2)])
    w2 = np.column_stack([-5 + rng.normal(0, 0.01, n // 2), -rng.uniform(0, 3, n // 2), rng.uniform(-2, 12, n // 2)])
    table = np.column_stack([rng.uniform(2, 3.5, n // 4), -0.75 + rng.normal(0, 0.005, n // 4), rng.uniform(7, 8, n // 4)])
    parts += [w1, w2, table]
    clean = np.concatenate(parts)
    out = np.column_stack([rng.uniform(-5, 5, int(0.43 * len(clean))), -rng.uniform(-0.5, 3, int(0.43 * len(clean))),
                           rng.uniform(-2, 12, int(0.43 * len(clean)))])
    return np.concatenate([clean, out])


def make_scene(n_frames: int = 240, kinds=("walk", "walk", "stand", "jump"), seed: int = 0, floor_points: bool = True,
               noise_m: float = 0.02, noise_deg: float = 1.5, outlier_rate: float = 0.01,
               pitch_deg: float = 20.0, roll_deg: float = 5.0, cam_height: float = 1.6,
               noisy: bool = True, frame_points: bool = False) -> Scene:
    rng = np.random.default_rng(seed)
    header = header_message(fps=FPS, frame_count=n_frames, seed=0)
    header["video"]["fps_fraction"] = [30, 1]
    body = BodyModel.from_header(header)
    starts = [np.array([-1.5, 0, 6.5]), np.array([1.5, 0, 4.5]), np.array([0.5, 0, 7.0]), np.array([-0.5, 0, 5.0])]
    headings = [np.pi / 2 + 0.3, -0.8, 0.2, 2.5]
    people = [make_person(i + 1, kind, body, n_frames, starts[i], headings[i], rng) for i, kind in enumerate(kinds)]
    t = np.arange(n_frames) / FPS
    target = np.array([0.0, -1.0, 6.0])
    cams = []
    for i in range(n_frames):
        pos = np.array([0.6 * np.sin(0.4 * t[i]), -cam_height - 0.1 * np.sin(0.3 * t[i]), 0.4 * t[i] / t[-1]])
        look = target + np.array([0.5 * np.sin(0.2 * t[i]), 0, 0])
        c = look_at(pos, look, np.radians(roll_deg) * (1 + 0.2 * np.sin(0.5 * t[i])))
        cams.append(c)
    cams = np.stack(cams)
    # first camera: force the designed pitch (looking down pitch_deg) by choosing its target height
    d0 = np.linalg.norm(target[[0, 2]] - cams[0, [0, 2], 3])
    cams[0] = look_at(cams[0, :3, 3], np.array([target[0], cams[0, 1, 3] + d0 * np.tan(np.radians(pitch_deg)), target[2]]),
                      np.radians(roll_deg))
    raw_from_truth = np.linalg.inv(cams[0])
    R, tr = raw_from_truth[:3, :3], raw_from_truth[:3, 3]
    cloud_T = scene_cloud(rng, floor=floor_points)
    width, height = 640, 480
    K = np.array([[600.0, 0, 320], [0, 600.0, 240], [0, 0, 1]], np.float32)
    msgs = [header]
    seq = 1
    series = []  # per person: noisy axis-angle [T, 22, 3] and transl [T, 3] in W, all frames at once
    for p in people:
        go = R @ p.local[:, 0]
        aa = quat_to_aa(matrix_to_quaternion(np.concatenate([go[:, None], p.local[:, 1:]], 1)))
        transl = p.root @ R.T + tr - body.rest_joints(p.betas)[0]
        if noisy:
            scale = np.where(rng.random(n_frames) < outlier_rate, 5.0, 1.0)
            noise = rng.normal(0, np.radians(noise_deg), (n_frames, 22, 3)) * scale[:, None, None]
            aa = quat_to_aa(matrix_to_quaternion(axis_angle_to_matrix(aa) @ axis_angle_to_matrix(noise)))
            transl = transl + rng.normal(0, noise_m, (n_frames, 3)) * scale[:, None]
        betas = np.repeat(p.betas[None], n_frames, 0) + (rng.normal(0, 0.02, (n_frames, 10)) if noisy else 0)
        series.append((aa, transl, betas))
    for i in range(n_frames):
        rows = {k: [] for k in ("id", "score", "global_orient", "body_pose", "left_hand_pose", "right_hand_pose",
                                "jaw_pose", "leye_pose", "reye_pose", "betas", "expression", "transl", "head_xy")}
        for p, (aa_all, transl_all, betas_all) in zip(people, series):
            aa = aa_all[i]
            rows["id"].append(p.pid)
            rows["score"].append(0.9)
            rows["global_orient"].append(aa[0])
            rows["body_pose"].append(aa[1:])
            for name, k in (("left_hand_pose", 15), ("right_hand_pose", 15)):
                rows[name].append(np.zeros((k, 3)))
            for name in ("jaw_pose", "leye_pose", "reye_pose"):
                rows[name].append(np.zeros(3))
            rows["betas"].append(betas_all[i])
            rows["expression"].append(np.zeros(10))
            rows["transl"].append(transl_all[i])
            rows["head_xy"].append(np.array([320.0, 200.0]))
        people_map = {k: np.asarray(v, np.int32 if k == "id" else np.float32) for k, v in rows.items()}
        if frame_points:
            sel = rng.choice(len(cloud_T), 300, replace=False)
            xyz = (cloud_T[sel] @ R.T + tr).astype(np.float32)
        else:
            xyz = np.zeros((0, 3), np.float32)
        points = {"xyz": xyz, "rgb": np.zeros((len(xyz), 3), np.uint8), "conf": np.full(len(xyz), 2.0, np.float32)}
        c2w = (raw_from_truth @ cams[i]).astype(np.float32)
        msgs.append(protocol.make_message(protocol.MessageType.FRAME, JOB, seq, index=i, time=i / FPS,
                                          camera={"cam_to_world": c2w, "K": K, "width": width, "height": height},
                                          people=people_map, points=points))
        seq += 1
    for p in people:
        msgs.append(protocol.make_message(protocol.MessageType.TRACK, JOB, seq, id=p.pid, first_frame=0,
                                          last_frame=n_frames - 1, n_frames=n_frames, betas=p.betas.astype(np.float32)))
        seq += 1
    cloud_raw = (cloud_T @ R.T + tr).astype(np.float32)
    msgs.append(protocol.make_message(protocol.MessageType.DONE, JOB, seq, frames=n_frames, people=len(people),
                                      elapsed_s=1.0, fps=30.0,
                                      scene_points={"xyz": cloud_raw, "rgb": np.zeros((len(cloud_raw), 3), np.uint8)}))
    return Scene(msgs, people, cams, raw_from_truth, cloud_T, body)


def split(msgs: list[dict]):
    """(header, frames, tracks, end) of a message list."""
    header = next(m for m in msgs if m["type"] == "header")
    frames = [m for m in msgs if m["type"] == "frame"]
    tracks = [m for m in msgs if m["type"] == "track"]
    end = next((m for m in msgs if m["type"] in ("done", "error", "cancelled")), None)
    return header, frames, tracks, end


def person_series(frames: list[dict], pid: int, body: BodyModel):
    """(local [n, 22, 3, 3], root [n, 3]) of one person from frame messages (all frames must hold it)."""
    from blender_addon.core.motion.kinematics import local_matrices
    go, bp, root = [], [], []
    for f in frames:
        pm = f["people"]
        r = int(np.flatnonzero(np.asarray(pm["id"]) == pid)[0])
        go.append(pm["global_orient"][r])
        bp.append(pm["body_pose"][r])
        root.append(body.rest_joints(np.asarray(pm["betas"][r], np.float64))[0] + pm["transl"][r])
    return local_matrices(np.array(go), np.array(bp)), np.array(root, np.float64)
