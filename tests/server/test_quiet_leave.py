"""The server's log and result files as the user meets them (issue 16 item 10): a client that
simply leaves is an INFO line (one that leaves a job behind is a WARNING), and a .h3r carries the
body model once, in its header."""
from __future__ import annotations

import logging
import time

import numpy as np

from .conftest import replay_runner, wait_ready


def test_a_client_that_leaves_is_logged_at_info_and_one_with_a_job_at_warning(
        start_server, make_client, recorded_h3r, short_video, caplog):
    caplog.set_level(logging.INFO, logger="backend.server.app")
    server = start_server(replay_runner(recorded_h3r, delay_s=0.5, repeat=50), heartbeat_s=0.2, peer_timeout_s=1.0)
    quiet = make_client(server.endpoint)
    wait_ready(quiet)
    quiet.close()  # a normal end: hello, then gone
    busy = make_client(server.endpoint)
    wait_ready(busy)
    busy.submit(str(short_video), {})
    deadline = time.monotonic() + 5
    while not server.board.active_jobs() and time.monotonic() < deadline:
        busy.poll(timeout_ms=50)
    busy.close()  # gone in the middle of a job
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and sum("peer" in r.getMessage() and ("left" in r.getMessage()
                                              or "dropped" in r.getMessage()) for r in caplog.records) < 2:
        time.sleep(0.1)
    left = [r for r in caplog.records if "left:" in r.getMessage()]
    dropped = [r for r in caplog.records if "dropped:" in r.getMessage()]
    assert len(left) == 1 and left[0].levelno == logging.INFO, [r.getMessage() for r in caplog.records]
    assert len(dropped) == 1 and dropped[0].levelno == logging.WARNING and "job" in dropped[0].getMessage()


def test_the_body_model_is_stored_once_per_result_file(recorded_h3r):
    from blender_addon.core.resultfile import ResultFileReader

    messages = list(ResultFileReader(recorded_h3r))
    carrying = [m["type"] for m in messages if "body_model" in m]
    assert carrying == ["header"]
    body = messages[0]["body_model"]
    size = sum(np.asarray(v).nbytes for v in body.values())
    assert size > 0.5 * recorded_h3r.stat().st_size  # the model is most of a short file, and stored only once
    frames = [m for m in messages if m["type"] == "frame"]
    assert frames and recorded_h3r.stat().st_size < 2 * size  # a second copy anywhere would double it


def test_the_done_log_line_counts_tracks(start_server, make_client, recorded_h3r, short_video, caplog):
    from blender_addon.core.resultfile import ResultFileReader

    from .conftest import wait_for

    caplog.set_level(logging.INFO, logger="backend.server.jobs")
    tracks = [m for m in ResultFileReader(recorded_h3r) if m["type"] == "track"]
    server = start_server(replay_runner(recorded_h3r))
    client = make_client(server.endpoint)
    wait_ready(client)
    client.submit(str(short_video), {})
    wait_for(client, lambda m: m["type"] == "done")
    deadline = time.monotonic() + 5
    while not any("done after" in r.getMessage() for r in caplog.records) and time.monotonic() < deadline:
        time.sleep(0.05)
    line = next(r.getMessage() for r in caplog.records if "done after" in r.getMessage())
    lasting = sum(t["n_frames"] >= 10 for t in tracks)
    assert line.endswith(f"{len(tracks)} track{'s' if len(tracks) != 1 else ''} ({lasting} of at least 10 frames)")
