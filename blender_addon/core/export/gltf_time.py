"""Correct the animation times of a glTF/GLB written by Blender at NTSC rates.

Blender's glTF exporter writes time = frame / (fps · fps_base); the true time of frame f at rate
fps / fps_base is f · fps_base / fps, i.e. the written times are short by the factor fps_base² (files
made at 29.97 play at 30.03). `scale_animation_times(path, fps_base**2)` multiplies every animation
sampler input (float32 times, with their accessor min/max) in place; integer rates need no fix.
"""
from __future__ import annotations

import json
import os
import struct

import numpy as np

_GLB_MAGIC = b"glTF"
_JSON, _BIN = 0x4E4F534A, 0x004E4942


def _read(path: str):
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] == _GLB_MAGIC:
        length = struct.unpack_from("<I", data, 12)[0]
        doc = json.loads(data[20:20 + length])
        pos = 20 + length
        blob = None
        if pos < len(data):
            blen, btype = struct.unpack_from("<II", data, pos)
            if btype == _BIN:
                blob = bytearray(data[pos + 8: pos + 8 + blen])
        return doc, {None: blob}, True
    doc = json.loads(data)
    folder = os.path.dirname(path)
    blobs = {}
    for i, buf in enumerate(doc.get("buffers", [])):
        uri = buf.get("uri", "")
        if uri.startswith("data:"):
            raise ValueError("embedded data-URI buffers are not rewritten; export as GLB or glTF separate")
        with open(os.path.join(folder, uri), "rb") as f:
            blobs[i] = bytearray(f.read())
    return doc, blobs, False


def scale_animation_times(path: str, factor: float) -> int:
    """Multiply all animation sampler input times of the file by `factor`; returns the accessors changed."""
    doc, blobs, glb = _read(path)
    inputs = sorted({s["input"] for a in doc.get("animations", []) for s in a.get("samplers", [])})
    for index in inputs:
        acc = doc["accessors"][index]
        view = doc["bufferViews"][acc["bufferView"]]
        blob = blobs[None] if glb else blobs[view["buffer"]]
        start = view.get("byteOffset", 0) + acc.get("byteOffset", 0)
        values = np.frombuffer(bytes(blob[start:start + 4 * acc["count"]]), "<f4").astype(np.float64) * factor
        values32 = values.astype("<f4")
        blob[start:start + 4 * acc["count"]] = values32.tobytes()
        acc["min"], acc["max"] = [float(values32.min())], [float(values32.max())]
    if glb:
        text = json.dumps(doc, separators=(",", ":")).encode()
        text += b" " * (-len(text) % 4)
        bin_blob = bytes(blobs[None] or b"")
        out = struct.pack("<II", len(text), _JSON) + text
        if bin_blob:
            out += struct.pack("<II", len(bin_blob), _BIN) + bin_blob
        with open(path + ".tmp", "wb") as f:
            f.write(struct.pack("<4sII", _GLB_MAGIC, 2, 12 + len(out)) + out)
        os.replace(path + ".tmp", path)
    else:
        folder = os.path.dirname(path)
        for i, buf in enumerate(doc.get("buffers", [])):
            with open(os.path.join(folder, buf["uri"]), "wb") as f:
                f.write(blobs[i])
        with open(path, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=1)
    return len(inputs)
