"""Bounded accumulators: the voxel scene cloud and the per-track summaries."""
from __future__ import annotations

import numpy as np

from backend.engine.scene_cloud import VoxelCloud
from backend.engine.tracks import RESERVOIR, TrackBook


def test_voxel_cloud_means_per_voxel():
    cloud = VoxelCloud(voxel_size=1.0, max_voxels=100)
    cloud.add(np.array([[0.1, 0.1, 0.1], [0.9, 0.9, 0.9], [5.5, 0, 0], [np.nan, 0, 0]]),
              np.array([[0, 0, 0], [100, 100, 100], [7, 7, 7], [1, 1, 1]], np.uint8))
    xyz, rgb = cloud.result()
    order = np.argsort(xyz[:, 0])
    assert np.allclose(xyz[order], [[0.5, 0.5, 0.5], [5.5, 0, 0]])
    assert rgb[order].tolist() == [[50, 50, 50], [7, 7, 7]]
    assert xyz.dtype == np.float32 and rgb.dtype == np.uint8


def test_voxel_cloud_stays_under_its_cap():
    rng = np.random.default_rng(0)
    cloud = VoxelCloud(voxel_size=0.001, max_voxels=5000)
    table_bytes = cloud._keys.nbytes + cloud._sum_xyz.nbytes + cloud._sum_rgb.nbytes + cloud._count.nbytes
    total, colour_sum = 0, 0
    for _ in range(20):
        rgb = rng.integers(0, 255, (20_000, 3), dtype=np.uint8)
        cloud.add(rng.uniform(-10, 10, (20_000, 3)), rgb)
        total += 20_000
        colour_sum += int(rgb[:, 0].astype(np.int64).sum())
        assert len(cloud) <= 5000
    xyz, rgb = cloud.result()
    assert 0 < len(xyz) <= 5000 and len(xyz) == len(cloud)
    assert cloud.voxel_size > 0.001  # coarsened to fit
    assert (np.abs(xyz) <= 10 + 1e-6).all()  # centroids of points inside the cube
    # nothing lost: every point is still counted, and the table never grew
    assert int(cloud._count.sum()) == total and abs(float(cloud._sum_rgb[:, 0].sum()) - colour_sum) < 1e-3 * colour_sum
    assert cloud._keys.nbytes + cloud._sum_xyz.nbytes + cloud._sum_rgb.nbytes + cloud._count.nbytes == table_bytes


def test_voxel_cloud_matches_a_dictionary_reference():
    rng = np.random.default_rng(1)
    cloud = VoxelCloud(voxel_size=0.5, max_voxels=10_000)
    pts = rng.normal(0, 2, (3000, 3))
    cols = rng.integers(0, 255, (3000, 3), dtype=np.uint8)
    for chunk in np.array_split(np.arange(3000), 7):
        cloud.add(pts[chunk], cols[chunk])
    expected = {}
    for p, c in zip(pts, cols):
        key = tuple(np.floor(p / 0.5).astype(int))
        s = expected.setdefault(key, [np.zeros(3), np.zeros(3), 0])
        s[0] += p
        s[1] += c
        s[2] += 1
    xyz, rgb = cloud.result()
    assert len(xyz) == len(expected)
    got = {tuple(np.floor(x / 0.5).astype(int)): (x, c) for x, c in zip(xyz.astype(np.float64), rgb)}
    for key, (sp, sc, n) in expected.items():
        x, c = got[key]
        assert np.allclose(x, sp / n, atol=1e-5) and np.array_equal(c, np.clip(np.rint(sc / n), 0, 255))


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
    assert t7._samples.shape == (RESERVOIR, 10)  # capped however long the track
    book.update(5, np.array([11]), betas[:1])
    assert len(book.tracks[11]._samples) < RESERVOIR  # a one-frame track stays small
