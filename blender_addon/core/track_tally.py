"""How a job's people are counted in summaries: track ids, and how many of them last.

A track id is not a person: a crowd video yields many ids seen on one or two frames (a detection
that flickers, a person re-identified after an occlusion). Summaries (`human3r infer`, the remote
client, the server's log) therefore say "N tracks, M of at least LONG_TRACK_FRAMES frames", counted
from the job's `track` messages (one per finished track, with its `n_frames`).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

LONG_TRACK_FRAMES = 10  # processed frames; a track at least this long is counted as lasting


class TrackTally:
    """Counts the `track` messages of one job: all of them, and those of >= `long_frames` frames."""

    def __init__(self, long_frames: int = LONG_TRACK_FRAMES):
        self.long_frames = long_frames
        self.total = 0
        self.long = 0

    def add(self, msg: Mapping[str, Any]) -> None:
        """Count `msg` when it is a `track` message; any other message is ignored."""
        if msg.get("type") != "track":
            return
        self.total += 1
        if int(msg.get("n_frames", 0)) >= self.long_frames:
            self.long += 1

    def describe(self) -> str:
        """E.g. '1686 tracks (12 of at least 10 frames)'."""
        noun = "track" if self.total == 1 else "tracks"
        return f"{self.total} {noun} ({self.long} of at least {self.long_frames} frames)"
