"""The pieces every job's message stream is made of (file jobs in `job.py`, live jobs in
`live_job.py`): the world conventions a header states, `seq` numbering, the frame, header-video and
track messages, and how a frame feeds the track book and the scene cloud.
"""
from __future__ import annotations

import os
from typing import Any, Iterator

from blender_addon.core import protocol
from backend.engine.scene_cloud import VoxelCloud
from backend.engine.tracks import TrackBook

PROGRESS_INTERVAL_S = 0.5
SCENE_POINTS_PER_FRAME = 4096  # points of each frame fed into the accumulated scene cloud (at most)

CONVENTIONS: dict[str, Any] = {
    "world": "OpenCV camera frame of the first processed frame (x right, y down, z forward); units as "
             "predicted (metres); chunks after a state reset are re-based online onto the reset view's pose",
    "camera_axes": "OpenCV (x right, y down, z forward); cam_to_world maps camera coordinates to world",
    "intrinsics": "K in pixels of the original (upright) frame, OpenCV pixel convention: the centre of pixel "
                  "(col, row) is at (col, row), the image spans [-0.5, width-0.5]; fx = f * W/W_resized, "
                  "fy = f * H/H_resized, principal point mapped through the resize and the centre crop "
                  "(exact; the reference's rescale ignores the crop)",
    "smplx": "world-frame SMPL-X parameters: rotations axis-angle, local per joint; global_orient and transl "
             "for SMPL-X rotating about the shaped pelvis rest joint (v = R (v0 - j0) + j0 + transl)",
    "head_xy": "head keypoint of each person in original pixels, OpenCV pixel convention",
    "time": "seconds since the start of the video stream (from the frame's pts); index = source frame index",
    "points": "world xyz, colours of the model input image, confidence conf_self (>= 1); kept where "
              "conf > conf_threshold (strict)",
}


def display_path(path: str | os.PathLike) -> str:
    """A path as UTF-8 text for messages and files. Names the OS gives as undecodable bytes (Python's
    surrogate escapes) show U+FFFD where those bytes were; the file itself is still opened by its
    exact name."""
    return os.fsencode(path).decode("utf-8", "replace")


def utf8_text(text: str) -> str:
    """`text` made encodable as UTF-8 (error texts quoting such a path), like `display_path`."""
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:  # surrogates that stand for no byte
        return text.encode("utf-8", "replace").decode("utf-8")


def video_facts(info, path: str) -> dict[str, Any]:
    frac = info.fps_fraction
    return {
        "path": path, "width": info.width, "height": info.height, "fps": info.fps,
        "fps_fraction": None if frac is None else [frac.numerator, frac.denominator],
        "frame_count": info.frame_count, "frame_count_exact": info.frame_count_exact,
        "rotation": info.rotation, "mirrored": info.mirrored, "duration": info.duration,
        "kind": info.kind, "codec": info.codec,
    }


def _frame_fields(res) -> dict:
    cam = res.camera
    return dict(
        index=int(res.index), time=float(res.time),
        camera={"cam_to_world": cam.cam_to_world, "K": cam.K, "width": cam.width, "height": cam.height,
                "K_model": cam.K_model},
        people=res.people, points=res.points, chunk=int(res.chunk), reset=bool(res.reset),
    )


class MessageNumbering:
    """Stamps a job's messages with its id and consecutive `seq` numbers (0, 1, 2, ...)."""

    def __init__(self, job_id: str):
        self.job_id, self.seq = job_id, 0

    def __call__(self, mtype: protocol.MessageType, **fields) -> dict:
        if isinstance(fields.get("message"), str):  # OS text (a non-UTF-8 file name) must still encode
            fields["message"] = utf8_text(fields["message"])
        m = protocol.make_message(mtype, self.job_id, self.seq, **fields)
        self.seq += 1
        return m

    def frame(self, res) -> dict:
        return self(protocol.MessageType.FRAME, **_frame_fields(res))


def accumulate(res, tracks: TrackBook, cloud: VoxelCloud) -> None:
    """Feed one `FrameResult` to the track book and (an even subset of its points) to the scene cloud."""
    tracks.update(res.index, res.people["id"], res.people["betas"])
    if len(res.points["xyz"]):  # an even subset is plenty for a voxel-averaged cloud
        step = -(-len(res.points["xyz"]) // SCENE_POINTS_PER_FRAME)
        cloud.add(res.points["xyz"][::step], res.points["rgb"][::step])


def track_messages(tracks: TrackBook, msg: MessageNumbering) -> Iterator[dict]:
    """One `track` message per finished track."""
    for t in tracks.summaries():
        yield msg(protocol.MessageType.TRACK, id=int(t.id), first_frame=int(t.first_frame),
                  last_frame=int(t.last_frame), n_frames=int(t.n_frames), betas=t.robust_betas())
