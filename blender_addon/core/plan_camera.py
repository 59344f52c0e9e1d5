"""Camera planning: per batch of frames, the camera to create (first batch) and its keys.

The camera's world matrix comes from each frame's `cam_to_world` (OpenCV world W, converted to
Blender's world), its lens and shifts from `K` and the image size (`camera.camera_fit`). Lens and
shifts stay static (the first frame's value) until one frame differs; from then on that channel is
keyed from the job's first frame. A frame with a non-finite pose or a non-positive focal length
holds the previous valid frame's camera, so one bad prediction cannot break the camera.
"""
from __future__ import annotations

import numpy as np

from .camera import CameraFit, camera_fit, lens_and_shift
from .coords import camera_matrix_world
from .keyframes import CONSTANT, LINEAR, channel_keys
from .plans import CameraPlan, FramesPlan, SetupPlan
from .rotations import matrix_to_quaternion, quaternion_continuity

LENS_CHANNELS = ("lens", "shift_x", "shift_y")
# Camera object custom property keyed once (1) in the camera's action: a path only the camera has, so
# FBX's "all actions" export (on by default) does not also apply the camera's motion to the people.
CAMERA_PROP = "human3r_camera"

FALLBACK_SIZE = (1920, 1080)  # pixels, when neither the header, the frame nor K gives an image size


class CameraPlanner:
    """Plans the match-move camera of one job (see the module docstring)."""

    def __init__(self, video_background: bool):
        self.video_background = video_background
        self.video_orientation = (0, False)  # (counter-clockwise rotation, mirrored) of the source, from the header
        self.fit: CameraFit | None = None
        self.bad_frames = 0  # frames whose pose or intrinsics were invalid (held the previous)
        self._made = False
        self._last_quat: np.ndarray | None = None
        self._last_good: tuple[np.ndarray, np.ndarray] | None = None  # (c2w [4, 4], K [3, 3])
        self._lens_frames: list[np.ndarray] = []
        self._lens_values: list[np.ndarray] = []  # [n, 3] lens, shift_x, shift_y
        self._lens_keyed = [False, False, False]

    def header(self, video: dict) -> None:
        self.video_orientation = (int(video.get("rotation") or 0) % 360, bool(video.get("mirrored")))

    def frames(self, msgs: list[dict], frames: np.ndarray, setup: SetupPlan, plan: FramesPlan) -> None:
        """Add the camera (first batch) and its keys for `msgs` at Blender `frames` [n] to `plan`."""
        c2w = np.stack([np.asarray(m["camera"]["cam_to_world"], dtype=np.float64) for m in msgs])
        K = np.stack([np.asarray(m["camera"]["K"], dtype=np.float64) for m in msgs])
        if self.fit is None:
            w, h = self._image_size(msgs[0]["camera"], K[0], setup)
            self._sanitize(c2w, K, w, h)
            self.fit = camera_fit(w, h, K[0, 0, 0], K[0, 1, 1])
            if not setup.width or not setup.height:  # the header had no size: the scene takes the camera's
                setup.width, setup.height = w, h
        else:
            self._sanitize(c2w, K, self.fit.width, self.fit.height)
        lens = lens_and_shift(K, self.fit)  # [n, 3]
        rate = setup.fps / setup.fps_base
        times = np.array([float(m["time"]) if m.get("time") is not None else int(m["index"]) / rate for m in msgs])
        plan.video_times = np.stack([frames.astype(np.float64), times], axis=1)
        if not self._made:
            plan.camera = CameraPlan(name=f"{setup.collection_name} camera", fit=self.fit,
                                     lens=float(lens[0, 0]), shift_x=float(lens[0, 1]), shift_y=float(lens[0, 2]),
                                     video_path=setup.video_path if self.video_background else None,
                                     video_rotation=self.video_orientation[0],
                                     video_mirrored=self.video_orientation[1],
                                     video_rate=setup.fps / setup.fps_base,
                                     video_frames=None if setup.frame_end is None
                                     else setup.frame_end - setup.frame_start + 1)
            self._made = True
            plan.camera_object_keys += channel_keys(f'["{CAMERA_PROP}"]', frames[:1], np.ones((1, 1)), CONSTANT)
        mw = camera_matrix_world(c2w)
        quat = quaternion_continuity(matrix_to_quaternion(mw[:, :3, :3]), self._last_quat)
        self._last_quat = quat[-1]
        plan.camera_object_keys += channel_keys("location", frames, mw[:, :3, 3], LINEAR, "Object Transforms")
        plan.camera_object_keys += channel_keys("rotation_quaternion", frames, quat, LINEAR, "Object Transforms")
        self._plan_lens(frames, lens, plan)

    @staticmethod
    def _image_size(cam: dict, K0: np.ndarray, setup: SetupPlan) -> tuple[int, int]:
        """Image size in pixels: the frame's, else the header's, else from the principal point."""
        w = int(cam.get("width") or setup.width)
        h = int(cam.get("height") or setup.height)
        if w > 0 and h > 0:
            return w, h
        cx, cy = K0[0, 2], K0[1, 2]
        if np.isfinite([cx, cy]).all():
            return int(round(2 * cx + 1)), int(round(2 * cy + 1))
        return FALLBACK_SIZE

    def _plan_lens(self, frames: np.ndarray, lens: np.ndarray, plan: FramesPlan) -> None:
        if not all(self._lens_keyed):
            self._lens_frames.append(frames)
            self._lens_values.append(lens)
        first = self._lens_values[0][0] if self._lens_values else lens[0]
        for c, name in enumerate(LENS_CHANNELS):
            if self._lens_keyed[c]:
                plan.camera_data_keys += channel_keys(name, frames, lens[:, c], LINEAR)
            elif np.abs(lens[:, c] - first[c]).max() > 1e-6 * max(1.0, abs(float(first[c]))):
                history = np.concatenate(self._lens_values)[:, c]
                plan.camera_data_keys += channel_keys(name, np.concatenate(self._lens_frames), history, LINEAR)
                self._lens_keyed[c] = True
        if all(self._lens_keyed):  # history no longer needed
            self._lens_frames, self._lens_values = [], []

    def _sanitize(self, c2w: np.ndarray, K: np.ndarray, width: int, height: int) -> None:
        """Replace (in place) non-finite poses and non-positive/non-finite focal lengths by the last valid
        frame's values (or identity / a 53° field of view)."""
        bad_pose = ~np.isfinite(c2w).all(axis=(1, 2))
        f = K[:, [0, 1], [0, 1]]
        bad_k = ~(np.isfinite(K).all(axis=(1, 2)) & (f > 0).all(axis=1))
        if bad_pose.any() or bad_k.any():
            last_pose, last_k = self._last_good if self._last_good is not None else (np.eye(4), None)
            if last_k is None:
                focal = float(max(width, height))
                last_k = np.array([[focal, 0, width / 2 - 0.5], [0, focal, height / 2 - 0.5], [0, 0, 1.0]])
            for i in range(len(K)):
                if bad_pose[i]:
                    c2w[i] = last_pose
                last_pose = c2w[i]
                if bad_k[i]:
                    K[i] = last_k
                last_k = K[i]
            self.bad_frames += int((bad_pose | bad_k).sum())
        self._last_good = (c2w[-1].copy(), K[-1].copy())


def clip_frame_offsets(frames: np.ndarray, times: np.ndarray, clip_rate: float, clip_frame_start: int) -> np.ndarray:
    """MovieClip.frame_offset [n] int64 per Blender frame [n] so that the clip shows, at each frame, the
    picture of its result. Blender reads a video as a constant `clip_rate` frames/s, its picture k being the
    last stream frame that starts at or before k / clip_rate seconds (checked on 4.2 and 5.0 with a clip
    timed off that grid), and shows picture `frame - clip.frame_start + frame_offset` at a scene frame. The
    result starting at `times` [n] seconds from the stream start is therefore picture ceil(time * clip_rate);
    the small margin keeps a time that sits on the grid, but carries float error, on its own picture."""
    shown = np.asarray(frames, dtype=np.int64) - int(clip_frame_start)
    pictures = np.ceil(np.asarray(times, dtype=np.float64) * clip_rate - 1e-3).astype(np.int64)
    return pictures - shown
