"""A synthetic Human3R job as protocol messages (header, frames, tracks, done), for add-on tests.

The messages follow `blender_addon.core.protocol` exactly (field names, dtypes, shapes) with a
synthetic SMPL-X body (tests/support/synthetic_smplx.py) and simple, smooth motion: two people
walking in front of a camera that dollies sideways, a few hundred coloured points per frame. It is
what a real job of `frames` frames would write into a .h3r file.
"""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from blender_addon.core import protocol
from blender_addon.core.protocol import MessageType
from blender_addon.core.resultfile import ResultFileWriter
from tests.support.synthetic_smplx import PARENTS, synthetic_smplx_arrays

WIDTH, HEIGHT, FPS = 320, 240, 30.0
JOB = "job-synthetic"
JOINT_NAMES = [f"joint_{i:02d}" for i in range(len(PARENTS))]


def body_model() -> dict:
    """The header's `body_model` map from the synthetic SMPL-X file (float32/int32 as on the wire)."""
    return dict(_body_model_arrays())


@functools.lru_cache(maxsize=1)
def _body_model_arrays() -> dict:
    a = synthetic_smplx_arrays(seed=0, pose_correctives=False)
    return {
        "faces": a["f"].astype(np.int32),
        "lbs_weights": a["weights"].astype(np.float32),
        "parents": PARENTS.astype(np.int32),
        "v_template": a["v_template"].astype(np.float32),
        "shapedirs": np.ascontiguousarray(a["shapedirs"][:, :, :10]).astype(np.float32),
        "exprdirs": np.ascontiguousarray(a["shapedirs"][:, :, 300:310]).astype(np.float32),
        "J_regressor": a["J_regressor"].astype(np.float32),
    }


def header(frames: int, video_path: str = "/videos/synthetic.mp4") -> dict:
    return protocol.make_message(
        MessageType.HEADER, JOB, 1,
        video={"path": video_path, "width": WIDTH, "height": HEIGHT, "fps": FPS, "fps_fraction": [30, 1],
               "frame_count": frames, "rotation": 0, "duration": frames / FPS},
        options={"start": 0, "end": None, "stride": 1, "reset_interval": 100, "ttt3r": True},
        model={"name": "human3r-tiny", "checkpoint_digest": "0" * 16, "config": {}, "device": "cpu",
               "dtype": "float32"},
        smplx={"flat_hand_mean": True, "num_betas": 10, "num_expression_coeffs": 10, "gender": "neutral",
               "joint_names": JOINT_NAMES},
        conventions={"world": "opencv-first-camera", "units": "m", "rotations": "axis-angle"},
        body_model=body_model(),
    )


def frame(i: int, seq: int, people: int = 2, points: int = 200) -> dict:
    """Frame `i`: camera moving along +x, people `0..people-1` walking along +x at z = 3 m."""
    rng = np.random.default_rng(i)
    cam = np.eye(4, dtype=np.float32)
    cam[0, 3] = 0.02 * i
    f = 300.0
    K = np.array([[f, 0, WIDTH / 2], [0, f, HEIGHT / 2], [0, 0, 1]], dtype=np.float32)
    n = people
    body_pose = np.zeros((n, 21, 3), np.float32)
    body_pose[:, 0, 0] = 0.3 * np.sin(0.3 * i)  # left hip swings
    body_pose[:, 1, 0] = -0.3 * np.sin(0.3 * i)
    transl = np.stack([np.array([-0.6 + 1.2 * k + 0.03 * i, 0.0, 3.0]) for k in range(n)]).astype(np.float32)
    global_orient = np.tile(np.array([np.pi, 0.0, 0.0], np.float32), (n, 1))  # upright in OpenCV (y down)
    people_map = {
        "id": np.arange(n, dtype=np.int32), "score": np.full(n, 0.9, np.float32),
        "global_orient": global_orient, "body_pose": body_pose,
        "left_hand_pose": np.zeros((n, 15, 3), np.float32), "right_hand_pose": np.zeros((n, 15, 3), np.float32),
        "jaw_pose": np.zeros((n, 3), np.float32), "leye_pose": np.zeros((n, 3), np.float32),
        "reye_pose": np.zeros((n, 3), np.float32),
        "betas": np.zeros((n, 10), np.float32), "expression": np.zeros((n, 10), np.float32),
        "transl": transl, "head_xy": np.tile(np.array([WIDTH / 2, HEIGHT / 4], np.float32), (n, 1)),
    }
    pts = {
        "xyz": (rng.uniform(-2, 2, (points, 3)) + (0, 0, 5)).astype(np.float32),
        "rgb": rng.integers(0, 256, (points, 3), dtype=np.uint8),
        "conf": rng.uniform(1, 5, points).astype(np.float32),
    }
    return protocol.make_message(
        MessageType.FRAME, JOB, seq, index=i, time=i / FPS,
        camera={"cam_to_world": cam, "K": K, "width": WIDTH, "height": HEIGHT},
        people=people_map, points=pts)


def job_messages(frames: int = 6, people: int = 2) -> list[dict]:
    """header, `frames` frames, one track per person, done — with consecutive seq numbers."""
    msgs = [header(frames)]
    for i in range(frames):
        msgs.append(frame(i, len(msgs) + 1, people))
    for k in range(people):
        msgs.append(protocol.make_message(MessageType.TRACK, JOB, len(msgs) + 1, id=k, first_frame=0,
                                          last_frame=frames - 1, n_frames=frames,
                                          betas=np.zeros(10, np.float32)))
    rng = np.random.default_rng(99)
    msgs.append(protocol.make_message(
        MessageType.DONE, JOB, len(msgs) + 1, frames=frames, people=people, elapsed_s=1.0, fps=float(frames),
        scene_points={"xyz": rng.uniform(-2, 2, (500, 3)).astype(np.float32),
                      "rgb": rng.integers(0, 256, (500, 3), dtype=np.uint8)}))
    return msgs


def write_job_file(path: str | Path, frames: int = 6, people: int = 2) -> Path:
    """Write the synthetic job to a .h3r result file; return its path."""
    with ResultFileWriter(path) as writer:
        for msg in job_messages(frames, people):
            writer.write(msg)
    return Path(path)


def wire_roundtrip(msg: dict) -> dict:
    """Encode and decode a message, as the client hands it over (read-only arrays)."""
    return protocol.decode(protocol.encode(msg))
