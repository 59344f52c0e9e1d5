"""Live sources through the real server: configured by name, asked for by name, streamed to a real
client from a sender process over loopback, cancelled within a step; client-supplied URLs refused."""
from __future__ import annotations

import time

import pytest

from backend.server import live_sources
from backend.cli.serve import add_arguments, settings_from_args
from backend.video.live import LiveSpec
from blender_addon.core.resultfile import ResultFileReader
from tests.server.conftest import wait_for, wait_ready
from tests.support.fixtures import tiny_job_options
from tests.support.live_rig import FixedStep, Loopback, Sender, require_quiet_cpu

STEP_S = 0.2
LIVE_OPTIONS = {"size": 112, "reset_interval": 1_000_000, "conf_threshold": 0.0, "remove_humans_from_points": False}


@pytest.fixture
def live_server(start_server, tiny_engine, engine_runner, options_parser):
    """A server with one UDP live source 'cam' and a 200 ms model step; yields (server, loopback)."""
    loop = Loopback.make("udp")
    specs = live_sources.table([LiveSpec("cam", loop.receive_url, reconnect_s=20.0, read_timeout_s=1.0)])
    with FixedStep(tiny_engine, tiny_job_options(**LIVE_OPTIONS), STEP_S) as stub:
        server = start_server(engine_runner, tiny_engine, options_parser, live_sources=specs)
        yield server, loop, stub


def test_hello_and_status_list_names_never_urls(live_server, make_client):
    server, loop, _ = live_server
    client = make_client(server.endpoint)
    wait_ready(client)
    assert client.server_info["live_sources"] == [{"name": "cam", "kind": "udp"}]
    client.request_status()
    status = wait_for(client, lambda m: m["type"] == "status")
    assert status["live_sources"] == [{"name": "cam", "kind": "udp"}]
    assert str(loop.receive_url) not in repr(client.server_info) + repr(status)


@pytest.mark.parametrize("submit, code, says", [
    ({"video": "rtsp://10.0.0.1/stream"}, "path_not_allowed", "ask for a live source by name (this server offers: cam)"),
    ({"video": "udp://127.0.0.1:1234"}, "path_not_allowed", "offers: cam"),
    ({"video": "live:cam"}, "path_not_allowed", "looks like a URL"),
    ({"video": "", "live": "rtsp://10.0.0.1/stream"}, "path_not_allowed", "clients cannot make the server open"),
    ({"video": "", "live": "/dev/video0"}, "path_not_allowed", "device path"),
    ({"video": "", "live": "door"}, "not_found", "no live source named 'door' (this server offers: cam)"),
])
def test_client_supplied_urls_are_refused(live_server, make_client, submit, code, says):
    server, _, stub = live_server
    client = make_client(server.endpoint)
    wait_ready(client)
    client.submit(submit["video"], LIVE_OPTIONS, live=submit.get("live"))
    reply = wait_for(client, lambda m: m["type"] in ("error", "accepted"))
    assert reply["type"] == "error" and reply["code"] == code and says in reply["message"], reply
    assert not server.board.active_jobs() and not stub.calls


def test_live_job_streams_reports_drops_and_cancels_within_a_step(live_server, make_client):
    server, loop, stub = live_server
    client = make_client(server.endpoint)
    wait_ready(client)
    sender = Sender(loop, seconds=30.0)
    try:
        client.submit("", LIVE_OPTIONS, live="cam")
        accepted = wait_for(client, lambda m: m["type"] in ("accepted", "error"))
        assert accepted["type"] == "accepted" and accepted["video"] == "live:cam", accepted
        job = accepted["job"]
        msgs: list[dict] = []
        wait_for(client, lambda m: m["type"] == "frame" and sum(x["type"] == "frame" for x in msgs) >= 8,
                 timeout=60, sink=msgs)
        wait_for(client, lambda m: m["type"] == "progress" and m.get("dropped", 0) > 0, timeout=5, sink=msgs)
        steps_before = len(stub.calls)
        client.cancel(job)
        t0 = time.monotonic()
        end = wait_for(client, lambda m: m["type"] in ("cancelled", "done", "error"), timeout=10, sink=msgs)
        cancel_s = time.monotonic() - t0
    finally:
        sender.stop()
    assert end["type"] == "cancelled", end
    assert len(stub.calls) <= steps_before + 1  # at most the step that was running
    header = next(m for m in msgs if m["type"] == "header")
    assert header["video"]["kind"] == "live" and header["video"]["path"] == "live:cam"
    frames = [m for m in msgs if m["type"] == "frame"]
    assert all(b["index"] > a["index"] and b["time"] > a["time"] for a, b in zip(frames, frames[1:]))
    progress = [m for m in msgs if m["type"] == "progress"]
    assert progress[-1]["stage"] == "live" and progress[-1]["dropped"] > 0 and progress[-1]["total"] is None
    # the server kept the whole run in its result file, ending with `cancelled`
    deadline = time.monotonic() + 30  # an event with a generous bound: a loaded machine writes later
    while server.board.get(job).state != "cancelled" and time.monotonic() < deadline:
        time.sleep(0.05)
    stored = list(ResultFileReader(server.board.get(job).result_path))
    assert stored[0]["type"] == "header" and stored[-1]["type"] == "cancelled"
    assert [m["index"] for m in stored if m["type"] == "frame"] == [m["index"] for m in frames]
    require_quiet_cpu()
    assert cancel_s < 2 * STEP_S + 0.5, cancel_s  # the running step, then the message round trip


def test_reconnect_is_reported_to_the_client(live_server, make_client):
    server, loop, stub = live_server
    client = make_client(server.endpoint)
    wait_ready(client)
    first = Sender(loop, seconds=3.0)
    second = None
    msgs: list[dict] = []
    try:
        client.submit("", LIVE_OPTIONS, live="cam")
        job = wait_for(client, lambda m: m["type"] == "accepted")["job"]
        wait_for(client, lambda m: m["type"] == "progress" and m["stage"] == "reconnecting", timeout=40, sink=msgs)
        assert "re-opening the stream" in msgs[-1]["status"]
        second = Sender(loop, seconds=10.0, start_index=3000)
        wait_for(client, lambda m: m["type"] == "frame" and stub.calls[-1][0] >= 3000, timeout=40, sink=msgs)
        client.cancel(job)
        end = wait_for(client, lambda m: m["type"] in ("cancelled", "done", "error"), timeout=10, sink=msgs)
    finally:
        first.stop()
        if second is not None:
            second.stop()
    assert end["type"] == "cancelled"
    after = [m for m in msgs if m["type"] == "progress" and m["stage"] == "live"]
    assert after and after[-1]["reconnects"] >= 1


def test_serve_command_line_live_sources(tmp_path):
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--live", "cam1=rtsp://10.0.0.5/main", "--live", "desk=/dev/video0",
                              "--results-dir", str(tmp_path)])
    settings = settings_from_args(args)
    assert {n: (s.kind, s.url) for n, s in settings.live_sources.items()} == {
        "cam1": ("rtsp", "rtsp://10.0.0.5/main"), "desk": ("v4l2", "/dev/video0")}
    for bad, says in ((["--live", "cam1"], "NAME=URL"), (["--live", "a=srt://x:1"], "unsupported scheme"),
                      (["--live", "a=rtsp://x/1", "--live", "a=rtsp://x/2"], "configured twice")):
        with pytest.raises(ValueError, match=says):
            settings_from_args(parser.parse_args([*bad, "--results-dir", str(tmp_path)]))
