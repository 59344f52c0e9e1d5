"""Result files (.h3r): one job's protocol messages, appended record by record.

Layout (all integers little-endian):

    file    := MAGIC (8 bytes, b"H3RESULT") version (u32, PROTOCOL_VERSION) reserved (u32, 0) record*
    record  := length (u32, bytes of payload) crc32 (u32, of payload) payload
    payload := count (u32, number of parts) part*
    part    := size (u64) bytes          -- part 0 is the msgpack envelope, parts 1.. the array buffers

Records are exactly the frames `protocol.encode` produces, so the file and the wire share one codec.
The writer flushes after every record: a process killed at any point leaves a file whose whole
records all read back; the reader stops at the first torn or corrupt record and says so
(`ResultFileReader.truncated`). One reader serves the add-on and the CLI.
"""
from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Iterator

from . import protocol

MAGIC = b"H3RESULT"
_FILE_HEAD = struct.Struct("<8sII")
_RECORD_HEAD = struct.Struct("<II")
_PART_COUNT = struct.Struct("<I")
_PART_SIZE = struct.Struct("<Q")
MAX_RECORD_BYTES = protocol.MAX_ARRAY_BYTES + protocol.MAX_ENVELOPE_BYTES


class ResultFileError(Exception):
    """The file is not a readable result file (missing, wrong magic, unsupported version)."""


class ResultFileWriter:
    """Append protocol messages to a .h3r file; every `write` is flushed before it returns.

    Use as a context manager. `fsync_every` adds an fsync every N records (0 = only on close),
    which protects against power loss, not just process death.
    """

    def __init__(self, path: str | os.PathLike, fsync_every: int = 0):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: BinaryIO | None = open(self.path, "wb")
        self._file.write(_FILE_HEAD.pack(MAGIC, protocol.PROTOCOL_VERSION, 0))
        self._file.flush()
        self._fsync_every = fsync_every
        self.records = 0

    def write(self, msg: dict) -> None:
        """Encode and append one message (numpy arrays inside are written raw)."""
        self.write_frames(protocol.encode(msg))

    def write_frames(self, frames: list) -> None:
        """Append an already encoded message (the frames of `protocol.encode`)."""
        if self._file is None:
            raise ResultFileError(f"{self.path}: writer is closed")
        parts = [memoryview(f).cast("B") for f in frames]
        payload_len = _PART_COUNT.size + sum(_PART_SIZE.size + p.nbytes for p in parts)
        crc = zlib.crc32(_PART_COUNT.pack(len(parts)))
        for p in parts:
            crc = zlib.crc32(_PART_SIZE.pack(p.nbytes), crc)
            crc = zlib.crc32(p, crc)
        f = self._file
        f.write(_RECORD_HEAD.pack(payload_len, crc))
        f.write(_PART_COUNT.pack(len(parts)))
        for p in parts:
            f.write(_PART_SIZE.pack(p.nbytes))
            f.write(p)
        f.flush()
        self.records += 1
        if self._fsync_every and self.records % self._fsync_every == 0:
            os.fsync(f.fileno())

    def close(self) -> None:
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None

    def __enter__(self) -> "ResultFileWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class ResultFileReader:
    """Iterate the messages of a .h3r file, stopping cleanly at a torn or corrupt tail.

    After iteration, `truncated` is True when the file ended inside a record or a record failed its
    checksum (the messages before it are all valid), and `problem` says what was found.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.is_file():
            raise ResultFileError(f"{self.path}: no such result file")
        self.truncated = False
        self.problem: str | None = None
        with open(self.path, "rb") as f:
            head = f.read(_FILE_HEAD.size)
        if len(head) < _FILE_HEAD.size or head[:8] != MAGIC:
            raise ResultFileError(f"{self.path}: not a Human3R result file (bad magic)")
        _, version, _ = _FILE_HEAD.unpack(head)
        if version != protocol.PROTOCOL_VERSION:
            raise ResultFileError(f"{self.path}: result file version {version}, this reader supports "
                                  f"{protocol.PROTOCOL_VERSION}; re-run the job with this version")

    def __iter__(self) -> Iterator[dict]:
        with open(self.path, "rb") as f:
            f.seek(_FILE_HEAD.size)
            offset = _FILE_HEAD.size
            while True:
                head = f.read(_RECORD_HEAD.size)
                if not head:
                    return
                if len(head) < _RECORD_HEAD.size:
                    self._stop(f"torn record header at byte {offset}")
                    return
                length, crc = _RECORD_HEAD.unpack(head)
                if length > MAX_RECORD_BYTES:
                    self._stop(f"record at byte {offset} claims {length} bytes")
                    return
                payload = f.read(length)
                if len(payload) < length:
                    self._stop(f"file ends inside the record at byte {offset}")
                    return
                if zlib.crc32(payload) != crc:
                    self._stop(f"checksum mismatch in the record at byte {offset}")
                    return
                try:
                    frames = _split_parts(payload)
                    msg = protocol.decode(frames)
                except (ValueError, protocol.ProtocolError) as exc:
                    self._stop(f"undecodable record at byte {offset}: {exc}")
                    return
                offset += _RECORD_HEAD.size + length
                yield msg

    def _stop(self, problem: str) -> None:
        self.truncated = True
        self.problem = problem


def _split_parts(payload: bytes) -> list[memoryview]:
    view = memoryview(payload)
    (count,) = _PART_COUNT.unpack_from(view, 0)
    pos = _PART_COUNT.size
    parts = []
    for _ in range(count):
        if pos + _PART_SIZE.size > len(view):
            raise ValueError("part table runs past the record")
        (size,) = _PART_SIZE.unpack_from(view, pos)
        pos += _PART_SIZE.size
        if pos + size > len(view):
            raise ValueError("part runs past the record")
        parts.append(view[pos:pos + size])
        pos += size
    if pos != len(view):
        raise ValueError("trailing bytes in record")
    return parts


@dataclass
class ResultContents:
    """Everything in one result file, grouped by message type (frames in file order)."""

    header: dict | None = None
    frames: list[dict] = field(default_factory=list)
    tracks: list[dict] = field(default_factory=list)
    end: dict | None = None  # the done / error / cancelled message, None if the job never finished
    truncated: bool = False
    problem: str | None = None


def read_result(path: str | os.PathLike) -> ResultContents:
    """Read a whole result file into memory (use `ResultFileReader` to stream long ones)."""
    reader = ResultFileReader(path)
    out = ResultContents()
    for msg in reader:
        mtype = msg["type"]
        if mtype == protocol.MessageType.HEADER.value:
            out.header = msg
        elif mtype == protocol.MessageType.FRAME.value:
            out.frames.append(msg)
        elif mtype == protocol.MessageType.TRACK.value:
            out.tracks.append(msg)
        elif mtype in {t.value for t in protocol.TERMINAL_TYPES}:
            out.end = msg
    out.truncated, out.problem = reader.truncated, reader.problem
    return out
