"""CI smoke test of scripts/bench_live.py: one short UDP case per sender setting with the 200 ms stub
runs end to end, prints the settings it used, and writes every figure per run and as medians."""
from __future__ import annotations

import json

import pytest

from tests.support.scripts import load_script


def _load_bench():
    return load_script("bench_live")


def test_bench_live_smoke(tmp_path, capsys):
    bench = _load_bench()
    out = tmp_path / "bench.json"
    assert bench.main(["--seconds", "2", "--runs", "1", "--models", "stub", "--transports", "udp", "--json",
                       str(out)]) == 0
    printed = capsys.readouterr().out
    assert "ffmpeg-default: libx264 ultrafast zerolatency g=15 bf=0; muxer FFmpeg defaults" in printed
    assert "low-latency: libx264 ultrafast zerolatency g=15 bf=0; muxer flush_packets=1" in printed
    assert "omit_video_pes_length=0" in printed
    result = json.loads(out.read_text())
    assert [(r["transport"], r["sender"]) for r in result["runs"]] == [("udp", "ffmpeg-default"),
                                                                        ("udp", "low-latency")]
    for r in result["medians"]:
        assert r["runs"] == 1 and r["frames"] >= 3
        assert r["step_p50"] >= 0.2
        assert 0 < r["added_p50"] <= r["added_p95"] < r["glass_p95"]
        assert 0 < r["xport_p95"] and 0 < r["pre_p95"] and 0 <= r["post_p95"]
        assert 0.5 < r["drop_rate"] < 1  # 30 fps in, 5 per second out


def test_bench_live_refuses_unknown_sender_settings(capsys):
    with pytest.raises(SystemExit):
        _load_bench().main(["--senders", "fast"])
    assert "unknown sender settings 'fast'; choose from ffmpeg-default, low-latency" in capsys.readouterr().err
