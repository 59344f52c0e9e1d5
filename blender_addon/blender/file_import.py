"""Import a .h3r result file with the scene builder, in bounded steps: progress and cancel for the
import operator, one call for scripts and tests.

    job = FileImport(path, options, scene=None, batch_frames=256)
    while job.step(budget_s=0.1):       # False once finished (or cancelled)
        show(job.fraction)              # 0..1: reading is the first 10 %, building the rest
    job.cancel()                        # keeps what is built, summary['status'] = 'cancelled'
    job.summary                         # the builder's summary plus file facts (see import_result_file)
    job.status_line()                   # "Importing crowd.h3r: 120/300 frames (43 %)"

`in_progress` lists the imports the import operator is running (the panel shows their progress).

`cleanup` (a `core.motion.CleanupOptions` map, None = off) refines the whole job once it is read and
before anything is built (`cleanup.py`): floor, smoothing and foot lock need every frame of a track.

The file is read once, keeping small copies of each frame's camera and people (points only when
per-frame clouds are wanted), so the `track` messages at the end of the file shape the rigs (and say
which tracks are too short) before any rig is built. A truncated file imports up to its last whole frame.
"""
from __future__ import annotations

import os
import time

import bpy

from ..core import protocol
from ..core.resultfile import ResultFileReader
from ..core.scene_plan import ImportOptions
from .scene_builder import SceneBuilder, options_from

READ_SHARE = 0.1  # part of the progress bar given to reading the file
in_progress: list["FileImport"] = []  # imports running in the GUI, added and removed by the import operator
_TERMINAL = frozenset(t.value for t in protocol.TERMINAL_TYPES)


class FileImport:
    """One result-file import, advanced by `step()` (see the module docstring)."""

    def __init__(self, path: str | os.PathLike, options: ImportOptions | dict | None = None, *,
                 scene: bpy.types.Scene | None = None, batch_frames: int = 256, cleanup: dict | None = None):
        self.path = os.fspath(path)
        self.cleanup = cleanup
        self.refined: dict | None = None  # the clean-up report, when it ran
        self.options = options_from(options)
        self.scene = scene
        self.batch_frames = max(1, int(batch_frames))
        self.reader = ResultFileReader(path)  # raises ResultFileError for a file that is not a result file
        self._records = iter(self.reader)
        self._size = max(1, os.path.getsize(self.path))
        self._read_bytes = 0
        self.header: dict | None = None
        self.end: dict | None = None
        self.tracks: list[dict] = []
        self.frames: list[dict] = []
        self.builder: SceneBuilder | None = None
        self._next = 0  # next frame to build
        self.summary: dict | None = None
        self.cancelled = False
        self._t0 = time.perf_counter()
        self._t_read: float | None = None

    @property
    def done(self) -> bool:
        return self.summary is not None

    @property
    def fraction(self) -> float:
        if self.done:
            return 1.0
        if self._t_read is None:
            return READ_SHARE * min(1.0, self._read_bytes / self._size)
        return READ_SHARE + (1.0 - READ_SHARE) * self.builder.frames_applied / max(1, len(self.frames))

    def status_line(self) -> str:
        """What the import is at, for the status bar and the panel."""
        name, percent = os.path.basename(self.path), int(100 * self.fraction)
        if self._t_read is None:
            return f"Reading {name}: {len(self.frames)} frames ({percent} %)"
        return f"Importing {name}: {self.builder.frames_applied}/{len(self.frames)} frames ({percent} %)"

    def step(self, budget_s: float = 0.1) -> bool:
        """Work for about `budget_s` seconds (at least one unit: a record or a batch of frames);
        returns True while there is more to do. Raises ValueError for a file without a header."""
        deadline = time.perf_counter() + budget_s
        while not self.done:
            left = max(0.0, deadline - time.perf_counter())
            if self._t_read is None:
                self._read_one()
            elif self.builder.busy:
                self.builder.pump(left)
            elif self._next < len(self.frames):
                batch = self.frames[self._next:self._next + self.batch_frames]
                self.builder.on_frames(batch, budget_s=None if budget_s == float("inf") else left)
                self._next += len(batch)
            else:
                self._finish(self.end)
            if time.perf_counter() >= deadline:
                break
        return not self.done

    def run(self) -> dict:
        """Import the whole file now; returns the summary."""
        while self.step(float("inf")):
            pass
        return self.summary

    def cancel(self) -> dict:
        """Stop here: what is built stays (clouds are not made); returns the summary."""
        if not self.done:
            self.cancelled = True
            if self.builder is None and self.header is not None:
                self._start_building()
            if self.builder is not None:
                self._finish(None)
                self.summary["status"] = "cancelled"
            else:
                self.summary = {"status": "cancelled", "frames": 0, "path": self.path, "warnings": []}
        return self.summary

    def _read_one(self) -> None:
        msg = next(self._records, None)
        if msg is None:
            if self.header is None:
                raise ValueError(f"{self.path}: the result file has no header (nothing to import)")
            self._start_building()
            return
        mtype = msg["type"]
        if mtype == protocol.MessageType.FRAME.value:
            self.frames.append(_slim_frame(msg, self.options.frame_points))
            self._read_bytes += sum(getattr(v, "nbytes", 0) for v in (msg.get("points") or {}).values()) + 4096
        elif mtype == protocol.MessageType.HEADER.value:
            self.header = msg
        elif mtype == protocol.MessageType.TRACK.value:
            self.tracks.append(msg)
        elif mtype in _TERMINAL:
            self.end = msg

    def _start_building(self) -> None:
        from .cleanup import refine_messages

        self.header, self.frames, self.tracks, self.end, self.refined = refine_messages(
            self.header, self.frames, self.tracks, self.end, self.cleanup)
        self._t_read = time.perf_counter()
        self.builder = SceneBuilder(None, self.options, scene=self.scene, tracks=self.tracks)
        self.builder.on_header(self.header)

    def _finish(self, end: dict | None) -> None:
        summary = self.builder.on_end(end)
        if self.refined is not None:
            from .cleanup import after_import

            after_import(self.builder, self.path, self.frames, self.header)
            summary["cleanup"] = self.refined
        summary.update({"path": self.path, "truncated": self.reader.truncated, "problem": self.reader.problem,
                        "read_s": self._t_read - self._t0, "build_s": time.perf_counter() - self._t_read})
        self.summary = summary


def import_result_file(path: str | os.PathLike, options: ImportOptions | dict | None = None, *,
                       scene: bpy.types.Scene | None = None, batch_frames: int = 4096,
                       cleanup: dict | None = None) -> dict:
    """Import a .h3r result file at once; returns the builder's summary plus `path`, `truncated`,
    `problem` (what cut the file short), `read_s` and `build_s` (seconds), and `cleanup` (its report)
    when `cleanup` ran.

    Raises `resultfile.ResultFileError` for a file that is not a result file, ValueError without header.
    """
    return FileImport(path, options, scene=scene, batch_frames=batch_frames, cleanup=cleanup).run()


_SLIM_BYTES = 64 * 1024  # frames whose points are larger are copied out of their record


def _slim_frame(msg: dict, keep_points: bool) -> dict:
    """What the builder needs of a decoded frame, without holding on to a large record's bytes.

    Decoded arrays view the record they came from; when the points (the bulk of a frame) are not
    wanted and weigh more than `_SLIM_BYTES`, the small camera/people arrays are copied so the record
    can be freed. Small frames are kept as they are (copying tens of arrays per frame costs more).
    """
    points = msg.get("points") or {}
    if keep_points or sum(getattr(v, "nbytes", 0) for v in points.values()) <= _SLIM_BYTES:
        return msg

    def copy(value):
        if isinstance(value, dict):
            return {k: copy(v) for k, v in value.items()}
        if hasattr(value, "copy") and hasattr(value, "dtype"):
            return value.copy()
        return value

    return {"type": msg["type"], "index": msg["index"], "time": msg.get("time"),
            "camera": copy(msg["camera"]), "people": copy(msg.get("people") or {})}
