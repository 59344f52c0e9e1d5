"""Point planning: each frame's points collected into one per-frame cloud, and the job's scene cloud
(`done.scene_points`) at the end; both in Blender's world, capped at `max_points` (0 = no cap)."""
from __future__ import annotations

import numpy as np

from .plans import ImportOptions
from .pointcloud import CloudData, FrameCloudAccumulator, cloud_from_world


class PointsPlanner:
    """Collects per-frame points while frames arrive; makes the clouds when the job ends."""

    def __init__(self, options: ImportOptions):
        self.options = options
        self.frame_points = FrameCloudAccumulator(options.max_points)

    def frames(self, msgs: list[dict], frames: np.ndarray) -> None:
        if self.options.frame_points:
            for m, f in zip(msgs, frames):
                self.frame_points.add(int(f), m.get("points"))

    def scene_cloud(self, end_msg: dict | None) -> CloudData | None:
        """The scene cloud of a `done` message (None when off, absent or empty)."""
        if end_msg is None or not self.options.scene_points:
            return None
        sp = end_msg.get("scene_points")
        if isinstance(sp, dict) and "xyz" in sp and len(np.asarray(sp["xyz"])):
            return cloud_from_world(sp["xyz"], sp.get("rgb"), self.options.max_points)
        return None

    def frame_cloud(self) -> CloudData | None:
        return self.frame_points.cloud() if self.options.frame_points else None
