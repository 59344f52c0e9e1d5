"""LiveSession with the real ZeroMQ client: a server that is not running, and one that speaks another version.

Both end with a clear error within a bounded time, without raising and without blocking a poll.
"""
from __future__ import annotations

import socket
import time

import msgpack
import pytest

zmq = pytest.importorskip("zmq")

from blender_addon.client import Human3RClient  # noqa: E402
from blender_addon.core.protocol import PROTOCOL_VERSION  # noqa: E402
from blender_addon.core.session import LiveSession, State  # noqa: E402


class NullSink:
    def on_header(self, msg): raise AssertionError("no header expected")
    def on_frames(self, msgs, budget_s=None): raise AssertionError("no frames expected")
    def on_track(self, msg): raise AssertionError("no track expected")
    def on_end(self, msg): raise AssertionError("no end expected")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def drive(session: LiveSession, limit_s: float, between=lambda: None) -> tuple[float, float]:
    """Poll until the session ends; return (elapsed, slowest single step) in seconds."""
    t0, slowest = time.monotonic(), 0.0
    while session.active:
        assert time.monotonic() - t0 < limit_s, f"still {session.state.value} after {limit_s} s"
        t = time.monotonic()
        session.step()
        slowest = max(slowest, time.monotonic() - t)
        between()
        time.sleep(0.01)
    return time.monotonic() - t0, slowest


def test_server_not_running_gives_clear_error_in_bounded_time():
    address = f"tcp://127.0.0.1:{free_port()}"
    session = LiveSession(Human3RClient(address, timeout_s=1.0), NullSink(), address=address,
                          connect_timeout_s=6.0)
    session.start("/videos/clip.mp4", {})
    elapsed, slowest = drive(session, limit_s=8.0)
    assert session.state is State.ERROR and session.error_code == "server_gone"
    assert f"No Human3R server is answering at {address}" in session.message
    assert elapsed < 4.0 and slowest < 0.25


def test_version_mismatch_from_a_newer_server():
    ctx = zmq.Context.instance()
    router = ctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    newer = msgpack.packb({"v": PROTOCOL_VERSION + 1, "type": "hello", "job": None, "seq": 0,
                           "software": "human3r-server/9", "role": "server"})

    def answer_everything():
        while router.poll(0):
            peer, *_ = router.recv_multipart()
            router.send_multipart([peer, newer])

    address = f"tcp://127.0.0.1:{port}"
    session = LiveSession(Human3RClient(address, timeout_s=5.0), NullSink(), address=address)
    try:
        session.start("/videos/clip.mp4", {})
        drive(session, limit_s=5.0, between=answer_everything)
    finally:
        router.close(0)
    assert session.state is State.ERROR and session.error_code == "version_mismatch"
    assert "different protocol version" in session.message and f"version {PROTOCOL_VERSION}" in session.message
