"""`human3r refine` on a result file, the shared clean-up flags of `infer`, and a real engine job with
clean-up on (tiny model, CPU)."""
from __future__ import annotations

import hashlib

import numpy as np

from backend.cli import main
from blender_addon.core.resultfile import read_result
from tests.support.synthetic_job import write_job
from tests.motion.synthetic_motion import make_scene


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_refine_writes_a_normal_result_file_and_keeps_the_raw_one(tmp_path, capsys):
    raw = write_job(tmp_path / "raw.h3r", make_scene(seed=7, n_frames=90).messages)
    before = _digest(raw)
    out = tmp_path / "refined.h3r"
    assert main(["refine", str(raw), "-o", str(out), "--smooth", "1.5"]) == 0
    assert _digest(raw) == before
    got, orig = read_result(out), read_result(raw)
    assert not got.truncated and got.end is not None and got.end["type"] == "done"
    assert len(got.frames) == len(orig.frames) and len(got.tracks) == len(orig.tracks)
    ref = got.header["refinement"]
    assert ref["options"]["smooth"] == 1.5 and ref["ground"]["applied"] and ref["foot_lock"]["applied"]
    # what was done is recorded: the reach rules of the lock and the joints whose widths were cross-validated
    from blender_addon.core.motion import options as o
    reach = ref["foot_lock"]["params"]["reach_margin"]
    assert reach["held"] == [o.LOCK_REACH_MARGIN, o.LOCK_REACH_OBSERVED_MAX]
    assert reach["free"] == o.LOCK_FREE_REACH_MARGIN and reach["free_lengthen_at_most"] == o.LOCK_FREE_EXTEND_MAX
    assert ref["smooth"]["cross_validated"]["body_joints"] == [0, 3, 6, 9, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21]
    a = np.array(got.header["conventions"]["from_raw"])
    assert a.shape == (4, 4) and np.allclose(a[:3, :3] @ a[:3, :3].T, np.eye(3), atol=1e-9)
    assert got.frames[0]["people"]["contacts"].dtype == np.uint8
    assert "wrote" in capsys.readouterr().out


def test_refine_flags_off_and_bad_input(tmp_path, capsys):
    raw = write_job(tmp_path / "raw.h3r", make_scene(seed=8, n_frames=30, kinds=("stand",)).messages)
    out = tmp_path / "off.h3r"
    assert main(["refine", str(raw), "-o", str(out), "--no-ground", "--smooth", "0", "--foot-lock", "off"]) == 0
    got, orig = read_result(out), read_result(raw)
    for a, b in zip(got.frames, orig.frames):
        assert np.array_equal(a["people"]["transl"], b["people"]["transl"])
        assert np.array_equal(a["camera"]["cam_to_world"], b["camera"]["cam_to_world"])
    assert main(["refine", str(raw), "-o", str(tmp_path / "x.h3r"), "--smooth", "9"]) == 2
    assert "smooth" in capsys.readouterr().err
    (tmp_path / "junk.h3r").write_bytes(b"not a result file")
    assert main(["refine", str(tmp_path / "junk.h3r"), "-o", str(tmp_path / "y.h3r")]) == 2
    assert "not a Human3R result file" in capsys.readouterr().err
    assert main(["refine", str(raw), "-o", str(raw)]) == 2
    assert not (tmp_path / "x.h3r").exists() and not (tmp_path / "y.h3r").exists()


def test_infer_flags_map_to_job_options():
    from backend.cli.main import build_parser
    from backend.engine.options import options_from_args
    from backend.engine.options import JobOptions

    args = build_parser().parse_args(["infer", "v.mp4", "-o", "o.h3r"])
    assert JobOptions.from_dict(options_from_args(args)).cleanup is None  # raw output by default
    args = build_parser().parse_args(["infer", "v.mp4", "-o", "o.h3r", "--cleanup", "--ground", "feet", "--smooth", "2"])
    c = JobOptions.from_dict(options_from_args(args)).cleanup
    assert (c.ground, c.smooth, c.foot_lock) == ("feet", 2.0, True)


def test_engine_job_with_cleanup_streams_filtered_frames(tiny_engine, tennis_video):
    from backend.engine.job import iter_job_messages
    from blender_addon.core import protocol
    from tests.support.fixtures import tiny_job_options

    raw = list(iter_job_messages(tiny_engine, str(tennis_video), tiny_job_options(end=8), "raw"))
    msgs = list(iter_job_messages(tiny_engine, str(tennis_video),
                                  tiny_job_options(end=8, cleanup={"smooth": 1.0}), "clean"))
    for m in msgs:
        protocol.validate(m)
        protocol.decode(protocol.encode(m))
    # progress messages come every 0.5 s of wall time, so only the other messages line up one to one
    assert [m["type"] for m in msgs if m["type"] != "progress"] == [m["type"] for m in raw if m["type"] != "progress"]
    assert msgs[0]["refinement"]["stage"] == "live" and msgs[0]["options"]["cleanup"]["smooth"] == 1.0
    frames_raw = [m for m in raw if m["type"] == "frame"]
    frames = [m for m in msgs if m["type"] == "frame"]
    moved = [not np.allclose(a["people"]["transl"], b["people"]["transl"])
             for a, b in zip(frames_raw[1:], frames[1:]) if len(a["people"]["id"]) and
             np.array_equal(a["people"]["id"], b["people"]["id"])]
    assert any(moved), "the causal filter changed nothing"
