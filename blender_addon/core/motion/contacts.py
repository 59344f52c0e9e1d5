"""Foot contact detection per sole point (left heel, left toe, right heel, right toe) per frame.

A point is in contact when it is near the floor (height <= 4 cm; without a known floor, above the
segment's 5th percentile height) and slow: speed (3D; the smaller of the forward and backward
differences over 0.067 s of the trajectory smoothed by a 0.05 s Gaussian) below 0.3 m/s somewhere in the
contact; the contact reaches back to where the speed first went below 0.5 m/s and forward until it first
exceeds 0.55 m/s (hysteresis; the later end measured against the true lift-offs of the synthetic
motion: a symmetric 0.5 m/s ended 24 % of the walking contacts 1-3 frames early, this ends 15 %). Runs
shorter than 0.1 s are dropped and gaps up to 0.07 s filled, also at the clip's ends (there up to 0.1 s
where the foot is low all along). Refined-world
convention: height = -y, horizontal = (x, z).
"""
from __future__ import annotations

import numpy as np

from . import options as o
from .smooth import gaussian_filter


def point_speed(points: np.ndarray, fps: float, span: int = 1) -> np.ndarray:
    """Speed [T, K] (m/s, 3D: a foot lifting straight up is moving too) of points [T, K, 3]: the smaller of
    the forward and the backward difference over `span` frames, so a foot that stops (or starts) moving reads as still from its first
    (to its last) still frame instead of being blurred across the edge by a centred difference."""
    t = len(points)
    span = max(1, min(span, t - 1))
    out = np.full(points.shape[:2], np.inf)
    if t < 2:
        return np.zeros(points.shape[:2])
    step = np.linalg.norm(points[span:] - points[:-span], axis=-1) * (fps / span)  # [T - span, K]
    out[:-span] = step  # forward
    out[span:] = np.minimum(out[span:], step)  # backward
    return out


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) pairs (end exclusive) of the True runs of a 1-D bool array."""
    m = np.concatenate([[False], np.asarray(mask, bool), [False]])
    edges = np.flatnonzero(m[1:] != m[:-1])
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


def _clean_runs(mask: np.ndarray, min_run: int, max_gap: int, low: np.ndarray | None = None,
                edge_gap: int = 0) -> np.ndarray:
    """mask [T] with gaps up to max_gap filled and runs shorter than min_run dropped (frames). A gap between a
    contact and the clip's start or end is filled up to max_gap frames, or up to edge_gap where low [T] holds
    on all of it."""
    out = mask.copy()
    # fill short gaps between contacts, and between a contact and the clip's ends: there the filters see one
    # side only, so a planted foot's first (last) frames read as moving (measured up to 0.8 m/s at the
    # clip's first frame); a touch-down or a lift-off needs the foot up in the air, which a low foot is not
    for s, e in runs(~out):
        if s == 0 and e == len(out):  # no contact at all: nothing to fill towards
            continue
        at_edge = s == 0 or e == len(out)
        if e - s <= max_gap or (at_edge and e - s <= edge_gap and low is not None and low[s:e].all()):
            out[s:e] = True
    for s, e in runs(out):
        if e - s < min_run and 0 < s and e < len(out):  # a run cut by the clip's ends is not short
            out[s:e] = False
    return out


def dilate(mask: np.ndarray, frames: int, before: np.ndarray | None = None,
           after: np.ndarray | None = None) -> np.ndarray:
    """mask [T, K] with every True run grown by `frames` at both ends (along axis 0): before its start only
    into frames where `before` [T, K] holds, after its end only where `after` holds (None: everywhere)."""
    early = np.zeros_like(mask)
    late = np.zeros_like(mask)
    for k in range(1, frames + 1):
        early[:-k] |= mask[k:]
        late[k:] |= mask[:-k]
    if before is not None:
        early &= before
    if after is not None:
        late &= after
    return mask | early | late


def centred_speed(points: np.ndarray, fps: float) -> np.ndarray:
    """Speed [T, K] (m/s) of sole points [T, K, 3] by centred differences (one-sided at the ends): unlike
    `point_speed` a foot one frame before it lands reads as moving."""
    if len(points) < 2:
        return np.zeros(points.shape[:2])
    return np.linalg.norm(np.gradient(points, axis=0), axis=-1) * fps


def contact_speed(points: np.ndarray, fps: float) -> np.ndarray:
    """Speed [T, K] (m/s) of sole points [T, K, 3] as contact detection reads it: a lightly smoothed
    trajectory over 2 frames at 30 fps (per-frame noise of a few cm would read as walking speed, while
    heavier smoothing would blur the stance edges)."""
    smooth = gaussian_filter(points, o.CONTACT_SMOOTH_S * fps)
    return point_speed(smooth, fps, int(round(o.CONTACT_SPEED_SPAN_S * fps)))


def _hysteresis(stay: np.ndarray, enter: np.ndarray) -> np.ndarray:
    """[T, K] bool: every stretch of `stay` (along axis 0) that holds at least one `enter` frame."""
    out = np.zeros(stay.shape, bool)
    for j in range(stay.shape[1]):
        label = np.cumsum(np.concatenate([[stay[0, j]], stay[1:, j] & ~stay[:-1, j]])) * stay[:, j]
        entered = np.bincount(label, weights=enter[:, j], minlength=label.max() + 1) > 0
        entered[0] = False
        out[:, j] = entered[label]
    return out


def detect_contacts(points: np.ndarray, fps: float, floor_known: bool = True) -> np.ndarray:
    """Contacts [T, K] bool for sole points [T, K, 3] in the refined world (metres)."""
    t, k = points.shape[:2]
    height = -points[..., 1]
    if not floor_known and t:
        height = height - np.percentile(height, 5, axis=0)
    speed = contact_speed(points, fps)
    low = height <= o.CONTACT_HEIGHT_M
    enter = (speed <= o.CONTACT_ENTER_MS) & low
    # a contact starts where the foot is below the leave speed on its way to the enter speed, and ends where it
    # is above the (higher) end speed: the smoothed foot of a planted frame next to a lift-off already reads
    # as moving (its window sees the swing), so a symmetric threshold ended contacts 1-2 frames early
    started = _hysteresis((speed <= o.CONTACT_LEAVE_MS) & low, enter)
    lasting = _hysteresis((speed <= o.CONTACT_END_MS) & low, enter)
    out = np.zeros((t, k), bool)
    for j in range(k):
        for s, e in runs(lasting[:, j]):
            first = np.flatnonzero(started[s:e, j])
            if len(first):
                out[s + first[0]:e, j] = True
    min_run = max(1, int(round(o.CONTACT_MIN_RUN_S * fps)))
    max_gap = max(0, int(round(o.CONTACT_FILL_GAP_S * fps)))
    edge_gap = max(0, int(round(o.CONTACT_EDGE_FILL_S * fps)))
    for j in range(k):
        out[:, j] = _clean_runs(out[:, j], min_run, max_gap, low[:, j], edge_gap)
    return out
