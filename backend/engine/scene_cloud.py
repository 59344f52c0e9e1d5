"""Bounded accumulation of the scene point cloud: a voxel grid of running means.

Every frame's (already filtered) world points are binned into cubic voxels; each voxel keeps the
sum of its points' positions and colours and a count, so the result is one centroid point with the
mean colour per voxel. Memory is bounded by `max_voxels` plus a small pending buffer: when the grid
would exceed the cap, the voxel edge doubles and the existing voxels are re-binned by their
centroids (coarser, never unbounded). Pure numpy; merges are batched so the per-frame cost is a
copy into the buffer.
"""
from __future__ import annotations

import numpy as np

_BITS = 21  # per axis: voxel coordinates in [-2^20, 2^20)
_OFFSET = 1 << (_BITS - 1)
_MASK = (1 << _BITS) - 1


class VoxelCloud:
    """Voxel-downsampled running cloud.

    Args:
        voxel_size: initial voxel edge, world units (metres as predicted).
        max_voxels: cap on stored voxels; the edge doubles as often as needed to stay below it.
        pending_points: points buffered between merges (bounds the extra memory).
    """

    def __init__(self, voxel_size: float, max_voxels: int, pending_points: int = 262_144):
        if voxel_size <= 0 or max_voxels < 1:
            raise ValueError("voxel_size must be > 0 and max_voxels >= 1")
        self.voxel_size = float(voxel_size)
        self.max_voxels = int(max_voxels)
        self._keys = np.zeros(0, np.int64)
        self._sum_xyz = np.zeros((0, 3), np.float64)
        self._sum_rgb = np.zeros((0, 3), np.float64)
        self._count = np.zeros(0, np.int64)
        self._pending_cap = int(pending_points)
        self._pend_xyz = np.empty((self._pending_cap, 3), np.float32)
        self._pend_rgb = np.empty((self._pending_cap, 3), np.uint8)
        self._pend_n = 0

    def add(self, xyz: np.ndarray, rgb: np.ndarray) -> None:
        """Add points: xyz [m, 3] float (world), rgb [m, 3] uint8. Non-finite points are ignored."""
        xyz = np.asarray(xyz, np.float32).reshape(-1, 3)
        rgb = np.asarray(rgb, np.uint8).reshape(-1, 3)
        finite = np.isfinite(xyz).all(1)
        if not finite.all():
            xyz, rgb = xyz[finite], rgb[finite]
        pos = 0
        while pos < len(xyz):
            take = min(len(xyz) - pos, self._pending_cap - self._pend_n)
            self._pend_xyz[self._pend_n:self._pend_n + take] = xyz[pos:pos + take]
            self._pend_rgb[self._pend_n:self._pend_n + take] = rgb[pos:pos + take]
            self._pend_n += take
            pos += take
            if self._pend_n == self._pending_cap:
                self._flush()

    def _key(self, xyz: np.ndarray) -> np.ndarray:
        cell = np.floor(xyz / self.voxel_size)
        cell = np.clip(cell, -_OFFSET, _OFFSET - 1).astype(np.int64) + _OFFSET
        return (cell[:, 0] << (2 * _BITS)) | (cell[:, 1] << _BITS) | cell[:, 2]

    def _merge(self, keys, sum_xyz, sum_rgb, count) -> None:
        uniq, inverse = np.unique(keys, return_inverse=True)
        n = len(uniq)
        new_xyz = np.zeros((n, 3))
        new_rgb = np.zeros((n, 3))
        for c in range(3):
            new_xyz[:, c] = np.bincount(inverse, sum_xyz[:, c], n)
            new_rgb[:, c] = np.bincount(inverse, sum_rgb[:, c], n)
        self._keys, self._sum_xyz, self._sum_rgb = uniq, new_xyz, new_rgb
        self._count = np.bincount(inverse, count, n).astype(np.int64)

    def _flush(self) -> None:
        if self._pend_n == 0:
            return
        xyz = self._pend_xyz[:self._pend_n].astype(np.float64)
        rgb = self._pend_rgb[:self._pend_n].astype(np.float64)
        self._pend_n = 0
        self._merge(np.concatenate([self._keys, self._key(xyz)]), np.concatenate([self._sum_xyz, xyz]),
                    np.concatenate([self._sum_rgb, rgb]),
                    np.concatenate([self._count, np.ones(len(xyz), np.int64)]))
        while len(self._keys) > self.max_voxels:
            self.voxel_size *= 2.0
            centroids = self._sum_xyz / self._count[:, None]
            self._merge(self._key(centroids), self._sum_xyz, self._sum_rgb, self._count)

    def __len__(self) -> int:
        self._flush()
        return len(self._keys)

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """(xyz [k, 3] float32 voxel centroids, rgb [k, 3] uint8 mean colours), k <= max_voxels."""
        self._flush()
        if not len(self._keys):
            return np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint8)
        count = self._count[:, None]
        xyz = (self._sum_xyz / count).astype(np.float32)
        rgb = np.clip(np.rint(self._sum_rgb / count), 0, 255).astype(np.uint8)
        return xyz, rgb
