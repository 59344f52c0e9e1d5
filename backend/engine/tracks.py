"""Per-track bookkeeping for the `track` messages: frame range and robust betas for the rig.

The model assigns the ids (its Sinkhorn tracker); this book only summarises each id. Memory grows
with the number of people, never with the number of frames: betas are kept in a fixed-size
reservoir sample per track (deterministic), and the rig's betas are the per-coefficient median of
that sample — robust to the occasional bad frame.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

RESERVOIR = 256  # betas samples kept per track


@dataclass
class TrackSummary:
    """One track so far. first/last_frame are source frame indices."""

    id: int
    first_frame: int
    last_frame: int
    n_frames: int = 0
    _samples: np.ndarray = field(default_factory=lambda: np.zeros((4, 10), np.float32))  # grows to RESERVOIR
    _rng: np.random.Generator | None = None

    def add(self, frame: int, betas: np.ndarray) -> None:
        self.last_frame = frame
        if self.n_frames < RESERVOIR:
            if self.n_frames == len(self._samples):  # short tracks stay small
                grown = np.zeros((min(2 * len(self._samples), RESERVOIR), 10), np.float32)
                grown[:self.n_frames] = self._samples
                self._samples = grown
            self._samples[self.n_frames] = betas
        else:  # reservoir sampling: every frame has the same chance to be in the sample
            if self._rng is None:
                self._rng = np.random.default_rng(self.id)
            slot = int(self._rng.integers(0, self.n_frames + 1))
            if slot < RESERVOIR:
                self._samples[slot] = betas
        self.n_frames += 1

    def robust_betas(self) -> np.ndarray:
        """[10] float32: coefficient-wise median of the sampled per-frame betas."""
        used = self._samples[:min(self.n_frames, RESERVOIR)]
        return np.median(used, axis=0).astype(np.float32)


class TrackBook:
    """All tracks of a job, keyed by id."""

    def __init__(self) -> None:
        self.tracks: dict[int, TrackSummary] = {}

    def update(self, frame: int, ids: np.ndarray, betas: np.ndarray) -> None:
        """Record one frame's people: ids [n] int, betas [n, 10] float."""
        for person, track_id in enumerate(np.asarray(ids).tolist()):
            track = self.tracks.get(track_id)
            if track is None:
                track = self.tracks[track_id] = TrackSummary(track_id, frame, frame)
            track.add(frame, betas[person])

    def __len__(self) -> int:
        return len(self.tracks)

    def summaries(self) -> list[TrackSummary]:
        """Tracks ordered by id."""
        return [self.tracks[k] for k in sorted(self.tracks)]
