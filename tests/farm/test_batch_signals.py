"""`human3r batch` as a command, stopped by SIGTERM or by Ctrl-C (SIGINT to its process group) while a
clip runs: finished results stay valid, nothing temporary is left, the summary says what happened,
and the local Ray instance left no token file in the user's home.

Both commands run at the same time (each with its own local Ray instance, output folder and home), so
their start-ups (Ray, the worker, the model) overlap; each test then checks its own run.
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from blender_addon.core.resultfile import read_result
from tests.farm.clips import TINY_FLAGS

REPO = Path(__file__).resolve().parents[2]
NAMES = ["walk_a", "walk_b", "walk_c", "walk_d"]
HOWS = ["sigterm", "ctrl-c"]

if importlib.util.find_spec("ray") is None:
    pytest.skip("needs the farm extra (ray)", allow_module_level=True)


def finished_records(out: Path) -> list[dict]:
    records = []
    for path in out.glob("*.h3r.json"):
        try:
            records.append(json.loads(path.read_text()))
        except ValueError:
            continue  # written atomically, but be tolerant of a reader racing a rename
    return [r for r in records if r.get("status") == "done"]


@pytest.fixture(scope="module")
def stopped_runs(farm_clips, parity_fixture_dir, synthetic_smplx_path, tmp_path_factory) -> dict[str, dict]:
    """how -> {out, home, code, log}: one `human3r batch` per way of stopping it, all started together;
    each is stopped as soon as its first clip's result is complete."""
    runs = {}
    try:
        for how in HOWS:
            folder = tmp_path_factory.mktemp(f"stop_{how}")
            out, home = folder / "out", folder / "home"
            home.mkdir()
            cmd = [sys.executable, "-m", "backend", "batch", *(str(farm_clips[n]) for n in NAMES), "-o", str(out),
                   "--checkpoint", str(parity_fixture_dir / "checkpoint.pth"), "--smplx", str(synthetic_smplx_path),
                   "--device", "cpu", "--threads", "1", "--workers", "1", *TINY_FLAGS]
            env = {**os.environ, "HOME": str(home), "PYTHONPATH": str(REPO)}
            log_path = folder / "batch.log"
            log = open(log_path, "wb")
            proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
            runs[how] = {"out": out, "home": home, "log_path": log_path, "log": log, "proc": proc,
                         "running_at_signal": None, "code": None}
        deadline = time.monotonic() + 200
        waiting = set(HOWS)
        while waiting and time.monotonic() < deadline:
            for how in sorted(waiting):
                run = runs[how]
                proc = run["proc"]
                if proc.poll() is not None or finished_records(run["out"]):
                    run["running_at_signal"] = proc.poll() is None
                    if run["running_at_signal"]:
                        if how == "sigterm":
                            proc.send_signal(signal.SIGTERM)
                        else:
                            os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
                    waiting.discard(how)
            time.sleep(0.05)
        for run in runs.values():
            run["code"] = run["proc"].wait(timeout=60)
    finally:
        for run in runs.values():
            if run["proc"].poll() is None:
                os.killpg(run["proc"].pid, signal.SIGKILL)
                run["proc"].wait()
            run["log"].close()
    for run in runs.values():
        run["text"] = run["log_path"].read_text(errors="replace")
    return runs


@pytest.mark.timeout(300)
@pytest.mark.parametrize("how", HOWS)
def test_stop_keeps_finished_results(how, stopped_runs):
    run = stopped_runs[how]
    out, home, text = run["out"], run["home"], run["text"]
    assert run["running_at_signal"], text[-3000:]
    assert run["code"] == 130, text[-3000:]
    summary = json.loads((out / "batch.json").read_text())
    assert summary["interrupted"] is True
    status = {c["name"]: c["status"] for c in summary["clips"]}
    done = [n for n in NAMES if status[n] == "done"]
    assert done and set(status.values()) <= {"done", "cancelled", "not_run"} and len(done) < len(NAMES)
    for name in done:
        result = read_result(out / f"{name}.h3r")
        assert result.end["type"] == "done" and not result.truncated and len(result.frames) > 0
    for name in set(NAMES) - set(done):
        assert not (out / f"{name}.h3r").exists() and not (out / f"{name}.h3r.json").exists()
    assert list(out.glob(".*")) == []  # no attempt or temporary files
    assert not (home / ".ray").exists()  # token authentication off for the loopback-only instance
    # progress: one line per clip start and end (the overall bar is on the same stream)
    assert f"start  {NAMES[0]} (14 frames) on worker 0" in text
    assert all(f"done   {name}: " in text for name in done)
    assert re.search(r"batch: \d+ done, 0 skipped, 0 failed, \d+ cancelled, \d+ not run", text)
