"""Bounded accumulators: the voxel scene cloud and the per-track summaries."""
from __future__ import annotations

import numpy as np

from backend.engine.scene_cloud import VoxelCloud
from backend.engine.tracks import RESERVOIR, TrackBook


def test_voxel_cloud_means_per_voxel():
    cloud = VoxelCloud(voxel_size=1.0, max_voxels=100, pending_points=3)
    cloud.add(np.array([[0.1, 0.1, 0.1], [0.9, 0.9, 0.9], [5.5, 0, 0], [np.nan, 0, 0]]),
              np.array([[0, 0, 0], [100, 100, 100], [7, 7, 7], [1, 1, 1]], np.uint8))
    xyz, rgb = cloud.result()
    order = np.argsort(xyz[:, 0])
    assert np.allclose(xyz[order], [[0.5, 0.5, 0.5], [5.5, 0, 0]])
    assert rgb[order].tolist() == [[50, 50, 50], [7, 7, 7]]
    assert xyz.dtype == np.float32 and rgb.dtype == np.uint8


def test_voxel_cloud_stays_under_its_cap():
    rng = np.random.default_rng(0)
    cloud = VoxelCloud(voxel_size=0.001, max_voxels=5000, pending_points=10_000)
    for _ in range(20):
        cloud.add(rng.uniform(-10, 10, (20_000, 3)), rng.integers(0, 255, (20_000, 3), dtype=np.uint8))
    xyz, _ = cloud.result()
    assert 0 < len(xyz) <= 5000
    assert cloud.voxel_size > 0.001  # coarsened to fit


def test_track_book_bounded_and_robust():
    book = TrackBook()
    betas = np.zeros((2, 10), np.float32)
    for frame in range(1000):
        betas[0] = 1.0 if frame % 50 else 100.0  # rare outliers
        betas[1] = 2.0
        book.update(frame, np.array([7, 3]), betas)
    t3, t7 = book.summaries()
    assert (t3.id, t3.first_frame, t3.last_frame, t3.n_frames) == (3, 0, 999, 1000)
    assert np.allclose(t7.robust_betas(), 1.0) and np.allclose(t3.robust_betas(), 2.0)
    assert t7._samples.shape == (RESERVOIR, 10)
