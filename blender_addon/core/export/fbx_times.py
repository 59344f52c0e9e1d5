"""Read a binary FBX file's animation key times and frame-rate settings (no Blender, no SDK).

Binary FBX: a 27-byte header (version u32 at byte 23), then node records
    end_offset, property_count, property_bytes (u32 each; u64 from version 7500), name_len u8, name,
    properties (type code + value; arrays: count u32, encoding u32 (1 = zlib), byte length u32),
    nested records, and a null record closing any node that has children.
Key times are `AnimationCurve` nodes' `KeyTime` arrays in FBX ticks (46,186,158,000 per second);
`GlobalSettings` holds TimeMode and CustomFrameRate.
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

import numpy as np

KTIME_PER_SECOND = 46_186_158_000
_ARRAY = {b"f": "<f4", b"d": "<f8", b"l": "<i8", b"i": "<i4", b"b": "u1"}
_SCALAR = {b"Y": "<h", b"C": "<?", b"I": "<i", b"F": "<f", b"D": "<d", b"L": "<q"}


class FBXFormatError(ValueError):
    """Not a binary FBX file (ASCII FBX is not read here)."""


@dataclass
class FBXNode:
    name: str
    props: list
    children: list["FBXNode"] = field(default_factory=list)

    def find_all(self, name: str):
        for c in self.children:
            if c.name == name:
                yield c
            yield from c.find_all(name)


def parse(data: bytes) -> FBXNode:
    if not data.startswith(b"Kaydara FBX Binary  \x00"):
        raise FBXFormatError("not a binary FBX file")
    version = struct.unpack_from("<I", data, 23)[0]
    wide = version >= 7500
    root = FBXNode("", [])
    pos = 27
    while True:
        node, pos = _read_node(data, pos, wide)
        if node is None:
            break
        root.children.append(node)
    root.props = [version]
    return root


def _read_node(data: bytes, pos: int, wide: bool):
    fmt = "<QQQ" if wide else "<III"
    end, count, _ = struct.unpack_from(fmt, data, pos)
    pos += struct.calcsize(fmt)
    name_len = data[pos]
    name = data[pos + 1: pos + 1 + name_len].decode("ascii", "replace")
    pos += 1 + name_len
    if end == 0:
        return None, pos
    props = []
    for _ in range(count):
        code = data[pos:pos + 1]
        pos += 1
        if code in _SCALAR:
            dt = np.dtype(_SCALAR[code])
            props.append(np.frombuffer(data, dt, 1, pos)[0])
            pos += dt.itemsize
        elif code in _ARRAY:
            n, enc, size = struct.unpack_from("<III", data, pos)
            pos += 12
            raw = data[pos:pos + size]
            pos += size
            props.append(np.frombuffer(zlib.decompress(raw) if enc == 1 else raw, _ARRAY[code], n))
        elif code in (b"S", b"R"):
            size = struct.unpack_from("<I", data, pos)[0]
            props.append(data[pos + 4: pos + 4 + size])
            pos += 4 + size
        else:
            raise FBXFormatError(f"unknown property type {code!r} at byte {pos - 1}")
    node = FBXNode(name, props)
    while pos < end:
        child, pos = _read_node(data, pos, wide)
        if child is None:
            break
        node.children.append(child)
    return node, end


@dataclass
class FBXTiming:
    time_mode: int | None
    custom_frame_rate: float | None
    key_times: list[np.ndarray]  # seconds, one array per animation curve


def read_timing(path) -> FBXTiming:
    with open(path, "rb") as f:
        root = parse(f.read())
    mode = rate = None
    for settings in root.find_all("GlobalSettings"):
        for p in settings.find_all("P"):
            if p.props and p.props[0] == b"TimeMode":
                mode = int(p.props[-1])
            elif p.props and p.props[0] == b"CustomFrameRate":
                rate = float(p.props[-1])
    times = []
    for curve in root.find_all("AnimationCurve"):
        for kt in curve.find_all("KeyTime"):
            times.append(np.asarray(kt.props[0], np.float64) / KTIME_PER_SECOND)
    return FBXTiming(mode, rate, times)
