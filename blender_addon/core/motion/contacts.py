"""Foot contact detection per sole point (left heel, left toe, right heel, right toe) per frame.

A point is in contact when it is near the floor (height <= 4 cm; without a known floor, above the
segment's 5th percentile height) and slow: horizontal speed (centred difference over +-0.067 s of the
trajectory smoothed by a 0.05 s Gaussian) below 0.3 m/s to enter, above 0.5 m/s to leave (hysteresis). Runs shorter than 0.1 s are
dropped and gaps up to 0.07 s filled. Refined-world convention: height = -y, horizontal = (x, z).
"""
from __future__ import annotations

import numpy as np

from . import options as o
from .smooth import gaussian_filter


def horizontal_speed(points: np.ndarray, fps: float, half: int = 1) -> np.ndarray:
    """Horizontal speed [T, K] (m/s) of points [T, K, 3]: centred difference over +-half frames (the
    nearest full window at the ends)."""
    t = len(points)
    half = max(1, min(half, (t - 1) // 2))
    if t < 3:
        return np.zeros(points.shape[:2])
    xz = points[..., [0, 2]]
    v = np.empty(points.shape[:2])
    v[half:t - half] = np.linalg.norm(xz[2 * half:] - xz[:t - 2 * half], axis=-1) * (fps / (2 * half))
    v[:half], v[t - half:] = v[half], v[t - half - 1]
    return v


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) pairs (end exclusive) of the True runs of a 1-D bool array."""
    m = np.concatenate([[False], np.asarray(mask, bool), [False]])
    edges = np.flatnonzero(m[1:] != m[:-1])
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


def _clean_runs(mask: np.ndarray, min_run: int, max_gap: int) -> np.ndarray:
    out = mask.copy()
    for s, e in runs(~out):  # fill short gaps between contacts
        if s > 0 and e < len(out) and e - s <= max_gap:
            out[s:e] = True
    for s, e in runs(out):
        if e - s < min_run:
            out[s:e] = False
    return out


def detect_contacts(points: np.ndarray, fps: float, floor_known: bool = True) -> np.ndarray:
    """Contacts [T, K] bool for sole points [T, K, 3] in the refined world (metres)."""
    t, k = points.shape[:2]
    height = -points[..., 1]
    if not floor_known and t:
        height = height - np.percentile(height, 5, axis=0)
    # speed of a lightly smoothed trajectory over +-2 frames at 30 fps: per-frame noise of a few cm would
    # read as walking speed, while heavier smoothing would blur the stance edges
    speed = horizontal_speed(gaussian_filter(points, o.CONTACT_SMOOTH_S * fps), fps,
                             int(round(o.CONTACT_SPEED_HALF_S * fps)))
    low = height <= o.CONTACT_HEIGHT_M
    out = np.zeros((t, k), bool)
    state = np.zeros(k, bool)
    for i in range(t):  # hysteresis on the speed
        state = np.where(state, speed[i] <= o.CONTACT_LEAVE_MS, speed[i] <= o.CONTACT_ENTER_MS) & low[i]
        out[i] = state
    min_run = max(1, int(round(o.CONTACT_MIN_RUN_S * fps)))
    max_gap = max(0, int(round(o.CONTACT_FILL_GAP_S * fps)))
    for j in range(k):
        out[:, j] = _clean_runs(out[:, j], min_run, max_gap)
    return out
