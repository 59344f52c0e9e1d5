"""CI smoke test of scripts/bench_gpu.py on the CPU with the tiny preset: every variant runs, the
JSON has the promised figures, and the host-sync counts show the engine path's two waits."""
from __future__ import annotations

import json

from tests.support.scripts import load_script


def _load_bench():
    return load_script("bench_gpu")


def test_bench_gpu_smoke_on_cpu(tmp_path):
    bench = _load_bench()
    out = tmp_path / "bench.json"
    assert bench.main(["--device", "cpu", "--presets", "tiny", "--size", "112x80", "--frames", "2", "--warmup", "1",
                       "--people", "2", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    tiny = result["presets"]["tiny"]
    variants = tiny["variants"]
    assert set(variants) == {"reference", "parity", "fast"}
    for v in variants.values():
        assert v["fps"] > 0 and v["frames"] == 2 and v["people"] == 2 and v["peak_mb"] > 0
        assert set(v["stages"]) >= {"croco_encoder", "dinov2", "decode", "scene_heads"}
    # engine path: the person-count read and the one device->host copy for the tracker
    assert variants["parity"]["host_syncs_per_frame"] == variants["fast"]["host_syncs_per_frame"] == 2
    assert variants["reference"]["host_syncs_per_frame"] > 2  # its tracker reads values on the device
    assert variants["reference"]["speedup_vs_reference"] == 1.0
    errors = tiny["fast_vs_parity"]
    assert errors["same_people"] == 1.0
    assert 0 < errors["camera_pose"] < 5e-2 and 0 < errors["pts3d_in_self_view"] < 5e-2
    assert tiny["variants"]["parity"]["stages"]["dinov2"]["gflop"] > 0
