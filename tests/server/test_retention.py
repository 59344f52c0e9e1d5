"""The results folder stays bounded: old files and the oldest over the size budget go, protected and
foreign files stay, and a running server prunes after each job."""
from __future__ import annotations

import os
import time
from pathlib import Path

from backend.server.retention import prune_results
from blender_addon.core import protocol

from .conftest import replay_runner, wait_for

DAY = 86400.0


def make_file(folder: Path, name: str, size: int, age_days: float, now: float) -> Path:
    path = folder / name
    path.write_bytes(b"x" * size)
    os.utime(path, (now - age_days * DAY, now - age_days * DAY))
    return path


def test_age_then_size_oldest_first(tmp_path):
    now = time.time()
    files = {name: make_file(tmp_path, f"{name}.h3r", size, age, now)
             for name, size, age in [("a", 400, 40), ("b", 300, 10), ("c", 300, 5), ("d", 300, 1)]}
    foreign = make_file(tmp_path, "notes.txt", 5000, 90, now)  # not a result file: never touched
    deleted = prune_results(tmp_path, max_age_s=30 * DAY, max_bytes=700, now=now)
    assert deleted == [files["a"], files["b"]]  # a: too old; b: oldest while 900 bytes > 700
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.h3r", "d.h3r", "notes.txt"]
    assert foreign.exists()


def test_protected_files_stay_and_count_against_the_budget(tmp_path):
    now = time.time()
    running = make_file(tmp_path, "run.h3r", 600, 50, now)
    old = make_file(tmp_path, "old.h3r", 300, 3, now)
    new = make_file(tmp_path, "new.h3r", 300, 1, now)
    deleted = prune_results(tmp_path, max_age_s=30 * DAY, max_bytes=1000, protected=[running], now=now)
    assert deleted == [old] and running.exists() and new.exists()  # 1200 > 1000: the oldest unprotected goes


def test_zero_means_no_limit_and_a_missing_folder_is_fine(tmp_path):
    now = time.time()
    make_file(tmp_path, "a.h3r", 10_000, 400, now)
    assert prune_results(tmp_path, max_age_s=0, max_bytes=0, now=now) == []
    assert prune_results(tmp_path / "missing", max_age_s=1, max_bytes=1, now=now) == []


def until(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def test_server_prunes_at_start_and_after_each_job(start_server, raw_dealer, recorded_h3r, short_video, tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    stale = make_file(results, "stale.h3r", 100, 60, time.time())
    size = recorded_h3r.stat().st_size
    # no age limit here, but room for about one and a half result files
    server = start_server(replay_runner(recorded_h3r), results_keep_days=0, results_max_gb=1.5 * size / 1e9)
    assert stale.exists()  # 100 bytes fit the budget: nothing to delete at start-up yet
    raw = raw_dealer(server.endpoint)
    jobs = []
    for _ in range(2):
        raw.send_msg(protocol.make_message("submit", video=str(short_video), options={}, credits=10_000))
        while (reply := raw.recv())["type"] != "accepted":
            pass
        jobs.append(reply["job"])
        until(lambda: server.board.get(jobs[-1]).state == "done")
    # after the second job the oldest files go until the rest fits: the stale one and the first job's
    until(lambda: not (results / f"{jobs[0]}.h3r").exists())
    assert not stale.exists() and (results / f"{jobs[1]}.h3r").exists()
    raw.send_msg(protocol.make_message("fetch", jobs[0]))
    while (reply := raw.recv())["type"] != "error":
        pass
    assert reply["code"] == "unknown_job" and "no results" in reply["message"]


def test_server_deletes_files_past_the_age_limit_at_start(start_server, recorded_h3r, tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    now = time.time()
    stale, recent = make_file(results, "stale.h3r", 100, 31, now), make_file(results, "recent.h3r", 100, 29, now)
    start_server(replay_runner(recorded_h3r), results_keep_days=30)
    assert not stale.exists() and recent.exists()
