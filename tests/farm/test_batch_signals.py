"""`human3r batch` as a command, stopped by SIGTERM or by Ctrl-C (SIGINT to its process group) while a
clip runs: finished results stay valid, nothing temporary is left, the summary says what happened,
and the local Ray instance left no token file in the user's home."""
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


@pytest.mark.timeout(240)
@pytest.mark.parametrize("how", ["sigterm", "ctrl-c"])
def test_stop_keeps_finished_results(how, farm_clips, parity_fixture_dir, synthetic_smplx_path, tmp_path):
    out, home = tmp_path / "out", tmp_path / "home"
    home.mkdir()
    names = ["walk_a", "walk_b", "walk_c", "walk_d"]
    cmd = [sys.executable, "-m", "backend", "batch", *(str(farm_clips[n]) for n in names), "-o", str(out),
           "--checkpoint", str(parity_fixture_dir / "checkpoint.pth"), "--smplx", str(synthetic_smplx_path),
           "--device", "cpu", "--threads", "1", "--workers", "1", *TINY_FLAGS]
    env = {**os.environ, "HOME": str(home), "PYTHONPATH": str(REPO)}
    log = open(tmp_path / "batch.log", "wb")
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 200
        while time.monotonic() < deadline and proc.poll() is None and not finished_records(out):
            time.sleep(0.05)
        assert proc.poll() is None, (tmp_path / "batch.log").read_text(errors="replace")[-3000:]
        if how == "sigterm":
            proc.send_signal(signal.SIGTERM)
        else:
            os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
    text = (tmp_path / "batch.log").read_text(errors="replace")
    assert code == 130, text[-3000:]
    summary = json.loads((out / "batch.json").read_text())
    assert summary["interrupted"] is True
    status = {c["name"]: c["status"] for c in summary["clips"]}
    done = [n for n in names if status[n] == "done"]
    assert done and set(status.values()) <= {"done", "cancelled", "not_run"} and len(done) < len(names)
    for name in done:
        result = read_result(out / f"{name}.h3r")
        assert result.end["type"] == "done" and not result.truncated and len(result.frames) > 0
    for name in set(names) - set(done):
        assert not (out / f"{name}.h3r").exists() and not (out / f"{name}.h3r.json").exists()
    assert list(out.glob(".*")) == []  # no attempt or temporary files
    assert not (home / ".ray").exists()  # token authentication off for the loopback-only instance
    # progress: one line per clip start and end (the overall bar is on the same stream)
    assert f"start  {names[0]} (14 frames) on worker 0" in text
    assert all(f"done   {name}: " in text for name in done)
    assert re.search(r"batch: \d+ done, 0 skipped, 0 failed, \d+ cancelled, \d+ not run", text)
