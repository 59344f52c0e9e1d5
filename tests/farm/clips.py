"""Short synthetic clips for the batch tests, and byte-level reading of result files.

`make_clips(folder)` writes six inputs: four videos of different lengths (two containers), an image
folder, and a corrupt video that opens (frame 0 decodes) but breaks in the middle.
"""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import PIL.Image

from tests.video.media import noise_frame, write_video

GOOD_LENGTHS = {"walk_a.mp4": 14, "walk_b.mkv": 11, "walk_c.mp4": 9, "walk_d.mp4": 7}
STILLS = 5
TINY_OPTIONS = {"size": 112, "reset_interval": 3}  # the tiny fixture model; resets exercise chunking
TINY_FLAGS = ["--size", "112", "--reset-interval", "3"]


def moving_blob(width: int, height: int, i: int, seed: int) -> np.ndarray:
    """uint8 [H, W, 3]: a colour gradient with a bright square moving right by 3 px per frame."""
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([x * 255 // width, y * 255 // height, np.full_like(x, 40 * seed % 256)], -1).astype(np.uint8)
    left = (10 + 3 * i) % (width - 20)
    rgb[30:50, left:left + 20] = 250
    return rgb


def make_clips(folder: Path) -> dict[str, Path]:
    """Write the six inputs into `folder`; returns output name -> source path."""
    folder.mkdir(parents=True, exist_ok=True)
    clips = {}
    for seed, (file_name, n) in enumerate(GOOD_LENGTHS.items()):
        path = write_video(folder / file_name, [moving_blob(128, 96, i, seed) for i in range(n)])
        clips[path.stem] = path
    stills = folder / "stills"
    stills.mkdir(exist_ok=True)
    for i in range(STILLS):
        PIL.Image.fromarray(moving_blob(120, 90, i, 7)).save(stills / f"{i:04d}.png")
    clips["stills"] = stills
    full = write_video(folder / "full_noise.mp4", [noise_frame(96, 64, i) for i in range(40)],
                       container_options={"movflags": "faststart"})
    broken = folder / "broken.mp4"
    data = full.read_bytes()
    broken.write_bytes(data[: len(data) // 2])
    full.unlink()
    clips["broken"] = broken
    return clips


def raw_records(path: Path) -> list[bytes]:
    """The payload bytes of every record of a .h3r file (layout in blender_addon/core/resultfile.py)."""
    data = Path(path).read_bytes()
    pos, out = 16, []
    while pos < len(data):
        length, _crc = struct.unpack_from("<II", data, pos)
        out.append(data[pos + 8: pos + 8 + length])
        pos += 8 + length
    return out


def record_parts(payload: bytes) -> tuple[dict, list[bytes]]:
    """(msgpack envelope as a map, raw array buffers) of one record payload."""
    import msgpack

    (count,) = struct.unpack_from("<I", payload, 0)
    pos, parts = 4, []
    for _ in range(count):
        (size,) = struct.unpack_from("<Q", payload, pos)
        parts.append(payload[pos + 8: pos + 8 + size])
        pos += 8 + size
    return msgpack.unpackb(parts[0], raw=False, strict_map_key=False), parts[1:]
