"""Keyframe arrays in the layout Blender's bulk API consumes.

One F-curve = one (data_path, index) = one float32 array [f0, v0, f1, v1, ...] (frame, value pairs,
frames increasing), exactly what `fcurve.keyframe_points.foreach_set('co', array)` takes after
`keyframe_points.add(len(array) // 2)`. Interpolation is one enum name per curve.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LINEAR = "LINEAR"
CONSTANT = "CONSTANT"


@dataclass
class FCurveKeys:
    """Keys for one F-curve: `co` float32 [2n] interleaved (frame, value); `group` is the UI channel group."""

    data_path: str
    index: int
    co: np.ndarray
    interpolation: str = LINEAR
    group: str | None = None

    @property
    def count(self) -> int:
        return self.co.size // 2


def interleave(frames: np.ndarray, values: np.ndarray) -> np.ndarray:
    """frames [n] and values [n, c] (or [n]) -> float32 [c, 2n]: one interleaved row per channel."""
    frames = np.asarray(frames, dtype=np.float32)
    values = np.asarray(values, dtype=np.float32)
    if values.ndim == 1:
        values = values[:, None]
    out = np.empty((values.shape[1], 2 * len(frames)), dtype=np.float32)
    out[:, 0::2] = frames
    out[:, 1::2] = values.T
    return out


def channel_keys(data_path: str, frames: np.ndarray, values: np.ndarray, interpolation: str = LINEAR,
                 group: str | None = None, first_index: int = 0) -> list[FCurveKeys]:
    """One `FCurveKeys` per column of values [n, c] (array index first_index + column)."""
    rows = interleave(frames, values)
    return [FCurveKeys(data_path, first_index + i, rows[i], interpolation, group) for i in range(rows.shape[0])]


def bone_path(bone: str, prop: str) -> str:
    """RNA path of a pose-bone property, e.g. pose.bones["left_knee"].rotation_quaternion."""
    escaped = bone.replace("\\", "\\\\").replace('"', '\\"')
    return f'pose.bones["{escaped}"].{prop}'


def changes_only(frames: np.ndarray, values: np.ndarray,
                 previous: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Drop keys that repeat the previous value (for CONSTANT curves such as visibility).

    frames [n], values [n]; `previous` is the last value already keyed (None: keep the first key).
    """
    values = np.asarray(values)
    keep = np.ones(len(values), dtype=bool)
    keep[1:] = values[1:] != values[:-1]
    if previous is not None and len(values):
        keep[0] = values[0] != previous
    return np.asarray(frames)[keep], values[keep]
