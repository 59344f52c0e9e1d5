"""How many frames a job over a video yields: the one rule for the engine's reader and the add-on's progress."""
from __future__ import annotations


def expected_frames(frame_count: int | None, start: int = 0, end: int | None = None, stride: int = 1) -> int | None:
    """Frames a job over source frames [start, end) taking every `stride`-th yields (None if unknown).

    `end` None or <= 0 means "to the end of the video"; a negative or missing `frame_count` gives None.
    """
    if frame_count is None or frame_count <= 0:
        return None
    stop = frame_count if end is None or end <= 0 else min(int(end), frame_count)
    start = max(0, int(start))
    if stop <= start:
        return 0
    stride = max(1, int(stride))
    return (stop - start + stride - 1) // stride
