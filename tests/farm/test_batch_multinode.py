"""A node lost mid-clip on a multi-node Ray cluster (three Ray nodes on this machine): the clip is
re-run from its first frame on the surviving node and completes; nothing temporary is left."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from blender_addon.core.resultfile import read_result
from tests.farm.clips import moving_blob
from tests.video.media import write_video

REPO = Path(__file__).resolve().parents[2]

if importlib.util.find_spec("ray") is None:
    pytest.skip("needs the farm extra (ray)", allow_module_level=True)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_node_lost_mid_clip(farm_clips, parity_fixture_dir, synthetic_smplx_path, tmp_path):
    long_clip = write_video(tmp_path / "long.mp4", [moving_blob(128, 96, i, 3) for i in range(45)])
    clips = {"long": [str(long_clip), 45], "walk_b": [str(farm_clips["walk_b"]), 11]}
    out = tmp_path / "out"
    run = subprocess.run([sys.executable, str(REPO / "tests" / "farm" / "multinode_run.py"), json.dumps(clips),
                          str(out), str(parity_fixture_dir / "checkpoint.pth"), str(synthetic_smplx_path)],
                         cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True,
                         timeout=280)
    assert run.returncode == 0, run.stderr[-4000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["target"] == "long" and report["killed"] is not None
    status = {c["name"]: c for c in report["clips"]}
    assert status["long"]["status"] == "done" and status["long"]["attempts"] == 2, report["events"]
    assert status["walk_b"]["status"] == "done" and status["walk_b"]["attempts"] == 1
    ends = [e for e in report["events"] if e["event"] == "end" and e["clip"] == "long"]
    assert len(ends) == 1 and ends[0]["node"] != report["killed"]  # finished on the surviving node
    assert [e["event"] for e in report["events"] if e["clip"] == "long"].count("retry") == 1
    result = read_result(out / "long.h3r")
    assert result.end["type"] == "done" and [f["index"] for f in result.frames] == list(range(45))
    assert list(out.glob(".*")) == []  # the lost attempt's file was removed
