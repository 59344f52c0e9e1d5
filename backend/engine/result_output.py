"""Where `human3r infer` writes its result file, without ever destroying something that was there.

- `output_problem` is checked before the model loads: the output must not be the input video (same
  file after resolving links), must not be a folder or a device, and an existing file that is not a
  Human3R result is replaced only with `--overwrite`; the folder must be writable and not full.
- `ResultOutput` writes to a hidden temporary name next to the output and renames it over the output
  when the first frame is written, so a job that fails before producing anything leaves an existing
  file untouched.
"""
from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from blender_addon.core.resultfile import MAGIC, ResultFileWriter

# below this much free space the first frames would not fit (a frame with points is ~100 kB)
MIN_FREE_BYTES = 1_000_000


def is_result_file(path: Path) -> bool:
    """True if `path` starts with the .h3r magic (a file earlier runs wrote)."""
    try:
        with open(path, "rb") as f:
            return f.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """True if both paths name one existing file (links and hard links resolved)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def output_problem(output: str | os.PathLike, overwrite: bool, inputs: tuple[str | os.PathLike, ...] = ()) -> str | None:
    """What is wrong with writing the result to `output`, told before any work starts, or None.

    `inputs` are files the job reads (the video); the output may not be any of them.
    """
    out = Path(output)
    for source in inputs:
        if same_file(source, out):
            return (f"the output {out} is the input {source}; writing it would destroy the video. "
                    f"Give a result name such as -o {out.with_suffix('.h3r').name}")
    if out.is_dir():
        return f"the output {out} is a folder; give a file name such as -o {out / 'result.h3r'}"
    if out.exists():
        if not out.is_file():
            return f"the output {out} is not a regular file (a device or pipe); give a file name such as -o result.h3r"
        if not overwrite and not is_result_file(out):
            return (f"{out} exists and is not a Human3R result file; writing would destroy it. "
                    f"Choose another name (such as -o {out.with_suffix('.h3r').name}) or pass --overwrite to replace it")
    folder = _nearest_existing_folder(out.parent)
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"cannot write in {folder} (permission denied or read-only); choose another folder with -o"
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        free = MIN_FREE_BYTES
    if free < MIN_FREE_BYTES:
        return (f"the disk holding {folder} is full ({free} bytes free); free some space or choose another "
                "folder with -o")
    return None


def _nearest_existing_folder(folder: Path) -> Path:
    folder = folder.absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


class OutputWriteError(Exception):
    """Writing the result failed (disk full, I/O error); `frames` records before it are kept."""

    def __init__(self, path: Path, error: OSError, frames: int):
        self.path, self.error, self.frames = path, error, frames
        what = "the disk is full" if error.errno in (errno.ENOSPC, errno.EDQUOT) else (error.strerror or str(error))
        kept = (f"the {frames} frames written before it are kept and readable in {path}" if frames
                else "no frames were written")
        super().__init__(f"cannot write to {path}: {what}; {kept}. Free some space or choose another "
                         "folder with -o, then run again (--start picks up where it stopped)")


class ResultOutput:
    """A result file written under a temporary name and renamed over `path` at its first frame.

    Use as a context manager; `write` takes protocol messages. `published` tells whether `path`
    now holds this run's file. Closing publishes a frame-less file (one holding an error record)
    only where nothing was at `path` before, or when `keep_empty` is True; otherwise it deletes it.
    """

    def __init__(self, path: str | os.PathLike, keep_empty: bool = True):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.temp = self.path.with_name(f".{self.path.name}.{os.getpid()}.part")
        self.keep_empty = keep_empty
        self.frames = 0
        self.published = False
        self._writer = ResultFileWriter(self.temp)

    def write(self, msg: dict) -> None:
        """Append one message; raise OutputWriteError (with the frames kept) when the disk refuses."""
        try:
            self._writer.write(msg)
        except OSError as exc:
            self._publish_if_frames()
            raise OutputWriteError(self.path, exc, self.frames) from exc
        if msg["type"] == "frame":
            self.frames += 1
            self._publish_if_frames()

    def _publish_if_frames(self) -> None:
        if self.frames and not self.published:
            os.replace(self.temp, self.path)  # POSIX: the open handle now writes to `path`
            self.published = True

    def close(self) -> None:
        try:
            self._writer.close()
        except OSError:
            pass  # the records before the failure are already flushed
        if self.published:
            return
        if self.keep_empty and not self.path.exists():
            os.replace(self.temp, self.path)
            self.published = True
        else:
            try:
                os.unlink(self.temp)
            except OSError:
                pass

    def __enter__(self) -> "ResultOutput":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
