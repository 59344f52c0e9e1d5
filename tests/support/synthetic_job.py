"""Synthetic but realistic Human3R job messages (header, frames, tracks, done) for scene tests.

People stand upright 3-6 m in front of a slowly moving camera in the OpenCV world W (y down), with
smooth random poses; the body model is the engine's synthetic SMPL-X without pose correctives, in the
protocol's header layout. `make_job` returns protocol messages; `write_job` stores them as a .h3r file;
`job_messages`/`write_job_file` are the short form used by the extension tests (everyone in every frame).
This is the one generator of synthetic jobs for the core, extension and Blender tests.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from blender_addon.core import protocol
from blender_addon.core.resultfile import ResultFileWriter
from blender_addon.core.rotations import axis_angle_to_matrix
from tests.support.synthetic_smplx import synthetic_smplx_arrays

JOB = "job-synthetic"


@lru_cache(maxsize=4)
def body_model_arrays(seed: int = 0, correctives: bool = False) -> dict[str, np.ndarray]:
    """`header.body_model` arrays built from the synthetic SMPL-X file (float32, protocol names; cached, do
    not modify). `correctives` adds the synthetic pose correctives as `posedirs` [486, V*3]."""
    a = synthetic_smplx_arrays(seed, pose_correctives=correctives)
    parents = a["kintree_table"][0].astype(np.int64)
    parents[0] = -1
    out = {
        "faces": a["f"].astype("<i4"),
        "lbs_weights": a["weights"].astype("<f4"),
        "parents": parents.astype("<i4"),
        "v_template": a["v_template"].astype("<f4"),
        "shapedirs": a["shapedirs"][:, :, :10].astype("<f4"),
        "exprdirs": a["shapedirs"][:, :, 300:310].astype("<f4"),
        "J_regressor": a["J_regressor"].astype("<f4"),
    }
    if correctives:
        posedirs = a["posedirs"]
        out["posedirs"] = np.ascontiguousarray(posedirs.reshape(-1, posedirs.shape[-1]).T.astype("<f4"))
    return out


def header_message(video_path: str | None = "/videos/clip.mp4", width: int = 640, height: int = 480,
                   fps: float = 30000 / 1001, frame_count: int = 30, seed: int = 0,
                   correctives: bool = False) -> dict:
    from blender_addon.core.body_model import SMPLX_JOINT_NAMES
    return protocol.make_message(
        protocol.MessageType.HEADER, JOB, 0,
        video={"path": video_path, "width": width, "height": height, "fps": fps, "fps_fraction": [30000, 1001],
               "frame_count": frame_count, "rotation": 0, "duration": frame_count / fps},
        options={"stride": 1}, model={"name": "synthetic"},
        smplx={"model_type": "smplx", "num_betas": 10, "num_expression_coeffs": 10, "use_pca": False,
               "flat_hand_mean": True, "joint_names": list(SMPLX_JOINT_NAMES)},
        conventions={"world": "opencv-first-camera"}, body_model=body_model_arrays(seed, correctives))


def camera_at(t: float) -> np.ndarray:
    """cam_to_world [4, 4] float32 of a camera panning and dollying slowly (t in frames)."""
    c2w = np.eye(4)
    c2w[:3, :3] = axis_angle_to_matrix(np.array([0.01 * np.sin(0.1 * t), 0.02 * t * 0.1, 0.005 * t * 0.1]))
    c2w[:3, 3] = (0.02 * t, -0.01 * np.sin(0.2 * t), 0.03 * t)
    return c2w.astype(np.float32)


def person_params(rng: np.random.Generator, n: int, base_pose: np.ndarray, t: np.ndarray, place: np.ndarray) -> dict:
    """Per-frame SMPL-X parameters [n, ...] of one person (upright in W, walking slowly)."""
    wobble = 0.15 * np.sin(0.3 * t)[:, None, None]
    body = base_pose[None, 1:22] + wobble * base_pose[None, 1:22]
    go = np.array([np.pi, 0.0, 0.0])[None] + np.stack([0.05 * np.sin(0.2 * t), 0.3 * np.sin(0.05 * t),
                                                        np.zeros_like(t)], 1)
    return {
        "global_orient": go, "body_pose": body,
        "left_hand_pose": np.repeat(base_pose[None, 25:40], n, 0),
        "right_hand_pose": np.repeat(base_pose[None, 40:55], n, 0),
        "jaw_pose": np.repeat(base_pose[None, 22], n, 0), "leye_pose": np.repeat(base_pose[None, 23], n, 0),
        "reye_pose": np.repeat(base_pose[None, 24], n, 0),
        "transl": place[None] + np.stack([0.02 * t, np.zeros_like(t), -0.01 * t], 1),
    }


def make_job(n_frames: int = 30, people: tuple = ((1, 0, 30), (2, 10, 25)), width: int = 640, height: int = 480,
             seed: int = 0, video_path: str | None = "/videos/clip.mp4", points_per_frame: int = 40,
             scene_points: int = 300, stride: int = 1) -> list[dict]:
    """Messages of a finished job: header, frames (index 0, stride, ...), tracks, done.

    people: (track id, first frame, end frame) per person (source indices; end exclusive).
    """
    rng = np.random.default_rng(seed)
    indices = np.arange(0, n_frames, stride)
    msgs = [header_message(video_path, width, height, frame_count=n_frames, seed=0)]
    per_person = {}
    for k, (pid, first, end) in enumerate(people):
        base = rng.normal(0.0, 0.25, (55, 3))
        place = np.array([-1.0 + 1.5 * k, 1.0, 4.0 + k])
        betas_track = rng.normal(0.0, 1.0, 10)
        per_person[pid] = (first, end, base, place, betas_track)
    fx = 0.9 * max(width, height)
    seq = 1
    for i in indices:
        K = np.array([[fx, 0, width / 2 + 7.0], [0, fx * 1.02, height / 2 - 5.0], [0, 0, 1]], np.float32)
        K[0, 0] *= 1.0 + 0.001 * i  # a slow zoom
        rows = {name: [] for name in ("id", "score", "global_orient", "body_pose", "left_hand_pose",
                                      "right_hand_pose", "jaw_pose", "leye_pose", "reye_pose", "betas",
                                      "expression", "transl", "head_xy")}
        for pid, (first, end, base, place, betas_track) in per_person.items():
            if not first <= i < end:
                continue
            p = person_params(rng, 1, base, np.array([float(i)]), place)
            rows["id"].append(pid)
            rows["score"].append(0.9)
            for name in ("global_orient", "body_pose", "left_hand_pose", "right_hand_pose", "jaw_pose",
                         "leye_pose", "reye_pose", "transl"):
                rows[name].append(p[name][0])
            rows["betas"].append(betas_track + rng.normal(0, 0.05, 10))
            rows["expression"].append(np.zeros(10))
            rows["head_xy"].append(np.array([width / 2, height / 3]))
        shapes = {"id": (0,), "score": (0,), "global_orient": (0, 3), "body_pose": (0, 21, 3),
                  "left_hand_pose": (0, 15, 3), "right_hand_pose": (0, 15, 3), "jaw_pose": (0, 3),
                  "leye_pose": (0, 3), "reye_pose": (0, 3), "betas": (0, 10), "expression": (0, 10),
                  "transl": (0, 3), "head_xy": (0, 2)}
        people_map = {}
        for name, values in rows.items():
            dtype = np.int32 if name == "id" else np.float32
            people_map[name] = np.asarray(values, dtype) if values else np.zeros(shapes[name], dtype)
        xyz = rng.uniform((-3, -2, 3), (3, 1.5, 9), (points_per_frame, 3)).astype(np.float32)
        points = {"xyz": xyz, "rgb": rng.integers(0, 256, (points_per_frame, 3), dtype=np.uint8),
                  "conf": np.ones(points_per_frame, np.float32)}
        msgs.append(protocol.make_message(
            protocol.MessageType.FRAME, JOB, seq, index=int(i), time=float(i) * 1001 / 30000,
            camera={"cam_to_world": camera_at(float(i)), "K": K, "width": width, "height": height},
            people=people_map, points=points))
        seq += 1
    for pid, (first, end, base, place, betas_track) in per_person.items():
        msgs.append(protocol.make_message(protocol.MessageType.TRACK, JOB, seq, id=int(pid), first_frame=int(first),
                                          last_frame=int(end - 1), n_frames=int(end - first),
                                          betas=betas_track.astype(np.float32)))
        seq += 1
    sp = rng.uniform((-4, -2, 2), (4, 1.5, 10), (scene_points, 3)).astype(np.float32)
    msgs.append(protocol.make_message(protocol.MessageType.DONE, JOB, seq, frames=len(indices), people=len(people),
                                      elapsed_s=1.0, fps=30.0,
                                      scene_points={"xyz": sp,
                                                    "rgb": rng.integers(0, 256, (scene_points, 3), dtype=np.uint8)}))
    return msgs


def write_job(path: str | Path, msgs: list[dict]) -> Path:
    """Write messages to a .h3r result file."""
    with ResultFileWriter(path) as writer:
        for m in msgs:
            writer.write(m)
    return Path(path)


def decoded(msgs: list[dict]) -> list[dict]:
    """Round-trip messages through the codec (read-only arrays, as a reader would deliver them)."""
    return [protocol.decode(protocol.encode(m)) for m in msgs]


WIDTH, HEIGHT = 320, 240  # image size of `job_messages`


def job_messages(frames: int = 6, people: int = 2, video_path: str = "/videos/synthetic.mp4") -> list[dict]:
    """A finished job of `frames` frames with track ids 0..people-1 present in every frame, WIDTH x HEIGHT."""
    return make_job(n_frames=frames, people=tuple((k, 0, frames) for k in range(people)), width=WIDTH,
                    height=HEIGHT, video_path=video_path, points_per_frame=200, scene_points=500)


def write_job_file(path: str | Path, frames: int = 6, people: int = 2) -> Path:
    """Write `job_messages(frames, people)` to a .h3r result file; return its path."""
    return write_job(path, job_messages(frames, people))


def wire_roundtrip(msg: dict) -> dict:
    """Encode and decode one message, as the client hands it over (read-only arrays)."""
    return protocol.decode(protocol.encode(msg))
