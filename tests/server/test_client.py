"""The client library on its own: non-blocking poll, liveness, version mismatch, credits, heartbeats."""
from __future__ import annotations

import time

import msgpack
import pytest
import zmq

from blender_addon.client import Human3RClient
from blender_addon.core import protocol

from .conftest import GOLDEN, replay_runner, wait_for, wait_ready

pytestmark = pytest.mark.timeout(60)


def _free_endpoint() -> str:
    ctx = zmq.Context()
    sock = ctx.socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.bind("tcp://127.0.0.1:*")
    endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
    sock.close(0)
    ctx.term()
    return endpoint


def test_no_server_poll_never_blocks_and_reports_server_gone(make_client):
    client = make_client(_free_endpoint(), timeout_s=1.0, heartbeat_s=0.2)
    token = client.submit("/videos/clip.mp4", {})
    assert client.state == "connecting"
    got = []
    start = time.monotonic()
    while not got:
        t0 = time.monotonic()
        got = client.poll(timeout_ms=0)
        assert time.monotonic() - t0 < 0.25  # timeout 0: returns at once (generous for a loaded CI box)
        t0 = time.monotonic()
        got += client.poll(timeout_ms=30)
        assert time.monotonic() - t0 < 0.5
    assert 1.0 <= time.monotonic() - start < 2.5
    assert [(m["type"], m["code"], m["job"], m["synthetic"]) for m in got] == [("error", "server_gone", None, True)]
    assert client.state == "lost" and client.poll(timeout_ms=0) == []
    assert token.startswith("r")


def test_version_mismatch_from_the_server_is_reported(make_client):
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    router.bind("tcp://127.0.0.1:*")
    try:
        client = make_client(router.getsockopt_string(zmq.LAST_ENDPOINT))
        assert router.poll(5000)
        identity, hello = router.recv_multipart()
        assert protocol.decode([hello])["type"] == "hello"
        future = msgpack.packb({"v": protocol.PROTOCOL_VERSION + 1, "type": "hello", "job": None, "seq": 0,
                                "software": "future", "role": "server"})
        router.send_multipart([identity, future])
        msg = wait_for(client, lambda m: True, timeout=5)
        assert (msg["type"], msg["code"], client.state) == ("error", "version_mismatch", "incompatible")
    finally:
        router.close(0)
        ctx.term()


def test_handshake_heartbeats_and_bounded_poll(start_server, make_client, short_video):
    server = start_server(replay_runner(GOLDEN / "tiny.h3r", repeat=30), heartbeat_s=0.3, peer_timeout_s=1.5)
    client = make_client(server.endpoint, timeout_s=1.0, heartbeat_s=0.3, credit_window=4)
    wait_ready(client)
    assert client.server_info["role"] == "server" and client.server_info["limits"]["max_queue"] == 64
    # idle for longer than both timeouts: heartbeats both ways keep the connection up
    deadline = time.monotonic() + 2.5
    while time.monotonic() < deadline:
        assert client.poll(timeout_ms=50) == []
    assert client.state == "ready" and len(server._peers) == 1
    # a long job read 3 messages at a time: poll never returns more than asked
    token = client.submit(str(short_video), {})
    total_frames = 0
    deadline = time.monotonic() + 30
    while True:
        assert time.monotonic() < deadline, f"no done after {total_frames} frames (state {client.state})"
        batch = client.poll(max_messages=3, timeout_ms=100)
        assert len(batch) <= 3
        total_frames += sum(m["type"] == "frame" for m in batch)
        if any(m["type"] == "done" for m in batch):
            break
    assert total_frames == 60
    assert client.job_for_request(token) is not None and client.active_jobs == []
    # a ping is answered internally (pong is not returned)
    client.ping()
    assert client.poll(timeout_ms=200) == []


def test_run_job_returns_the_refusal_of_a_bad_submit(start_server, make_client):
    server = start_server(replay_runner(GOLDEN / "tiny.h3r"))
    seen = []
    end = make_client(server.endpoint).run_job("http://example.com/x.mp4", {}, seen.append, timeout_s=10)
    assert (end["type"], end["code"]) == ("error", "path_not_allowed") and seen == [end]


def test_closed_client_terminates_its_context():
    client = Human3RClient(_free_endpoint())
    client.connect()
    ctx = client._ctx
    client.close()
    client.close()
    assert ctx.closed and client.state == "closed"
