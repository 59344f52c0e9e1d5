"""Jobs through a real server with the real tiny engine: streaming, queueing, cancel, fetch, credits."""
from __future__ import annotations

import multiprocessing
import time

import numpy as np
import pytest

from blender_addon.core import protocol
from blender_addon.core.resultfile import read_result

from .conftest import FAST_OPTIONS, assert_serving, replay_runner, wait_for

pytestmark = pytest.mark.timeout(90)


def _job_messages(client, video, options, **kwargs) -> list[dict]:
    got: list[dict] = []
    end = client.run_job(str(video), options, got.append, timeout_s=60, **kwargs)
    assert got[-1] is end
    return got


def test_job_streams_in_order_writes_its_file_and_can_be_fetched(start_server, make_client, engine, engine_runner,
                                                                   options_parser, short_video):
    server = start_server(engine_runner, engine, options_parser)
    client = make_client(server.endpoint, credit_window=2)
    got = _job_messages(client, short_video, {**FAST_OPTIONS, "end": 4})
    types = [m["type"] for m in got]
    assert types[0] == "accepted" and types[1] == "header" and types[-1] == "done", types
    assert types.count("frame") == 4 == got[-1]["frames"]
    assert "track" in types
    assert [m["seq"] for m in got[1:]] == list(range(len(got) - 1))  # header is seq 0, no gaps
    frames = [m for m in got if m["type"] == "frame"]
    assert [f["index"] for f in frames] == [0, 1, 2, 3]
    assert frames[0]["people"]["body_pose"].shape[1:] == (21, 3)
    assert frames[0]["camera"]["cam_to_world"].dtype == np.float32

    # the server kept the same stream in its result file (progress is not stored)
    path = got[0]["result_path"]
    stored = read_result(path)
    assert not stored.truncated and stored.end["type"] == "done"
    assert [f["seq"] for f in stored.frames] == [f["seq"] for f in frames]
    np.testing.assert_array_equal(stored.frames[2]["people"]["transl"], frames[2]["people"]["transl"])

    # fetch re-streams it from the file, with credits
    job = got[0]["job"]
    client.fetch(job)
    fetched: list[dict] = []
    wait_for(client, lambda m: m.get("job") == job and m["type"] == "done", sink=fetched)
    fetched_frames = [m for m in fetched if m["type"] == "frame"]
    assert [m["type"] for m in fetched if m["type"] != "frame"][0] == "header"
    assert [f["seq"] for f in fetched_frames] == [f["seq"] for f in frames]
    np.testing.assert_array_equal(fetched_frames[3]["points"]["xyz"], frames[3]["points"]["xyz"])
    assert [j["state"] for j in server.board.summaries()] == ["done"]


def test_two_clients_at_once_are_queued_and_both_finish(start_server, make_client, engine, engine_runner,
                                                         options_parser, short_video):
    server = start_server(engine_runner, engine, options_parser)
    first, second = make_client(server.endpoint), make_client(server.endpoint)
    t1 = first.submit(str(short_video), {**FAST_OPTIONS, "end": 3})
    a1 = wait_for(first, lambda m: m["type"] == "accepted")
    t2 = second.submit(str(short_video), {**FAST_OPTIONS, "end": 2})
    a2 = wait_for(second, lambda m: m["type"] == "accepted")
    assert (a1["request"], a2["request"]) == (t1, t2)
    assert a1["queue_position"] == 0 and a2["queue_position"] == 1
    second.request_status()
    status = wait_for(second, lambda m: m["type"] == "status")
    states = {j["job"]: (j["state"], j["queue_position"]) for j in status["jobs"]}
    assert states[a2["job"]] == ("queued", 1)
    ends = {}
    deadline = time.monotonic() + 60
    while len(ends) < 2 and time.monotonic() < deadline:
        for client in (first, second):
            for msg in client.poll(timeout_ms=20):
                assert msg["job"] in (a1["job"], a2["job"])  # each client sees only its own job
                if msg["type"] in ("done", "error", "cancelled"):
                    ends[msg["job"]] = msg
    assert ends[a1["job"]]["type"] == ends[a2["job"]]["type"] == "done"
    assert (ends[a1["job"]]["frames"], ends[a2["job"]]["frames"]) == (3, 2)


def test_cancel_mid_job_then_the_next_job_runs(start_server, make_client, engine, engine_runner, options_parser,
                                               short_video):
    server = start_server(engine_runner, engine, options_parser)
    client = make_client(server.endpoint, credit_window=1)
    client.submit(str(short_video), FAST_OPTIONS)
    accepted = wait_for(client, lambda m: m["type"] == "accepted")
    job = accepted["job"]
    wait_for(client, lambda m: m["type"] == "frame")
    client.cancel(job)
    got: list[dict] = []
    end = wait_for(client, lambda m: m["type"] in ("done", "error", "cancelled"), sink=got)
    assert end["type"] == "cancelled" and end["job"] == job
    assert 1 <= end["frames"] < 8
    stored = read_result(accepted["result_path"])
    assert stored.end["type"] == "cancelled" and len(stored.frames) == end["frames"]
    # the cancelled job's decoding process is gone with it (the server runs in this process here)
    assert not [p for p in multiprocessing.active_children() if p.name == "human3r-decode"]
    # cancelling a queued job: it never runs
    busy = client.submit(str(short_video), {**FAST_OPTIONS, "end": 2})
    queued = client.submit(str(short_video), {**FAST_OPTIONS, "end": 2})
    client.cancel(queued)  # by token, before `accepted` arrives
    ends = {}
    while len(ends) < 2:
        msg = wait_for(client, lambda m: m["type"] in ("done", "cancelled", "error"))
        ends[msg["job"]] = msg
    assert ends[client.job_for_request(busy)]["type"] == "done"
    never_ran = ends[client.job_for_request(queued)]
    assert (never_ran["type"], never_ran["frames"]) == ("cancelled", 0)


def test_client_granting_no_credits_gets_no_frames_and_the_queue_stays_bounded(
        start_server, raw_dealer, make_client, recorded_h3r, short_video):
    # the recorded real-engine stream repeated 20x: ~160 frames the client never asks for
    server = start_server(replay_runner(recorded_h3r, repeat=20), stream_queue_messages=4, peer_timeout_s=30)
    raw = raw_dealer(server.endpoint)
    accepted = raw.request(protocol.make_message("submit", video=str(short_video), options={}, credits=0))
    job = server.board.get(accepted["job"])
    stream = job.stream
    seen = []
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        try:
            seen.append(raw.recv(timeout=0.2))
        except TimeoutError:
            pass
    assert "frame" not in [m["type"] for m in seen]
    assert [m["type"] for m in seen][:1] == ["header"]
    assert job.state == "running" and job.frames_done < 10  # the worker waits on the full stream
    assert stream.max_depth <= 4 and len(stream) <= 4
    raw.send_msg(protocol.make_message("credit", accepted["job"], credits=3))
    frames = []
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and len(frames) < 4:
        try:
            msg = raw.recv(timeout=0.3)
        except TimeoutError:
            continue
        frames += [msg] if msg["type"] == "frame" else []
    assert len(frames) == 3  # exactly the credits granted
    assert stream.max_depth <= 4
    raw.send_msg(protocol.make_message("cancel", accepted["job"]))
    while (msg := raw.recv(timeout=5))["type"] != "cancelled":
        pass
    assert_serving(server.endpoint)
    assert make_client(server.endpoint).run_job(str(short_video), {}, timeout_s=20)["type"] == "done"


def test_limits_per_client_queue_and_frames(start_server, make_client, raw_dealer, recorded_h3r, short_video):
    server = start_server(replay_runner(recorded_h3r, delay_s=0.05, repeat=5), max_jobs_per_client=2, max_queue=3,
                          max_frames_per_job=5, peer_timeout_s=30)
    raw = raw_dealer(server.endpoint)
    submit = protocol.make_message("submit", video=str(short_video), options={"start": 2}, credits=100)
    first = raw.request(submit)
    assert first["type"] == "accepted" and first["options"]["end"] == 7  # end - start capped to 5
    raw.send_msg(submit)
    while (second := raw.recv())["type"] != "accepted":
        pass
    raw.send_msg(submit)
    while (third := raw.recv())["type"] != "error":
        pass
    assert third["code"] == "too_many_jobs"
    other = raw_dealer(server.endpoint)  # a second socket from the same address is the same client
    assert other.request(submit)["code"] == "too_many_jobs"
    assert other.request(protocol.make_message("cancel", first["job"]))["code"] == "unknown_job"  # not its job
    assert server.board.get(first["job"]).state in ("running", "queued")
    for job in (first["job"], second["job"]):
        raw.send_msg(protocol.make_message("cancel", job))
    assert_serving(server.endpoint)


def test_infer_with_server_writes_the_same_result_file_locally(start_server, engine, engine_runner, options_parser,
                                                                short_video, tmp_path, capsys):
    import argparse

    from backend.cli import infer as infer_cli

    server = start_server(engine_runner, engine, options_parser)
    parser = argparse.ArgumentParser()
    infer_cli.add_arguments(parser)
    out = tmp_path / "remote.h3r"
    args = parser.parse_args([str(short_video), "-o", str(out), "--server", server.endpoint, "--size", "64",
                              "--end", "3", "--max-points", "300", "--conf-threshold", "0"])
    assert infer_cli.run(args) == 0
    local = read_result(out)
    remote = read_result(server.board.summaries()[0]["result_path"])
    assert local.end["type"] == "done" and not local.truncated
    assert [f["seq"] for f in local.frames] == [f["seq"] for f in remote.frames] and len(local.frames) == 3
    np.testing.assert_array_equal(local.frames[-1]["people"]["betas"], remote.frames[-1]["people"]["betas"])
    np.testing.assert_array_equal(local.header["body_model"]["faces"], remote.header["body_model"]["faces"])
    assert len(local.tracks) == len(remote.tracks)
    assert "wrote" in capsys.readouterr().err
    # a refused video gives the infer command's exit code for unreadable videos
    args = parser.parse_args(["/etc/passwd", "-o", str(tmp_path / "x.h3r"), "--server", server.endpoint])
    assert infer_cli.run(args) == 4


def test_a_stalled_stream_is_cancelled_after_the_stall_timeout(start_server, raw_dealer, recorded_h3r, short_video):
    server = start_server(replay_runner(recorded_h3r, repeat=20), stream_queue_messages=2, stall_timeout_s=0.5,
                          peer_timeout_s=30)
    raw = raw_dealer(server.endpoint)
    accepted = raw.request(protocol.make_message("submit", video=str(short_video), options={}, credits=0))
    got = []
    while not got or got[-1]["type"] not in ("done", "cancelled", "error"):
        got.append(raw.recv(timeout=5))
    assert got[-1]["type"] == "cancelled" and got[-1]["job"] == accepted["job"]
    # only what was buffered when it stalled (2) plus the one the blocked worker was holding
    assert sum(m["type"] == "frame" for m in got) <= 3
    assert server.board.get(accepted["job"]).state == "cancelled"
