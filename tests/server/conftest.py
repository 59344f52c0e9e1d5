"""Fixtures for the server tests: real loopback sockets, the real tiny engine, short clips.

Every server binds tcp://127.0.0.1 on a free port and is stopped at teardown; every client and raw
socket is closed with linger 0 and its context terminated. Transport-only tests may use
`replay_runner`, which replays a .h3r file written by the real engine (not a mock of the core, just
recorded engine output); the job tests run the real tiny engine.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pytest
import zmq

from backend.server.app import Server
from backend.server.settings import ServerSettings
from blender_addon.client import Human3RClient
from blender_addon.core import protocol
from blender_addon.core.resultfile import ResultFileReader

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "tests" / "fixtures" / "protocol"  # written by scripts/make_protocol_goldens.py
FAST_OPTIONS = {"size": 64, "max_points_per_frame": 300, "conf_threshold": 0.0}


def make_video(path: Path, frames: int = 8, width: int = 96, height: int = 64, fps: int = 10) -> Path:
    """Write a small H.264/MPEG-4 clip of moving colour blocks with PyAV; return its path."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            img = np.zeros((height, width, 3), dtype=np.uint8)
            img[..., 0] = np.linspace(0, 255, width, dtype=np.uint8)[None, :]
            img[10:40, 5 + 4 * i:35 + 4 * i] = (250, 200, 40)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


# ------------------------------------------------------------------------------------------------
# the real engine (session scoped: loaded once)


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def short_video(media_dir: Path) -> Path:
    return make_video(media_dir / "clip8.mp4", frames=8)


@pytest.fixture(scope="session")
def engine(parity_fixture_dir: Path, synthetic_smplx_path: Path):
    from backend.engine.stream import Engine

    return Engine.from_paths(parity_fixture_dir / "checkpoint.pth", synthetic_smplx_path, device="cpu")


@pytest.fixture(scope="session")
def engine_runner():
    from backend.engine.job import iter_job_messages

    return iter_job_messages


@pytest.fixture(scope="session")
def options_parser():
    from backend.engine.options import JobOptions

    return JobOptions.from_dict


@pytest.fixture(scope="session")
def recorded_h3r(tmp_path_factory, engine, engine_runner, options_parser, short_video) -> Path:
    """A .h3r of the real engine's messages for 4 frames of the clip (for replay runners)."""
    from blender_addon.core.resultfile import ResultFileWriter

    path = tmp_path_factory.mktemp("recorded") / "clip8.h3r"
    with ResultFileWriter(path) as writer:
        options = options_parser({**FAST_OPTIONS, "end": 4})
        for msg in engine_runner(engine, str(short_video), options, "recorded", None):
            if msg["type"] != "progress":
                writer.write(msg)
    return path


def replay_runner(path: Path, delay_s: float = 0.0, repeat: int = 1) -> Callable:
    """A job runner (iter_job_messages signature) that replays a .h3r file's messages.

    Job ids are rewritten, seq renumbered over `repeat` passes of the non-terminal messages, and the
    cancel event is honoured between messages like the engine does.
    """
    messages = list(ResultFileReader(path))
    body = [m for m in messages if m["type"] not in ("done", "error", "cancelled")]
    end = next((m for m in messages if m["type"] in ("done", "error", "cancelled")), None)

    def run(engine, video, options, job_id, cancel):
        seq, frames = 0, 0
        for _ in range(repeat):
            for msg in body:
                if cancel is not None and cancel.is_set():
                    yield protocol.make_message("cancelled", job_id, seq, frames=frames)
                    return
                if delay_s:
                    time.sleep(delay_s)
                yield {**msg, "job": job_id, "seq": seq}
                seq += 1
                frames += msg["type"] == "frame"
        final = dict(end) if end is not None else protocol.make_message("done", job_id, 0, frames=frames, people=0)
        yield {**final, "job": job_id, "seq": seq, "frames": frames}

    return run


# ------------------------------------------------------------------------------------------------
# servers and clients


@pytest.fixture
def start_server(tmp_path: Path, media_dir: Path):
    """Factory: start_server(runner, engine=None, options_parser=None, **settings) -> started Server."""
    servers: list[Server] = []

    def start(runner, engine=None, options_parser=None, **overrides) -> Server:
        values = dict(bind="tcp://127.0.0.1:0", media_roots=(media_dir, tmp_path), results_dir=tmp_path / "results",
                      heartbeat_s=0.5, peer_timeout_s=3.0)
        values.update(overrides)
        server = Server(ServerSettings(**values), runner, engine, options_parser=options_parser)
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
        assert not server.serving


@pytest.fixture
def make_client():
    """Factory: make_client(endpoint, connect=True, **kwargs) -> Human3RClient (closed at teardown)."""
    clients: list[Human3RClient] = []

    def make(endpoint: str, connect: bool = True, **kwargs) -> Human3RClient:
        kwargs.setdefault("heartbeat_s", 0.5)
        kwargs.setdefault("timeout_s", 5.0)
        client = Human3RClient(endpoint, **kwargs)
        clients.append(client)
        if connect:
            client.connect()
        return client

    yield make
    for client in clients:
        client.close()


def wait_for(client: Human3RClient, predicate: Callable[[dict], bool], timeout: float = 20.0,
             sink: list | None = None) -> dict:
    """Poll until a message satisfies `predicate`; return it (collect all messages into `sink`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for msg in client.poll(max_messages=50, timeout_ms=50):
            if sink is not None:
                sink.append(msg)
            if predicate(msg):
                return msg
    raise AssertionError(f"no matching message within {timeout} s (state {client.state})")


def wait_ready(client: Human3RClient, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while client.state != "ready" and time.monotonic() < deadline:
        client.poll(timeout_ms=50)
    assert client.state == "ready", client.state


class RawDealer:
    """A bare DEALER socket for sending hand-made (malformed) frames; every op has a timeout."""

    def __init__(self, endpoint: str, **sockopts):
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.SNDTIMEO, 2000)
        for opt, value in sockopts.items():
            self.sock.setsockopt(getattr(zmq, opt), value)
        self.sock.connect(endpoint)

    def send(self, frames: list) -> None:
        self.sock.send_multipart(frames)

    def send_msg(self, msg: dict) -> None:
        self.send(protocol.encode(msg))

    def recv(self, timeout: float = 5.0, skip=("heartbeat",)) -> dict:
        """Next decoded message that is not a heartbeat."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = int(1000 * (deadline - time.monotonic()))
            if remaining <= 0 or not self.sock.poll(remaining):
                raise TimeoutError("no reply")
            msg = protocol.decode(self.sock.recv_multipart())
            if msg["type"] not in skip:
                return msg

    def request(self, msg: dict, timeout: float = 5.0) -> dict:
        self.send_msg(msg)
        return self.recv(timeout)

    def close(self) -> None:
        self.sock.close(0)
        self.ctx.term()


@pytest.fixture
def raw_dealer():
    sockets: list[RawDealer] = []

    def make(endpoint: str, **sockopts) -> RawDealer:
        sock = RawDealer(endpoint, **sockopts)
        sockets.append(sock)
        return sock

    yield make
    for sock in sockets:
        sock.close()


def assert_serving(endpoint: str) -> None:
    """The server still answers a ping from a fresh client."""
    raw = RawDealer(endpoint)
    try:
        reply = raw.request(protocol.make_message("ping", request="alive"))
        assert reply["type"] == "pong" and reply["request"] == "alive"
    finally:
        raw.close()
