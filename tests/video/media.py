"""Synthetic media for the video tests: frames with markers, and PyAV encoding with rotation / VFR."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Sequence

import av
import numpy as np

av.logging.set_level(None)  # the corrupt-file tests make FFmpeg complain loudly

MARKER = np.array([255, 0, 0], np.uint8)  # red block in the stored top-left corner


def marker_frame(width: int, height: int, value: int = 40, block: int = 16) -> np.ndarray:
    """uint8 [H, W, 3] dark grey frame with a red `block`-pixel square in the top-left corner."""
    rgb = np.full((height, width, 3), value, np.uint8)
    rgb[:block, :block] = MARKER
    return rgb


def noise_frame(width: int, height: int, seed: int) -> np.ndarray:
    """Incompressible frame: makes the file's bytes spread evenly over its frames."""
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def write_video(
    path: Path,
    frames: Sequence[np.ndarray],
    *,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    rate: int = 25,
    rotation: float | None = None,
    mirror: bool = False,
    pts_ms: Sequence[int] | None = None,
    options: dict | None = None,
    container_options: dict | None = None,
) -> Path:
    """Encode uint8 RGB frames. `rotation` (counter-clockwise degrees) goes into the display matrix;
    `pts_ms` gives explicit presentation times in milliseconds (variable frame rate)."""
    height, width = frames[0].shape[:2]
    with av.open(str(path), "w", options=container_options or {}) as container:
        stream = container.add_stream(codec, rate=rate, options=options or {})
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        if pts_ms is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
        if rotation is not None:
            stream.set_display_rotation(rotation, hflip=mirror)
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            if pts_ms is not None:
                frame.pts, frame.time_base = int(pts_ms[i]), Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
