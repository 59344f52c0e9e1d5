"""Helpers for live-input tests and `scripts/bench_live.py`: a sender process, free ports, and a model
step that takes a fixed time.

`FixedStep` replaces only the model's `step` (the network call) of a real `Engine`: it runs the real
tiny network once on a sender-sized frame, then every call returns that output after exactly
`seconds` (a model of known, steady speed; the tiny network itself takes 1-8 s per step on a loaded
2-core CI machine), and records for each call the frame index painted into its input
(`live_sender.paint`) and the wall time it finished. Everything else (decoding, keep-latest,
preprocessing, post-processing, the job and the server) is the real code.
"""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tests.support.live_sender import read_index

REPO = Path(__file__).resolve().parents[2]
SENDER_SIZE = (320, 240)
SENDER_GOP = 15  # keyframe every 0.5 s at 30 fps: a receiver joins within half a second


def require_quiet_cpu() -> None:
    """Timing bounds need the CPU the test runs on: skip them (saying why) when the machine is
    overloaded by other work (a shared developer box), never on a CI runner running the suite alone.
    Call it after a test's behavioural checks and before its timing checks."""
    import os

    import pytest

    load, cores = os.getloadavg()[0], os.cpu_count() or 1
    if load > 2.5 * cores:
        pytest.skip(f"load average {load:.1f} on {cores} cores: latency bounds are not measurable here")


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class Loopback:
    """One transport on loopback: the URL the receiver is configured with, and the sender's."""

    name: str
    receive_url: str
    send_url: str
    format: str

    @classmethod
    def make(cls, name: str) -> "Loopback":
        if name == "udp":
            port = free_port(socket.SOCK_DGRAM)
            return cls(name, f"udp://127.0.0.1:{port}", f"udp://127.0.0.1:{port}?pkt_size=1316", "mpegts")
        if name == "rtsp":
            port = free_port()
            return cls(name, f"rtsp://127.0.0.1:{port}/live?listen=1", f"rtsp://127.0.0.1:{port}/live", "rtsp")
        if name == "rtmp":
            port = free_port()
            return cls(name, f"rtmp://127.0.0.1:{port}/live/cam?listen=1", f"rtmp://127.0.0.1:{port}/live/cam",
                       "flv")
        raise ValueError(name)


class Sender:
    """`live_sender` in a child process; `t0` is the wall time frame `start_index` was captured.

    settings: a `live_sender.SENDER_SETTINGS` name; linger_s: seconds the sender keeps its output open
    and silent after the last frame (`wait_written` says when that frame is out).
    """

    def __init__(self, loop: Loopback, seconds: float, fps: int = 30, start_index: int = 0, gop: int = SENDER_GOP,
                 settings: str = "low-latency", linger_s: float = 0.0):
        self.fps, self.start_index, self.settings = fps, start_index, settings
        w, h = SENDER_SIZE
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.live_sender", loop.send_url, "--format", loop.format,
             "--seconds", str(seconds), "--fps", str(fps), "--width", str(w), "--height", str(h),
             "--gop", str(gop), "--start-index", str(start_index), "--settings", settings,
             "--linger", str(linger_s)],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self._t0: float | None = None
        self._ready = threading.Event()
        self._written = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            data = json.loads(line)
            if "t0" in data:
                self._t0 = data["t0"] - self.start_index / self.fps
                self._ready.set()
            if "written" in data:
                self._written.set()

    def captured_at(self, index: int, timeout: float = 60.0) -> float:
        """Wall time painted frame `index` was handed to the encoder."""
        if not self._ready.wait(timeout):
            raise TimeoutError("the sender never sent its first frame")
        return self._t0 + index / self.fps

    def wait_written(self, timeout: float = 60.0) -> bool:
        """Wait until the last frame was muxed (and flushed, with flushing settings)."""
        return self._written.wait(timeout)

    def wait(self, timeout: float = 60.0) -> int:
        return self.process.wait(timeout)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)


@dataclass
class FixedStep:
    """Make `engine.model.step` take exactly `seconds` per call (see the module docstring).

    calls: (painted index, wall time the step finished) per call, in order.
    durations: (perf_counter at the start, at the end) of each call.
    seconds=None runs the real network on every call (only recording what it saw).
    """

    engine: object
    options: object
    seconds: float | None = 0.2
    calls: list = field(default_factory=list)
    durations: list = field(default_factory=list)

    def __enter__(self) -> "FixedStep":
        import torch

        from tests.support.live_sender import paint

        model = self.engine.model
        real = model.step
        if self.seconds is not None:
            prepared = self.engine.prepare(paint(0, *SENDER_SIZE), self.options)
            with torch.inference_mode():
                out, _ = real(model.init_stream(), prepared.img, prepared.img_mhmr, reset=False,
                              use_ttt3r=self.options.ttt3r)

        def step(state, img, img_mhmr, **kwargs):
            t0 = time.perf_counter()
            rgb = ((img[0].permute(1, 2, 0).float().numpy() + 1.0) * 127.5).clip(0, 255).astype(np.uint8)
            index = read_index(rgb, *SENDER_SIZE)
            if self.seconds is None:
                result = real(state, img, img_mhmr, **kwargs)
            else:
                result = out, state
                rest = self.seconds - (time.perf_counter() - t0)
                if rest > 0:
                    time.sleep(rest)
            self.calls.append((index, time.time()))
            self.durations.append((t0, time.perf_counter()))
            return result

        model.step = step
        return self

    def __exit__(self, *exc) -> None:
        del self.engine.model.step  # the instance attribute goes; the class's method shows again
