"""Keep the camera's background video in step with the keys when Blender's reading of the video differs
from the results' timing (variable-frame-rate or odd-rate footage).

Blender reads a video as a constant rate (e.g. a VFR phone clip as 60 fps) and shows clip picture
`frame - clip.frame_start + clip.frame_offset` at a scene frame. Keying `frame_offset` on the MovieClip
(CONSTANT, only where it changes) remaps time inside Blender: at each result's frame the clip shows the
picture at that result's `time`. The camera background and the compositor's Movie Clip node (footage
in renders) both read the clip, so both stay in sync. Nothing is keyed when every offset is 0.

Each result's (Blender frame, time) is also recorded on the camera object (`VIDEO_TIMES`, even when the
video is missing), so that *Locate Video…* retimes a video attached later the same way (`retime_located`).
"""
from __future__ import annotations

import os

import bpy
import numpy as np

from ..core.keyframes import CONSTANT, changes_only, channel_keys
from ..core.plan_camera import clip_frame_offsets
from .compat import AnimationTarget

# Camera object properties: the results' timing, for a video located after the import
VIDEO_TIMES = "human3r_video_times"  # float64 [2n]: (Blender frame, seconds from the stream start) per result
RESULTS_RATE = "human3r_results_rate"  # frames/s of the results (the scene's rate at import)


class PlateTiming:
    """Retimes one camera's background clip batch by batch (`key`); `notice` says what was done.

    `clip` None (the video is missing): `key` only records the timing on `camera` (see `retime_located`)."""

    def __init__(self, camera: bpy.types.Object | None, clip: bpy.types.MovieClip | None, results_rate: float,
                 first_frame: int):
        self.camera = camera
        self.clip = clip
        self.results_rate = results_rate
        self.first_frame = first_frame  # Blender frame of video frame 0 (the job's first possible frame)
        self._anim: AnimationTarget | None = None
        self._last: int | None = None  # last offset keyed
        self.largest_shift = 0  # pictures, the largest |offset| keyed

    def key(self, video_times: np.ndarray) -> int:
        """Key the clip's frame_offset for one batch: video_times [n, 2] (Blender frame, seconds).
        Returns the keys written."""
        if self.camera is not None:
            record_times(self.camera, video_times, self.results_rate)
        if self.clip is None:
            return 0
        frames = video_times[:, 0].astype(np.int64)
        offsets = clip_frame_offsets(frames, video_times[:, 1], float(self.clip.fps or self.results_rate),
                                     self.clip.frame_start)
        if self._anim is None:
            if not offsets.any():
                return 0  # Blender already shows each result's picture
            self._anim = AnimationTarget(self.clip, f"{self.clip.name} timing")
            self._anim.remove("frame_offset", 0)  # an earlier import of this video retimed it for its own frames
            if frames[0] > self.first_frame:  # earlier batches needed no shift; CONSTANT holds the first key back
                frames, offsets = np.concatenate([[self.first_frame], frames]), np.concatenate([[0], offsets])
        frames, offsets = changes_only(frames, offsets, self._last)
        if not len(offsets):
            return 0
        self._last = int(offsets[-1])
        self.largest_shift = max(self.largest_shift, int(np.abs(offsets).max()))
        return self._anim.apply(channel_keys("frame_offset", frames, offsets[:, None].astype(np.float64), CONSTANT))

    @property
    def notice(self) -> str | None:
        """The import report's line, or None when nothing was retimed."""
        if self._anim is None:
            return None
        return (f"Blender reads {os.path.basename(self.clip.filepath)} at {self.clip.fps:.2f} fps / "
                f"{self.clip.frame_duration} frames but the results are at {self.results_rate:.2f} fps (variable or "
                f"different frame rate): the background video was retimed to each result's time (clip frame "
                f"offset keyed, up to {self.largest_shift} pictures)")


def record_times(camera: bpy.types.Object, video_times: np.ndarray, results_rate: float) -> None:
    """Append one batch's video_times [n, 2] (Blender frame, seconds) to `camera`'s record."""
    batch = np.asarray(video_times, dtype=np.float64).reshape(-1)
    if VIDEO_TIMES in camera:  # buffer copies: about 0.1 ms for 18,000 results
        batch = np.concatenate([np.array(camera[VIDEO_TIMES], dtype=np.float64), batch])
        # replaced, not assigned over: assigning an array over an existing array property corrupts
        # Blender's heap (a double free at the next file load, bpy 5.0.1)
        del camera[VIDEO_TIMES]
    camera[VIDEO_TIMES] = batch
    camera[RESULTS_RATE] = float(results_rate)


def recorded_times(camera: bpy.types.Object) -> np.ndarray | None:
    """The video_times [n, 2] recorded on `camera` by an import, or None (a camera from an older version)."""
    if VIDEO_TIMES not in camera:
        return None
    return np.array(camera[VIDEO_TIMES], dtype=np.float64).reshape(-1, 2)  # a copy: a view would outlive the property


def retime_located(camera: bpy.types.Object, clip: bpy.types.MovieClip, first_frame: int) -> str | None:
    """Retime `clip`, just attached behind `camera`, to the results' recorded timing, as the import does.
    Returns the notice (None: nothing to retime, or no timing recorded)."""
    times = recorded_times(camera)
    if times is None or not len(times):
        return None
    timing = PlateTiming(None, clip, float(camera.get(RESULTS_RATE) or clip.fps), first_frame)
    timing.key(times)
    return timing.notice
