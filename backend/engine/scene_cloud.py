"""Bounded accumulation of the scene point cloud: a fixed-size voxel hash table of running sums.

Every frame's (already filtered) world points are binned into cubic voxels; each voxel keeps the
sum of its points' positions and colours and a count, so the result is one centroid point with the
mean colour per voxel.

Memory is allocated **once**, at construction: an open-addressing hash table with
2 x `max_voxels` slots plus a re-binning scratch (36 MB for the default cap of 250,000 voxels),
touched up front so the process's resident memory does not creep up as the cloud fills.
Insertion is vectorised numpy (linear probing, resolved batch-wise); per-frame temporaries are
proportional to the frame's points only.
When the table would exceed `max_voxels`, the voxel edge doubles and the voxels are re-binned by
their centroids in place (coarser, never larger).
"""
from __future__ import annotations

import numpy as np

_BITS = 21  # per axis: voxel coordinates in [-2^20, 2^20)
_OFFSET = 1 << (_BITS - 1)
_EMPTY = -1
_REBIN_BLOCK = 65536
_HASH_MUL = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing of the packed key


class VoxelCloud:
    """Voxel-downsampled running cloud with constant memory.

    Args:
        voxel_size: initial voxel edge, world units (metres as predicted).
        max_voxels: cap on stored voxels; the edge doubles as often as needed to stay below it.
    """

    def __init__(self, voxel_size: float, max_voxels: int):
        if voxel_size <= 0 or max_voxels < 1:
            raise ValueError("voxel_size must be > 0 and max_voxels >= 1")
        self.voxel_size = float(voxel_size)
        self.max_voxels = int(max_voxels)
        slots = 1 << max(4, int(2 * self.max_voxels - 1).bit_length())  # power of two >= 2 x cap
        self._shift = np.uint64(64 - (slots.bit_length() - 1))
        # np.full touches every page now: resident memory is constant from the first frame
        self._keys = np.full(slots, _EMPTY, np.int64)
        self._sum_xyz = np.full((slots, 3), 0.0, np.float64)
        self._sum_rgb = np.full((slots, 3), 0.0, np.float32)  # exact integers up to 2^24
        self._count = np.full(slots, 0, np.uint32)
        self._used = 0
        # scratch for re-binning (also allocated now, so coarsening adds no resident memory)
        self._scratch_xyz = np.full((self.max_voxels, 3), 0.0, np.float64)
        self._scratch_rgb = np.full((self.max_voxels, 3), 0.0, np.float32)
        self._scratch_count = np.full(self.max_voxels, 0, np.uint32)

    def __len__(self) -> int:
        return self._used

    def _key(self, xyz: np.ndarray) -> np.ndarray:
        cell = np.floor(xyz / self.voxel_size)
        cell = np.clip(cell, -_OFFSET, _OFFSET - 1).astype(np.int64) + _OFFSET
        return (cell[:, 0] << (2 * _BITS)) | (cell[:, 1] << _BITS) | cell[:, 2]

    def _home(self, keys: np.ndarray) -> np.ndarray:
        return ((keys.astype(np.uint64) * _HASH_MUL) >> self._shift).astype(np.int64)

    def _count_new(self, keys: np.ndarray) -> int:
        """How many of the (unique) keys are not in the table yet (probing without inserting)."""
        mask = len(self._keys) - 1
        slot = self._home(keys)
        todo = np.arange(len(keys))
        new = 0
        while len(todo):
            present = self._keys[slot[todo]]
            found = present == keys[todo]
            empty = present == _EMPTY
            new += int(np.count_nonzero(empty))
            todo = todo[~(found | empty)]
            slot[todo] = (slot[todo] + 1) & mask
        return new

    def _slots_of(self, keys: np.ndarray) -> np.ndarray:
        """Table slot of each (unique, non-empty) key, inserting the missing ones (linear probing)."""
        mask = len(self._keys) - 1
        slot = self._home(keys)
        result = np.empty(len(keys), np.int64)
        todo = np.arange(len(keys))
        while len(todo):
            s = slot[todo]
            k = keys[todo]
            present = self._keys[s]
            empty = present == _EMPTY
            # claim empty slots; when several keys race for one slot, the last write wins this round
            self._keys[s[empty]] = k[empty]
            won = self._keys[s] == k
            result[todo[won]] = s[won]
            self._used += int(np.count_nonzero(won & empty))
            todo = todo[~won]
            slot[todo] = (slot[todo] + 1) & mask
        return result

    def _accumulate(self, keys: np.ndarray, sum_xyz: np.ndarray, sum_rgb: np.ndarray, count: np.ndarray) -> None:
        """Add per-key sums (keys unique) into the table."""
        slots = self._slots_of(keys)
        self._sum_xyz[slots] += sum_xyz
        self._sum_rgb[slots] += sum_rgb.astype(np.float32)
        self._count[slots] += count.astype(np.uint32)

    def add(self, xyz: np.ndarray, rgb: np.ndarray) -> None:
        """Add points: xyz [m, 3] float (world), rgb [m, 3] uint8. Non-finite points are ignored."""
        xyz = np.asarray(xyz, np.float64).reshape(-1, 3)
        rgb = np.asarray(rgb, np.uint8).reshape(-1, 3)
        finite = np.isfinite(xyz).all(1)
        if not finite.all():
            xyz, rgb = xyz[finite], rgb[finite]
        if not len(xyz):
            return
        while True:  # coarsen (table and batch) until the new voxels fit under the cap
            keys, inverse = np.unique(self._key(xyz), return_inverse=True)
            if self._used + self._count_new(keys) <= self.max_voxels:
                break
            self._coarsen()
        n = len(keys)
        sum_xyz = np.stack([np.bincount(inverse, xyz[:, c], n) for c in range(3)], 1)
        sum_rgb = np.stack([np.bincount(inverse, rgb[:, c], n) for c in range(3)], 1)
        self._accumulate(keys, sum_xyz, sum_rgb, np.bincount(inverse, minlength=n))

    def _coarsen(self) -> None:
        """Double the voxel edge and re-bin every stored voxel by its centroid (in blocks, so the
        temporaries stay small)."""
        self.voxel_size *= 2.0
        if not self._used:
            return
        used = np.flatnonzero(self._keys != _EMPTY)
        m = len(used)
        np.take(self._sum_xyz, used, axis=0, out=self._scratch_xyz[:m])
        np.take(self._sum_rgb, used, axis=0, out=self._scratch_rgb[:m])
        np.take(self._count, used, out=self._scratch_count[:m])
        del used
        self._keys.fill(_EMPTY)
        self._sum_xyz.fill(0.0)
        self._sum_rgb.fill(0.0)
        self._count.fill(0)
        self._used = 0
        for a in range(0, m, _REBIN_BLOCK):
            b = min(a + _REBIN_BLOCK, m)
            sum_xyz, sum_rgb, count = self._scratch_xyz[a:b], self._scratch_rgb[a:b], self._scratch_count[a:b]
            keys, inverse = np.unique(self._key(sum_xyz / count[:, None]), return_inverse=True)
            n = len(keys)
            self._accumulate(keys, np.stack([np.bincount(inverse, sum_xyz[:, c], n) for c in range(3)], 1),
                             np.stack([np.bincount(inverse, sum_rgb[:, c], n) for c in range(3)], 1),
                             np.bincount(inverse, count, n))

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """(xyz [k, 3] float32 voxel centroids, rgb [k, 3] uint8 mean colours), k <= max_voxels."""
        used = self._keys != _EMPTY
        count = self._count[used][:, None].astype(np.float64)
        xyz = (self._sum_xyz[used] / count).astype(np.float32)
        rgb = np.clip(np.rint(self._sum_rgb[used] / count), 0, 255).astype(np.uint8)
        return xyz, rgb
