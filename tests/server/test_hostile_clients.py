"""What one client can do to another: ownership of jobs, what `status` shows, the media-root check at
decode time, per-key limits, fairness (a client that never reads, costly options, cancel latency) and
the server telling its clients when it stops. Real loopback sockets, two clients, two CurveZMQ key pairs."""
from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import pytest
import zmq

from blender_addon.core import protocol
from blender_addon.core.resultfile import read_result

from .conftest import FAST_OPTIONS, make_video, replay_runner, wait_for, wait_ready


@pytest.fixture
def keys():
    """The server's key pair and two clients' key pairs (public, secret)."""
    return {"server": zmq.curve_keypair(), "alice": zmq.curve_keypair(), "bob": zmq.curve_keypair()}


@pytest.fixture
def curve_server(start_server, keys):
    """Factory: a server with CurveZMQ on that lets alice and bob in."""
    def start(runner, engine=None, options_parser=None, **overrides):
        return start_server(runner, engine, options_parser, curve_secret_key=keys["server"][1],
                            curve_public_key=keys["server"][0],
                            allowed_client_keys=frozenset({keys["alice"][0], keys["bob"][0]}), **overrides)
    return start


@pytest.fixture
def curve_client(make_client, keys):
    def make(server, who: str, **kwargs):
        client = make_client(server.endpoint, curve_server_key=keys["server"][0], curve_keys=keys[who], **kwargs)
        wait_ready(client)
        return client
    return make


def _fetch_reply(client, job_id: str, token: str | None = None) -> dict:
    client.fetch(job_id, token=token)
    return wait_for(client, lambda m: m.get("job") == job_id and m["type"] in ("header", "error") or
                    (m["type"] == "error" and m.get("reply")))


@pytest.mark.timeout(90)
def test_only_the_submitting_key_sees_fetches_and_cancels_a_job(curve_server, curve_client, recorded_h3r,
                                                                short_video):
    server = curve_server(replay_runner(recorded_h3r))
    alice, bob = curve_client(server, "alice"), curve_client(server, "bob")
    end = alice.run_job(str(short_video), {}, timeout_s=30)
    assert end["type"] == "done"
    job = end["job"]
    # bob: no fetch, no cancel, not even with alice's token (with Curve, the key is the owner)
    reply = _fetch_reply(bob, job, token=alice.job_tokens[job])
    assert reply["type"] == "error" and reply["code"] == "unknown_job" and "of yours" in reply["message"]
    bob.cancel(job)
    assert wait_for(bob, lambda m: m["type"] == "error")["code"] == "unknown_job"
    bob.request_status()
    assert wait_for(bob, lambda m: m["type"] == "status")["jobs"] == []  # alice's finished job is not listed
    # alice, from a fresh connection with the same key, gets her results
    alice2 = curve_client(server, "alice")
    assert _fetch_reply(alice2, job)["type"] == "header"
    alice2.request_status()
    mine = wait_for(alice2, lambda m: m["type"] == "status")["jobs"]
    assert [(j["job"], j["state"], j["mine"]) for j in mine] == [(job, "done", True)]


@pytest.mark.timeout(90)
def test_without_curve_the_job_token_proves_ownership(start_server, make_client, recorded_h3r, short_video):
    server = start_server(replay_runner(recorded_h3r))
    alice, mallory = make_client(server.endpoint), make_client(server.endpoint)
    wait_ready(alice)
    wait_ready(mallory)
    end = alice.run_job(str(short_video), {}, timeout_s=30)
    job, token = end["job"], alice.job_tokens[end["job"]]
    assert len(token) >= 20
    assert _fetch_reply(mallory, job)["code"] == "unknown_job"
    assert _fetch_reply(mallory, job, token="guess" * 5)["code"] == "unknown_job"
    assert _fetch_reply(mallory, job, token=token)["type"] == "header"  # whoever alice gave the token to
    assert _fetch_reply(alice, job)["type"] == "header"
    # the token is stored hashed next to the result, never in clear
    sidecar = Path(end.get("result_path", server.board.get(job).result_path)).with_suffix(".owner")
    assert sidecar.is_file() and token not in sidecar.read_text()


@pytest.mark.timeout(90)
def test_shared_results_lets_everyone_fetch(curve_server, curve_client, recorded_h3r, short_video):
    server = curve_server(replay_runner(recorded_h3r), shared_results=True)
    alice, bob = curve_client(server, "alice"), curve_client(server, "bob")
    job = alice.run_job(str(short_video), {}, timeout_s=30)["job"]
    assert _fetch_reply(bob, job)["type"] == "header"
    bob.request_status()
    [entry] = wait_for(bob, lambda m: m["type"] == "status")["jobs"]
    assert (entry["job"], entry["state"], entry["mine"]) == (job, "done", False) and entry["result_path"]


@pytest.mark.timeout(90)
def test_status_shows_others_only_as_queue_positions(curve_server, curve_client, recorded_h3r, short_video):
    server = curve_server(replay_runner(recorded_h3r, delay_s=0.05, repeat=50), peer_timeout_s=30)
    alice, bob = curve_client(server, "alice"), curve_client(server, "bob")
    alice.submit(str(short_video), {})
    a = wait_for(alice, lambda m: m["type"] == "accepted")
    bob.submit(str(short_video), {})
    b = wait_for(bob, lambda m: m["type"] == "accepted")
    bob.request_status()
    jobs = wait_for(bob, lambda m: m["type"] == "status")["jobs"]
    theirs = [j for j in jobs if not j["mine"]]
    assert theirs == [{"job": None, "state": "running", "queue_position": 0, "mine": False}]
    mine = [j for j in jobs if j["mine"]]
    assert [(j["job"], j["queue_position"], j["video"]) for j in mine] == [(b["job"], 1, str(short_video.resolve()))]
    assert a["job"] not in str(jobs) and "result_path" not in str(theirs)
    alice.cancel(a["job"])
    bob.cancel(b["job"])


@pytest.mark.timeout(60)
def test_limits_count_per_key_not_per_socket(curve_server, curve_client, recorded_h3r, short_video):
    server = curve_server(replay_runner(recorded_h3r, delay_s=0.05, repeat=50), max_jobs_per_client=1,
                          peer_timeout_s=30)
    alice, alice_again, bob = curve_client(server, "alice"), curve_client(server, "alice"), curve_client(server, "bob")
    alice.submit(str(short_video), {})
    a = wait_for(alice, lambda m: m["type"] in ("accepted", "error"))
    assert a["type"] == "accepted"
    alice_again.submit(str(short_video), {})
    refused = wait_for(alice_again, lambda m: m["type"] in ("accepted", "error"))
    assert refused["code"] == "too_many_jobs" and "all your connections" in refused["message"]
    bob.submit(str(short_video), {})
    b = wait_for(bob, lambda m: m["type"] in ("accepted", "error"))
    assert b["type"] == "accepted"
    alice.cancel(a["job"])
    bob.cancel(b["job"])


@pytest.mark.timeout(60)
def test_a_folder_swapped_for_a_link_while_queued_is_not_read(start_server, make_client, recorded_h3r, tmp_path):
    media, outside = tmp_path / "media", tmp_path / "outside"
    make_video(media / "shots" / "clip.mp4", frames=3)
    make_video(outside / "clip.mp4", frames=3)  # a different file the client may not read
    seen: list[str] = []
    slow = replay_runner(recorded_h3r, delay_s=0.05, repeat=20)

    def runner(engine, video, options, job_id, cancel):
        seen.append(video)
        yield from slow(engine, video, options, job_id, cancel)

    server = start_server(runner, media_roots=(media,), peer_timeout_s=30)
    client = make_client(server.endpoint)
    client.submit(str(media / "shots" / "clip.mp4"), {})  # occupies the worker
    first = wait_for(client, lambda m: m["type"] == "accepted")
    # the runner is a generator: it only runs (and records the path) once the worker pulls a message
    wait_for(client, lambda m: m.get("job") == first["job"] and m["type"] == "header")
    client.submit(str(media / "shots" / "clip.mp4"), {})
    second = wait_for(client, lambda m: m["type"] == "accepted" and m["job"] != first["job"])
    assert second["queue_position"] == 1
    shutil.move(media / "shots", tmp_path / "shots-moved")
    os.symlink(outside, media / "shots")  # the queued path now leads out of the media root
    client.cancel(first["job"])
    end = wait_for(client, lambda m: m.get("job") == second["job"] and m["type"] in ("done", "error", "cancelled"))
    assert end["type"] == "error" and end["code"] == "path_not_allowed" and "submit it again" in end["message"]
    assert len(seen) == 1  # the runner never saw the second job


def test_sizes_above_the_server_policy_are_refused(start_server, raw_dealer, recorded_h3r, short_video):
    server = start_server(replay_runner(recorded_h3r), max_size=512)
    raw = raw_dealer(server.endpoint)
    reply = raw.request(protocol.make_message("submit", video=str(short_video), options={"size": 4096}))
    assert reply["code"] == "bad_options" and "limit of 512" in reply["message"] and "--max-size" in reply["message"]
    assert raw.request(protocol.make_message("hello", software="t", role="client"))["limits"]["max_size"] == 512


@pytest.mark.timeout(120)
def test_a_client_that_never_grants_credits_gives_way_to_a_waiting_one(curve_server, curve_client, raw_dealer, keys,
                                                                       recorded_h3r, short_video):
    server = curve_server(replay_runner(recorded_h3r, delay_s=0.01, repeat=500), stream_queue_messages=2,
                          stall_timeout_s=600, busy_stall_timeout_s=1.0, peer_timeout_s=30)
    # a hostile client: submits with no credits and never reads (it stays within the peer timeout)
    hog = raw_dealer(server.endpoint, CURVE_SERVERKEY=keys["server"][0], CURVE_PUBLICKEY=keys["alice"][0],
                     CURVE_SECRETKEY=keys["alice"][1])
    accepted = hog.request(protocol.make_message("submit", video=str(short_video), options={}, credits=0))
    assert accepted["type"] == "accepted"
    bob = curve_client(server, "bob")
    t0 = time.monotonic()
    bob.submit(str(short_video), {})
    wait_for(bob, lambda m: m["type"] == "header", timeout=30)
    assert time.monotonic() - t0 < 20  # not the 600 s stall timeout
    assert server.board.get(accepted["job"]).state == "cancelled"
    end = read_result(accepted["result_path"]).end
    assert end["type"] == "cancelled" and "while other clients waited" in end["reason"]


@pytest.mark.timeout(300)
def test_cancel_interrupts_a_frame_at_the_costliest_allowed_size(start_server, make_client, engine, engine_runner,
                                                                 options_parser, short_video):
    server = start_server(engine_runner, engine, options_parser, max_size=1024, peer_timeout_s=60)
    client = make_client(server.endpoint, timeout_s=60)
    client.submit(str(short_video), {**FAST_OPTIONS, "size": 1024})
    accepted = wait_for(client, lambda m: m["type"] == "accepted")
    wait_for(client, lambda m: m["type"] == "header", timeout=120)
    # the header goes out just before frame 0 starts; at this size frame 0 takes seconds, the cancel
    # arrives within milliseconds (a fixed sleep here raced a quiet machine's faster frame)
    client.cancel(accepted["job"])
    got: list[dict] = []
    end = wait_for(client, lambda m: m["type"] in ("done", "error", "cancelled"), timeout=120, sink=got)
    assert end["type"] == "cancelled"
    assert end["frames"] == 0 and not [m for m in got if m["type"] == "frame"]  # stopped inside frame 0


@pytest.mark.timeout(60)
def test_stopping_the_server_tells_its_clients(start_server, make_client, recorded_h3r, short_video):
    server = start_server(replay_runner(recorded_h3r, delay_s=0.05, repeat=100), peer_timeout_s=30)
    client = make_client(server.endpoint, timeout_s=30)
    client.submit(str(short_video), {})
    accepted = wait_for(client, lambda m: m["type"] == "accepted")
    wait_for(client, lambda m: m["type"] == "frame")
    stopper = threading.Thread(target=server.stop)
    t0 = time.monotonic()
    stopper.start()
    got: list[dict] = []
    while client.state != "lost" and time.monotonic() - t0 < 10:
        got += client.poll(max_messages=50, timeout_ms=50)
    stopped_after = time.monotonic() - t0
    stopper.join(10)
    notes = {m.get("job"): m["code"] for m in got if m["type"] == "error"}
    assert notes == {accepted["job"]: "server_stopping", None: "server_stopping"}
    assert client.state == "lost" and stopped_after < 5  # told at once, not after the 30 s heartbeat timeout
