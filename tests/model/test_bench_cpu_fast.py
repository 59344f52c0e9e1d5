"""CI smoke test of scripts/bench_cpu_fast.py with the tiny preset: the variants' frames run
interleaved and the JSON has the figures it promises (speeds are measured by hand, not here)."""
from __future__ import annotations

import json

import torch

from tests.support.scripts import load_script


def test_bench_cpu_fast_smoke(tmp_path):
    bench = load_script("bench_cpu_fast")
    out = tmp_path / "bench.json"
    threads = torch.get_num_threads()
    assert bench.main(["--preset", "tiny", "--size", "112x80", "--frames", "2", "--threads", "1", "--ablation",
                       "--clock", "cpu", "--json", str(out)]) == 0
    torch.set_num_threads(threads)
    result = json.loads(out.read_text())
    assert set(result["variants"]) == {"reference", "fast", "fast-fp32-tail"} and result["clock"] == "cpu"
    assert result["people"] == {"reference": 2, "fast": 2, "fast-fp32-tail": 2}
    for figures in result["variants"].values():
        assert len(figures["s_all"]) == 2 and figures["s_median"] > 0
    assert result["variants"]["reference"]["speedup_vs_reference"] == 1.0
    assert len(result["loadavg_before"]) == 3
