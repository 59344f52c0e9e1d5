"""`human3r infer --live URL -o OUT.h3r`: a real process reads a stream from a sender process with
the tiny model and writes results until Ctrl-C (SIGINT), which ends the file with `cancelled`."""
from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from blender_addon.core.resultfile import ResultFileReader
from tests.support.live_rig import REPO, Loopback, Sender


def _frames(path):
    try:
        return [m for m in ResultFileReader(path) if m["type"] == "frame"]
    except Exception:  # being written: the header may not be complete yet
        return []


@pytest.mark.timeout(240)
def test_infer_live_until_ctrl_c(tmp_path, parity_fixture_dir, synthetic_smplx_path):
    loop = Loopback.make("rtmp")
    out = tmp_path / "live.h3r"
    cmd = [sys.executable, "-m", "backend", "infer", "--live", loop.receive_url, "-o", str(out),
           "--checkpoint", str(parity_fixture_dir / "checkpoint.pth"), "--smplx", str(synthetic_smplx_path),
           "--size", "112", "--conf-threshold", "0", "--quiet"]
    err_path = tmp_path / "infer.stderr"
    with open(err_path, "wb") as err:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=err, text=True)
        sender = Sender(loop, seconds=120.0)
        try:
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline and proc.poll() is None and len(_frames(out)) < 2:
                time.sleep(0.2)
            assert proc.poll() is None, err_path.read_text(errors="replace")[-2000:]
            assert len(_frames(out)) >= 2, err_path.read_text(errors="replace")[-2000:]
            proc.send_signal(signal.SIGINT)
            stdout, _ = proc.communicate(timeout=60)
        finally:
            sender.stop()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 0, err_path.read_text(errors="replace")[-2000:]
    assert "stopped:" in stdout
    msgs = list(ResultFileReader(out))
    assert msgs[0]["type"] == "header" and msgs[0]["video"]["kind"] == "live"
    assert msgs[0]["video"]["path"] == "live:cli" and msgs[0]["video"]["source"] == "rtmp"
    assert msgs[-1]["type"] == "cancelled"
    frames = [m for m in msgs if m["type"] == "frame"]
    assert msgs[-1]["frames"] == len(frames) >= 2
    assert all(b["time"] > a["time"] for a, b in zip(frames, frames[1:]))


def test_infer_needs_a_video_or_a_live_url(tmp_path, capsys):
    from backend.cli import main

    assert main(["infer", "-o", str(tmp_path / "x.h3r")]) == 2
    assert "either a VIDEO or --live URL" in capsys.readouterr().err
    assert main(["infer", "--live", "srt://127.0.0.1:9000", "-o", str(tmp_path / "x.h3r")]) == 2
    assert "unsupported scheme" in capsys.readouterr().err
