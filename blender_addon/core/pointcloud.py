"""Point clouds for Blender: W -> Blender coordinates, colours, per-frame accumulation, point budgets.

A cloud is planned as flat float32 arrays ready for `foreach_set`: `co` [3n] (Blender world, metres),
`color` [4n] (scene-linear RGBA 0..1, converted from the video's sRGB bytes, for a FLOAT_COLOR
attribute's `color`), and optionally `frame` [n] int32 (the Blender frame a per-frame point belongs to).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .coords import world_points_to_blender


def _srgb_to_linear_table() -> np.ndarray:
    """[256] float32: sRGB byte -> scene-linear value (IEC 61966-2-1 transfer function)."""
    c = np.arange(256, dtype=np.float64) / 255.0
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4).astype(np.float32)


SRGB_TO_LINEAR = _srgb_to_linear_table()


@dataclass
class CloudData:
    """Flat arrays of one point-cloud object (see module docstring)."""

    co: np.ndarray
    color: np.ndarray
    frame: np.ndarray | None = None

    @property
    def count(self) -> int:
        return self.co.size // 3


def cloud_from_world(xyz: np.ndarray, rgb: np.ndarray | None, max_points: int = 0,
                     frame: np.ndarray | None = None) -> CloudData:
    """xyz [n, 3] in W (metres), rgb [n, 3] uint8 sRGB (or None: grey) -> `CloudData` in Blender frame.

    `max_points` > 0 keeps an evenly spaced subset of at most that many points (deterministic).
    `frame` [n] int: per-point Blender frame (kept in the same subset).
    """
    xyz = np.asarray(xyz).reshape(-1, 3)
    n = xyz.shape[0]
    keep = slice(None)
    finite = np.isfinite(xyz).all(axis=1)
    if not finite.all():  # drop NaN/inf points
        keep = np.flatnonzero(finite)
        n = len(keep)
    if max_points and n > max_points:
        pick = np.linspace(0, n - 1, max_points).round().astype(np.int64)
        keep = pick if isinstance(keep, slice) else keep[pick]
    co = world_points_to_blender(xyz[keep]).reshape(-1)
    m = co.size // 3
    color = np.empty((m, 4), dtype=np.float32)
    if rgb is None:
        color[:, :3] = SRGB_TO_LINEAR[200]
    else:
        color[:, :3] = SRGB_TO_LINEAR[np.asarray(rgb, dtype=np.uint8).reshape(-1, 3)[keep]]
    color[:, 3] = 1.0
    frames = None if frame is None else np.asarray(frame, dtype=np.int32).reshape(-1)[keep].copy()
    return CloudData(co=co, color=color.reshape(-1), frame=frames)


@dataclass
class FrameCloudAccumulator:
    """Collects per-frame points (W frame) as they stream in; `cloud()` builds one CloudData with frames.

    Memory is the points themselves; nothing is converted until `cloud()` is called.
    """

    max_points: int = 0
    _xyz: list = field(default_factory=list)
    _rgb: list = field(default_factory=list)
    _frame: list = field(default_factory=list)
    count: int = 0

    def add(self, blender_frame: int, points: dict | None) -> None:
        """Add one frame's `points` map (xyz [m, 3], rgb [m, 3] u1) shown at `blender_frame`."""
        if not points or "xyz" not in points:
            return
        xyz = np.asarray(points["xyz"]).reshape(-1, 3)
        if not len(xyz):
            return
        rgb = points.get("rgb")
        self._xyz.append(np.array(xyz, dtype=np.float32))
        grey = np.full((len(xyz), 3), 200, np.uint8)
        self._rgb.append(grey if rgb is None else np.array(rgb, np.uint8).reshape(-1, 3))
        self._frame.append(np.full(len(xyz), blender_frame, dtype=np.int32))
        self.count += len(xyz)

    def cloud(self) -> CloudData | None:
        """All frames' points as one cloud (None when empty); decimated to `max_points` if set."""
        if not self._xyz:
            return None
        return cloud_from_world(np.concatenate(self._xyz), np.concatenate(self._rgb), self.max_points,
                                np.concatenate(self._frame))
