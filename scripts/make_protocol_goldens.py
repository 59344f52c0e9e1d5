"""Write the golden protocol fixtures under tests/fixtures/protocol/ (run after any intended protocol change).

    python scripts/make_protocol_goldens.py [--out tests/fixtures/protocol]

Writes one small encoded message per message type (`<type>.bin`: a msgpack list of the message's
ZeroMQ frames, envelope first), a tiny result file (`tiny.h3r`: header, two frames, a track,
done) and `manifest.json` (file -> type, job, seq, array dtypes/shapes) that the tests compare
against. Values are deterministic, so re-running gives byte-identical files; a change to these
files must come with a PROTOCOL_VERSION bump.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import msgpack
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from blender_addon.core import protocol  # noqa: E402
from blender_addon.core.protocol import ErrorCode, MessageType, make_message  # noqa: E402
from blender_addon.core.resultfile import ResultFileWriter  # noqa: E402

JOB = "20260101-000000-0a0b0c0d"


def _rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def header_message() -> dict:
    rng = _rng()
    v, j = 8, 3  # a toy body: 8 vertices, 3 joints
    return make_message(
        MessageType.HEADER, JOB, 0,
        video={"path": "/videos/clip.mp4", "width": 64, "height": 48, "fps": 30.0, "fps_fraction": [30, 1],
               "frame_count": 2, "rotation": 0, "duration": 0.0667},
        options={"start": 0, "end": 2, "stride": 1, "size": 112},
        model={"name": "tiny", "checkpoint_digest": "sha256:" + "0" * 64, "config": {}, "device": "cpu",
               "dtype": "float32"},
        smplx={"flat_hand_mean": False, "num_betas": 10, "num_expression_coeffs": 10,
               "joint_names": ["pelvis", "left_hip", "right_hip"]},
        conventions={"world": "opencv_first_camera", "units": "m"},
        body_model={"faces": np.array([[0, 1, 2], [2, 3, 4]], dtype="<i4"),
                    "lbs_weights": np.full((v, j), 1.0 / j, dtype="<f4"),
                    "parents": np.array([-1, 0, 0], dtype="<i4"),
                    "v_template": rng.standard_normal((v, 3)).astype("<f4"),
                    "shapedirs": rng.standard_normal((v, 3, 10)).astype("<f4") * 0.01,
                    "exprdirs": np.zeros((v, 3, 10), dtype="<f4"),
                    "J_regressor": np.full((j, v), 1.0 / v, dtype="<f4")})


def frame_message(index: int, seq: int) -> dict:
    rng = np.random.default_rng(index)
    n, m = 2, 5
    f4 = lambda *shape: rng.standard_normal(shape).astype("<f4") * 0.1  # noqa: E731
    return make_message(
        MessageType.FRAME, JOB, seq, index=index, time=index / 30.0,
        camera={"cam_to_world": np.eye(4, dtype="<f4"),
                "K": np.array([[60, 0, 32], [0, 60, 24], [0, 0, 1]], dtype="<f4"), "width": 64, "height": 48},
        people={"id": np.array([0, 1], dtype="<i4"), "score": np.array([0.9, 0.8], dtype="<f4"),
                "global_orient": f4(n, 3), "body_pose": f4(n, 21, 3), "left_hand_pose": f4(n, 15, 3),
                "right_hand_pose": f4(n, 15, 3), "jaw_pose": f4(n, 3), "leye_pose": f4(n, 3),
                "reye_pose": f4(n, 3), "betas": f4(n, 10), "expression": f4(n, 10), "transl": f4(n, 3),
                "head_xy": f4(n, 2)},
        points={"xyz": f4(m, 3), "rgb": rng.integers(0, 256, (m, 3), dtype=np.uint8), "conf": f4(m) + 2})


def all_messages() -> dict[str, dict]:
    """One small message of every type (name -> message)."""
    return {
        "hello": make_message(MessageType.HELLO, software="golden", role="client"),
        "submit": make_message(MessageType.SUBMIT, video="/videos/clip.mp4", options={"size": 112}, request="r-1",
                               credits=32),
        "accepted": make_message(MessageType.ACCEPTED, JOB, 0, queue_position=0, result_path="/r/x.h3r",
                                 request="r-1"),
        "header": header_message(),
        "frame": frame_message(0, 1),
        "track": make_message(MessageType.TRACK, JOB, 3, id=0, first_frame=0, last_frame=1, n_frames=2,
                              betas=np.linspace(-1, 1, 10, dtype="<f4")),
        "progress": make_message(MessageType.PROGRESS, JOB, 2, done=1, total=2, fps=12.5, eta_s=0.08,
                                 stage="inference"),
        "done": make_message(MessageType.DONE, JOB, 4, frames=2, people=2, elapsed_s=0.2, fps=10.0,
                             scene_points={"xyz": np.zeros((3, 3), dtype="<f4"),
                                           "rgb": np.full((3, 3), 200, dtype=np.uint8)}),
        "error": protocol.error_message(ErrorCode.BAD_VIDEO, "cannot decode", JOB, 1, frame=None),
        "cancel": make_message(MessageType.CANCEL, JOB),
        "cancelled": make_message(MessageType.CANCELLED, JOB, 2, frames=1),
        "status": make_message(MessageType.STATUS, jobs=[{"job": JOB, "state": "running", "queue_position": 0}]),
        "fetch": make_message(MessageType.FETCH, JOB, credits=8),
        "credit": make_message(MessageType.CREDIT, JOB, credits=16),
        "ping": make_message(MessageType.PING, request="r-2"),
        "pong": make_message(MessageType.PONG, request="r-2"),
        "heartbeat": make_message(MessageType.HEARTBEAT),
    }


def describe(msg: dict) -> dict:
    """Manifest entry: type, job, seq and every array's path -> [dtype, shape]."""
    arrays: dict[str, list] = {}

    def walk(value, path):
        if isinstance(value, np.ndarray):
            arrays[path] = [value.dtype.str, list(value.shape)]
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(v, f"{path}.{k}" if path else k)

    walk(msg, "")
    return {"type": msg["type"], "job": msg["job"], "seq": msg["seq"], "arrays": arrays}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(REPO / "tests" / "fixtures" / "protocol"))
    out = Path(parser.parse_args(argv).out)
    out.mkdir(parents=True, exist_ok=True)
    manifest: dict = {"protocol_version": protocol.PROTOCOL_VERSION, "messages": {}, "files": {}}
    for name, msg in all_messages().items():
        frames = [bytes(memoryview(f)) for f in protocol.encode(msg)]
        (out / f"{name}.bin").write_bytes(msgpack.packb(frames, use_bin_type=True))
        manifest["messages"][f"{name}.bin"] = describe(msg)
    stream = [header_message(), frame_message(0, 1), frame_message(1, 2), all_messages()["track"],
              all_messages()["done"]]
    with ResultFileWriter(out / "tiny.h3r") as writer:
        for msg in stream:
            writer.write(msg)
    manifest["files"]["tiny.h3r"] = [describe(m) for m in stream]
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    print(f"wrote {len(manifest['messages'])} messages and tiny.h3r to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
