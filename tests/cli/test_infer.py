"""`human3r infer` end to end on real video frames (tiny model), crash safety, and bad inputs."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from backend.cli import main
from blender_addon.core.resultfile import read_result

REPO = Path(__file__).resolve().parents[2]
TINY = ["--size", "112", "--conf-threshold", "0", "--keep-human-points"]


def infer_args(video, out, checkpoint, smplx, *extra):
    return ["infer", str(video), "-o", str(out), "--checkpoint", str(checkpoint), "--smplx", str(smplx),
            "--device", "cpu", "--quiet", *TINY, *extra]


def check_rigid(c2w: np.ndarray) -> None:
    assert c2w.shape == (4, 4) and c2w.dtype == np.float32
    rot = c2w[:3, :3].astype(np.float64)
    assert np.allclose(rot @ rot.T, np.eye(3), atol=1e-5)
    assert abs(np.linalg.det(rot) - 1) < 1e-5
    assert np.array_equal(c2w[3], [0, 0, 0, 1])


PEOPLE_SHAPES = {"id": (), "score": (), "global_orient": (3,), "body_pose": (21, 3), "left_hand_pose": (15, 3),
                 "right_hand_pose": (15, 3), "jaw_pose": (3,), "leye_pose": (3,), "reye_pose": (3,),
                 "betas": (10,), "expression": (10,), "transl": (3,), "head_xy": (2,)}


def check_frame(frame: dict, width: int, height: int, conf_threshold: float) -> None:
    cam = frame["camera"]
    check_rigid(cam["cam_to_world"])
    k = cam["K"]
    assert k.shape == (3, 3) and k.dtype == np.float32
    assert k[0, 0] > 0 and k[1, 1] > 0 and k[0, 1] == 0 and np.array_equal(k[2], [0, 0, 1]) and k[1, 0] == 0
    assert 0 <= k[0, 2] <= width and 0 <= k[1, 2] <= height
    assert (cam["width"], cam["height"]) == (width, height)
    people = frame["people"]
    n = len(people["id"])
    assert set(people) >= set(PEOPLE_SHAPES)
    for key, shape in PEOPLE_SHAPES.items():
        arr = people[key]
        assert arr.shape == (n, *shape), key
        assert arr.dtype == (np.int32 if key == "id" else np.float32), key
        assert np.isfinite(arr).all(), key
    assert len(set(people["id"].tolist())) == n
    assert ((people["score"] >= 0.3) & (people["score"] <= 1)).all()
    assert np.array_equal(people["leye_pose"], np.zeros((n, 3)))
    pts = frame["points"]
    m = len(pts["xyz"])
    assert pts["xyz"].shape == (m, 3) and pts["xyz"].dtype == np.float32 and np.isfinite(pts["xyz"]).all()
    assert pts["rgb"].shape == (m, 3) and pts["rgb"].dtype == np.uint8
    assert pts["conf"].shape == (m,) and pts["conf"].dtype == np.float32 and (pts["conf"] > conf_threshold).all()


def test_infer_end_to_end(tmp_path, tennis_video, parity_fixture_dir, synthetic_smplx_path, capsys):
    out = tmp_path / "tennis.h3r"
    code = main(infer_args(tennis_video, out, parity_fixture_dir / "checkpoint.pth", synthetic_smplx_path,
                           "--end", "6", "--reset-interval", "3"))
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "6 frames" in printed.out and str(out) in printed.out
    import torch

    from backend.engine.stream import available_cores

    assert torch.get_num_threads() == max(1, available_cores() - 1)  # one core left to the decoder
    res = read_result(out)
    assert not res.truncated and res.end["type"] == "done"
    lasting = sum(t["n_frames"] >= 10 for t in res.tracks)  # track ids, not people, and how many last
    assert f" {len(res.tracks)} track" in printed.out and f"({lasting} of at least 10 frames)" in printed.out
    head = res.header
    video = head["video"]
    assert (video["width"], video["height"], video["frame_count"]) == (812, 720, 312)
    assert head["options"]["reset_interval"] == 3 and head["options"]["size"] == 112
    assert len(head["model"]["checkpoint_digest"]) == 64
    assert head["smplx"]["flat_hand_mean"] is True and head["smplx"]["num_betas"] == 10
    assert "intrinsics" in head["conventions"] and "crop" in head["conventions"]["intrinsics"]
    bm = head["body_model"]
    assert bm["faces"].dtype == np.int32 and bm["J_regressor"].shape == (55, 10475)
    assert bm["parents"].dtype == np.int32 and bm["lbs_weights"].dtype == np.float32
    assert [f["index"] for f in res.frames] == list(range(6))
    times = np.array([f["time"] for f in res.frames])
    assert times[0] == 0 and np.all(np.diff(times) > 0)
    assert np.allclose(times, np.arange(6) / video["fps"], atol=0.03)
    for f in res.frames:
        check_frame(f, 812, 720, 0.0)
    assert [f["chunk"] for f in res.frames] == [0, 0, 0, 1, 1, 1]  # reset after frame 2, realigned online
    assert sum(len(f["points"]["xyz"]) for f in res.frames) > 0
    ids = {int(i) for f in res.frames for i in f["people"]["id"]}
    assert sorted(t["id"] for t in res.tracks) == sorted(ids)
    scene = res.end["scene_points"]
    assert scene["xyz"].dtype == np.float32 and scene["rgb"].dtype == np.uint8 and len(scene["xyz"]) > 0
    assert res.end["frames"] == 6 and res.end["people"] == len(ids)


@pytest.mark.timeout(180)
def test_sigkill_leaves_a_readable_file(tmp_path, tennis_video, parity_fixture_dir, synthetic_smplx_path):
    out = tmp_path / "killed.h3r"
    cmd = [sys.executable, "-m", "backend", *infer_args(tennis_video, out, parity_fixture_dir / "checkpoint.pth",
                                                         synthetic_smplx_path, "--end", "300")]
    err_path = tmp_path / "infer.stderr"
    err_file = open(err_path, "wb")  # a file, not a pipe: an unread pipe could fill up and block the child
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=err_file)
    try:
        deadline = time.monotonic() + 150
        frames = 0
        while time.monotonic() < deadline and proc.poll() is None:
            if out.exists():
                frames = len(read_result(out).frames)
                if frames >= 3:
                    break
            time.sleep(0.05)
        assert proc.poll() is None, f"infer ended early: {err_path.read_text(errors='replace')[-2000:]}"
        assert frames >= 3
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        err_file.close()
    res = read_result(out)
    assert res.header is not None and res.end is None
    assert len(res.frames) >= frames
    assert [f["index"] for f in res.frames] == list(range(len(res.frames)))
    for f in res.frames:
        check_frame(f, 812, 720, 0.0)


def run_cli(args, capsys):
    code = main(args)
    return code, capsys.readouterr().err


def test_missing_video(tmp_path, parity_fixture_dir, synthetic_smplx_path, capsys):
    code, err = run_cli(infer_args(tmp_path / "missing.mp4", tmp_path / "o.h3r", parity_fixture_dir / "checkpoint.pth",
                                   synthetic_smplx_path), capsys)
    assert code == 4 and "missing.mp4" in err and "no such file" in err
    assert not (tmp_path / "o.h3r").exists()


def test_not_a_video(tmp_path, parity_fixture_dir, synthetic_smplx_path, capsys):
    fake = tmp_path / "notes.mp4"
    fake.write_text("this is not a video\n" * 100)
    code, err = run_cli(infer_args(fake, tmp_path / "o.h3r", parity_fixture_dir / "checkpoint.pth",
                                   synthetic_smplx_path), capsys)
    assert code == 4 and "not a readable video" in err


def test_missing_checkpoint(tmp_path, tennis_video, synthetic_smplx_path, capsys):
    code, err = run_cli(infer_args(tennis_video, tmp_path / "o.h3r", tmp_path / "human3r.pth", synthetic_smplx_path),
                        capsys)
    assert code == 3 and "checkpoint not found" in err and "human3r download" in err


def test_missing_smplx(tmp_path, tennis_video, parity_fixture_dir, capsys):
    code, err = run_cli(infer_args(tennis_video, tmp_path / "o.h3r", parity_fixture_dir / "checkpoint.pth",
                                   tmp_path / "nowhere"), capsys)
    assert code == 3 and "https://smpl-x.is.tue.mpg.de" in err and "SMPLX_NEUTRAL.npz" in err


def test_bad_thread_count_is_refused_before_loading(tmp_path, tennis_video, capsys):
    code, err = run_cli(infer_args(tennis_video, tmp_path / "o.h3r", tmp_path / "no.pth", tmp_path / "no.npz",
                                   "--threads", "0"), capsys)
    assert code == 2 and "--threads must be >= 1, got 0" in err


def test_bad_option(tmp_path, tennis_video, parity_fixture_dir, synthetic_smplx_path, capsys):
    code, err = run_cli(infer_args(tennis_video, tmp_path / "o.h3r", parity_fixture_dir / "checkpoint.pth",
                                   synthetic_smplx_path, "--stride", "0"), capsys)
    assert code == 2 and "stride" in err
