"""What `human3r batch` shows while it runs: one overall bar (frames of every clip to run) and one
line per clip event (start, periodic frames/s and ETA, retry, end), on stderr.

Without tqdm, or with `quiet`, the bar is left out; the lines stay unless `quiet`.
"""
from __future__ import annotations

import sys
import time

LINE_EVERY_S = 10.0  # a running clip prints a progress line at most this often


def format_duration(seconds: float | None) -> str:
    """'1h02m', '3m05s', '12s' or '?'."""
    if seconds is None or seconds != seconds or seconds == float("inf"):
        return "?"
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


class BatchProgress:
    """Overall bar plus per-clip lines.

    Args:
        total_frames: frames of all clips to run (None or 0 when unknown).
        clips: number of clips to run.
        quiet: print nothing.
    """

    def __init__(self, total_frames: int | None, clips: int, quiet: bool = False, stream=None):
        self.quiet = quiet
        self.stream = stream or sys.stderr
        self.clips = clips
        self.finished = 0
        self.failed = 0
        self._frames: dict[str, int] = {}
        self._last_line: dict[str, float] = {}
        self._bar = None
        if quiet:
            return
        try:
            from tqdm import tqdm
            self._bar = tqdm(total=total_frames or None, unit="frame", file=self.stream, dynamic_ncols=True,
                             desc="batch", position=0, leave=True)
        except ImportError:
            self._bar = None

    def line(self, text: str) -> None:
        if self.quiet:
            return
        if self._bar is not None:
            self._bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    def started(self, name: str, total: int | None, worker: int, attempt: int) -> None:
        self._frames[name] = 0
        self._last_line[name] = time.monotonic()
        again = f", attempt {attempt}" if attempt > 1 else ""
        self.line(f"  start  {name} ({total if total is not None else '?'} frames) on worker {worker}{again}")

    def advanced(self, name: str, frames: int, total: int | None, fps: float) -> None:
        self._move(frames - self._frames.get(name, 0))
        self._frames[name] = frames
        now = time.monotonic()
        if now - self._last_line.get(name, 0.0) >= LINE_EVERY_S:
            self._last_line[name] = now
            eta = None if total is None or fps <= 0 else max(total - frames, 0) / fps
            self.line(f"  {name}: {frames}/{total if total is not None else '?'} frames, {fps:.2f} frames/s, "
                      f"ETA {format_duration(eta)}")

    def retried(self, name: str, why: str, attempt: int) -> None:
        self._move(-self._frames.pop(name, 0))  # the clip starts again from its first frame
        self.line(f"  retry  {name} (attempt {attempt}): {why}")

    def ended(self, name: str, status: str, frames: int, seconds: float, error: dict | None = None) -> None:
        self.finished += 1
        if status == "done":
            fps = frames / seconds if seconds > 0 else 0.0
            self.line(f"  done   {name}: {frames} frames in {format_duration(seconds)} ({fps:.2f} frames/s)")
        else:
            self.failed += 1
            error = error or {}
            reason = f" ({error['reason']})" if error.get("reason") else ""
            self.line(f"  FAILED {name}: {error.get('code', status)}{reason}: {error.get('message', '')}")
        if self._bar is not None:
            self._bar.set_postfix_str(f"clips {self.finished}/{self.clips}, failed {self.failed}", refresh=True)

    def _move(self, frames: int) -> None:
        if self._bar is not None and frames:
            self._bar.update(frames)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
