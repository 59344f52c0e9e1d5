"""Peers that vanish: a client killed mid-stream, a silent client, a server killed mid-job, restarts."""
from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from blender_addon.core import protocol
from blender_addon.core.resultfile import read_result

from .conftest import FAST_OPTIONS, REPO, assert_serving, replay_runner, wait_for, wait_ready

pytestmark = pytest.mark.timeout(120)

CLIENT_SCRIPT = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {repo!r})
    from blender_addon.client import Human3RClient
    client = Human3RClient({endpoint!r}, credit_window=1, heartbeat_s=0.5)
    client.connect()
    client.submit({video!r}, {options!r})
    while True:
        for msg in client.poll(max_messages=1, timeout_ms=100):
            if msg["type"] in ("accepted", "frame"):
                print(msg["type"], msg["job"], flush=True)
            if msg["type"] == "frame":
                time.sleep(3600)  # a stuck consumer; the test kills it
""")


def _wait_line(proc: subprocess.Popen, prefix: str, timeout: float = 60.0) -> str:
    """Read proc's stdout until a line starts with `prefix`, giving up after `timeout` seconds.

    A bare `readline()` blocks for as long as the child stays silent, so the deadline would never be
    checked: wait on the pipe's descriptor with select first and read only what is there.
    """
    buffered = proc.__dict__.setdefault("_unread_stdout", [b""])  # bytes read past the last returned line
    deadline = time.monotonic() + timeout
    while True:
        head, sep, rest = buffered[0].partition(b"\n")
        if sep:
            buffered[0] = rest
            line = head.decode(errors="replace")
            if line.startswith(prefix):
                return line.strip()
            continue
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"no line starting with {prefix!r} in {timeout} s")
        ready, _, _ = select.select([proc.stdout], [], [], min(remaining, 0.5))
        if not ready:
            continue
        chunk = os.read(proc.stdout.fileno(), 65536)
        if not chunk:  # EOF: the child closed its stdout
            proc.wait(10)
            raise AssertionError(f"process exited with {proc.returncode} before printing {prefix!r}")
        buffered[0] += chunk


def test_client_killed_mid_stream_cancels_its_job_and_the_next_runs(start_server, make_client, engine, engine_runner,
                                                                     options_parser, short_video, tmp_path):
    # a long peer timeout: the kill must be noticed through the closed connection, not by silence
    server = start_server(engine_runner, engine, options_parser, stream_queue_messages=2, peer_timeout_s=30)
    script = tmp_path / "client.py"
    script.write_text(CLIENT_SCRIPT.format(repo=str(REPO), endpoint=server.endpoint, video=str(short_video),
                                           options=FAST_OPTIONS))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        job_id = _wait_line(proc, "accepted").split()[1]
        _wait_line(proc, "frame")
        job = server.board.get(job_id)
        assert job.state == "running"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        proc.stdout.close()
    deadline = time.monotonic() + 5  # EHOSTUNREACH on the next heartbeat (0.5 s)
    while job.state == "running" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert job.state == "cancelled" and job.frames_done < 8
    assert read_result(job.result_path).end["type"] == "cancelled"
    client = make_client(server.endpoint)
    assert client.run_job(str(short_video), {**FAST_OPTIONS, "end": 2}, timeout_s=60)["type"] == "done"


def test_silent_client_is_dropped_and_its_jobs_cancelled(start_server, raw_dealer, make_client, recorded_h3r,
                                                         short_video):
    server = start_server(replay_runner(recorded_h3r, repeat=20), peer_timeout_s=1.0, stream_queue_messages=2)
    raw = raw_dealer(server.endpoint)  # sends no heartbeats and grants no credits
    running = raw.request(protocol.make_message("submit", video=str(short_video), options={}, credits=0))
    raw.send_msg(protocol.make_message("submit", video=str(short_video), options={}, credits=0))
    while (queued := raw.recv())["type"] != "accepted":
        pass  # the first job's header may come first
    assert queued["queue_position"] == 1
    notes = {}
    deadline = time.monotonic() + 5
    while len(notes) < 2 and time.monotonic() < deadline:  # a silent peer that is still there is told
        try:
            msg = raw.recv(timeout=0.5)
        except TimeoutError:
            continue
        if msg["type"] == "error":
            notes[msg["job"]] = msg["code"]
    assert notes == {running["job"]: "timeout", queued["job"]: "timeout"}
    deadline = time.monotonic() + 5
    while server.board.active_jobs() and time.monotonic() < deadline:
        time.sleep(0.05)  # the running job stops after its current message
    states = {j["job"]: j["state"] for j in server.board.summaries()}
    assert states == {running["job"]: "cancelled", queued["job"]: "cancelled"}
    client = make_client(server.endpoint)
    assert client.run_job(str(short_video), {}, timeout_s=30)["type"] == "done"


# ------------------------------------------------------------------------------------------------
# server in a subprocess


def _start_server_process(tmp_path: Path, parity_fixture_dir: Path, smplx: Path, media: Path,
                          bind: str = "tcp://127.0.0.1:0") -> tuple[subprocess.Popen, str]:
    cmd = [sys.executable, "-m", "backend", "serve", "--bind", bind, "--device", "cpu",
           "--checkpoint", str(parity_fixture_dir / "checkpoint.pth"), "--smplx", str(smplx),
           "--media-root", str(media), "--results-dir", str(tmp_path / "results"), "--heartbeat", "0.5",
           "--stream-queue", "2", "--log-level", "WARNING"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        line = _wait_line(proc, "human3r server listening on", timeout=90)
    except BaseException:
        proc.kill()
        proc.wait(10)
        raise
    return proc, line.rsplit(" ", 1)[1]


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    proc.stdout.close()


def test_server_killed_mid_job(tmp_path, parity_fixture_dir, synthetic_smplx_path, short_video, make_client):
    proc, endpoint = _start_server_process(tmp_path, parity_fixture_dir, synthetic_smplx_path, short_video.parent)
    try:
        client = make_client(endpoint, credit_window=1, timeout_s=2.0, heartbeat_s=0.5)
        client.submit(str(short_video), FAST_OPTIONS)
        accepted = wait_for(client, lambda m: m["type"] == "accepted", timeout=60)
        wait_for(client, lambda m: m["type"] == "frame", timeout=60)
        proc.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
    finally:
        _kill(proc)
    got: list[dict] = []
    wait_for(client, lambda m: m["type"] == "error" and m["job"] == accepted["job"], timeout=10, sink=got)
    elapsed = time.monotonic() - killed_at
    assert elapsed < 2.0 + 1.5, elapsed  # within the client's timeout (+ slack for a loaded machine)
    assert {m["code"] for m in got if m["type"] == "error"} == {"server_gone"}
    assert client.state == "lost"
    stored = read_result(accepted["result_path"])  # the server-side file still opens
    assert stored.header is not None and len(stored.frames) >= 1 and stored.end is None


def test_restart_and_reconnect(tmp_path, parity_fixture_dir, synthetic_smplx_path, short_video, make_client):
    media = short_video.parent
    proc, endpoint = _start_server_process(tmp_path, parity_fixture_dir, synthetic_smplx_path, media)
    client = make_client(endpoint, timeout_s=2.0, heartbeat_s=0.5)
    try:
        first = client.run_job(str(short_video), {**FAST_OPTIONS, "end": 2}, timeout_s=60)
        assert first["type"] == "done"
    finally:
        _kill(proc)
    wait_for(client, lambda m: m.get("code") == "server_gone", timeout=10)
    proc, endpoint2 = _start_server_process(tmp_path, parity_fixture_dir, synthetic_smplx_path, media, bind=endpoint)
    try:
        assert endpoint2 == endpoint
        client.connect()  # a fresh socket, same address
        wait_ready(client)
        client.fetch(first["job"])  # results of the previous server life, from its result file
        got: list[dict] = []
        wait_for(client, lambda m: m["type"] in ("done", "error") and m["job"] == first["job"], sink=got)
        assert [m["type"] for m in got if m["type"] in ("header", "frame", "done")] == ["header", "frame", "frame",
                                                                                           "done"]
        assert client.run_job(str(short_video), {**FAST_OPTIONS, "end": 1}, timeout_s=60)["type"] == "done"
        assert_serving(endpoint)
        proc.send_signal(signal.SIGTERM)  # a clean stop exits 0
        assert proc.wait(20) == 0
    finally:
        _kill(proc)
