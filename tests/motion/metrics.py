"""Metrics of the clean-up tests (definitions of the motion note): jitter, MPJPE, foot skating, F1,
penetration, all on positions in metres with fps = the clip's rate."""
from __future__ import annotations

import numpy as np


def jitter(x: np.ndarray, fps: float) -> float:
    """Mean third-difference magnitude (m/s^3) over frames and joints of x [T, J, 3]."""
    d3 = x[3:] - 3 * x[2:-1] + 3 * x[1:-2] - x[:-3]
    return float(np.linalg.norm(d3, axis=-1).mean() * fps ** 3)


def mpjpe_per_frame(x: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Mean joint error [T] (m) of x [T, J, 3] against truth [T, J, 3]."""
    return np.linalg.norm(x - truth, axis=-1).mean(-1)


def skating(points: np.ndarray, truth_points: np.ndarray, contacts: np.ndarray, threshold: float = 0.01) -> float:
    """Mean per-frame 3D displacement (m/frame) of sole points [T, K, 3] over true contacts: frame pairs where
    the known contact [T, K] holds in both frames and the truth points move < 1 cm/frame (WHAM/GVHMR foot
    sliding with ground-truth contacts)."""
    return float(skating_steps(points, truth_points, contacts, threshold)[1].mean())


def skating_steps(points: np.ndarray, truth_points: np.ndarray, contacts: np.ndarray,
                  threshold: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """(frame pair index [N] (t for the step t -> t+1), step [N] in m) of every true-contact sample of
    `skating`: pooled over people and clips, their mean is the note's A3 figure."""
    gt_step = np.linalg.norm(np.diff(truth_points, axis=0), axis=-1)
    step = np.linalg.norm(np.diff(points, axis=0), axis=-1)
    mask = (gt_step < threshold) & contacts[1:] & contacts[:-1]
    return np.nonzero(mask)[0], step[mask]


def f1(pred: np.ndarray, truth: np.ndarray) -> float:
    tp = np.sum(pred & truth)
    return float(2 * tp / max(pred.sum() + truth.sum(), 1))


def penetration(points: np.ndarray) -> float:
    """Deepest sole point below the floor y = 0 (m; y down), 0 if none."""
    return float(max(0.0, points[..., 1].max()))


def lock_pop(locked: np.ndarray, free: np.ndarray, noise: np.ndarray, joints: list[int]) -> tuple[float, float]:
    """(pop, bound) in metres: the largest frame-to-frame step of what locking changed on `joints` (locked
    minus free joint positions [T, J, 3]), and the RMS frame-to-frame step of the input noise [T, J, 3] at
    those joints. No pop larger than the noise means pop <= bound."""
    pop = np.linalg.norm(np.diff((locked - free)[:, joints], axis=0), axis=-1).max()
    step = np.linalg.norm(np.diff(noise[:, joints], axis=0), axis=-1)
    return float(pop), float(np.sqrt(np.mean(step ** 2)))
