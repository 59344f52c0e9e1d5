"""Foot contacts of the source motion, and the root correction that keeps them planted on the target.

A foot point (ankle or toe joint) is in contact on frames where it is within `height` of the lowest
height that point reaches in the clip and moves horizontally slower than `speed` (m/s, the
slower of its steps into and out of the frame); runs shorter than `min_frames` are dropped. Units are the source's world metres.

On the target, each contact run gets an anchor: the run's mean horizontal position of that point
(before correction) and, as height, the target's rest height of the point plus the source's height
change scaled by the leg ratio. The root is shifted per frame by the mean of (anchor − point) over the
points in contact; frames without contact interpolate the shift linearly between their neighbours,
so the body never jumps.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class ContactOptions:
    height: float = 0.05  # metres above the point's lowest height in the clip
    speed: float = 0.25  # metres per second, horizontal
    min_frames: int = 3


def detect_contacts(points: np.ndarray, fps: float, options: ContactOptions | None = None) -> np.ndarray:
    """points [T, P, 3] world positions (z up) -> contact mask [T, P] bool."""
    o = options or ContactOptions()
    pts = np.asarray(points, dtype=np.float64)
    t = len(pts)
    if t < 2:
        return np.zeros(pts.shape[:2], dtype=bool)
    step = np.linalg.norm(np.diff(pts[..., :2], axis=0), axis=-1) * float(fps)  # [T-1, P]
    # the slower of the steps into and out of each frame, so a run's first and last frames count
    speed = np.minimum(np.vstack([step[:1], step]), np.vstack([step, step[-1:]]))
    low = pts[..., 2] <= pts[..., 2].min(axis=0) + o.height
    mask = low & (speed <= o.speed)
    for p in range(mask.shape[1]):
        for a, b in runs(mask[:, p]):
            if b - a < o.min_frames:
                mask[a:b, p] = False
    return mask


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) index pairs of the True runs of a 1-D bool mask."""
    m = np.concatenate([[False], np.asarray(mask, dtype=bool), [False]])
    edges = np.flatnonzero(m[1:] != m[:-1])
    return list(zip(edges[0::2].tolist(), edges[1::2].tolist()))


def root_offsets(points: np.ndarray, expected_height: np.ndarray, contacts: np.ndarray) -> np.ndarray:
    """World root shift [T, 3] that pins target foot points in contact.

    points [T, P, 3] target foot points before correction; expected_height [T, P] the height each point
    should have (used on contact frames); contacts [T, P] bool.
    """
    t, p = contacts.shape
    pull = np.zeros((t, p, 3))
    for k in range(p):
        for a, b in runs(contacts[:, k]):
            anchor = points[a:b, k, :2].mean(axis=0)
            pull[a:b, k, :2] = anchor - points[a:b, k, :2]
            pull[a:b, k, 2] = expected_height[a:b, k] - points[a:b, k, 2]
    count = contacts.sum(axis=1)
    have = count > 0
    offset = np.zeros((t, 3))
    if not have.any():
        return offset
    offset[have] = pull[have].sum(axis=1) / count[have, None]
    frames = np.arange(t)
    for c in range(3):
        offset[:, c] = np.interp(frames, frames[have], offset[have, c])
    return offset
