"""`human3r infer` never destroys what is at -o, checks the output before loading the model, tells what
was kept when the disk fills, and ends with a `cancelled` record on SIGTERM."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from backend.cli import main
from backend.engine.result_output import ResultOutput
from blender_addon.core import protocol
from blender_addon.core.resultfile import ResultFileWriter, read_result

from .test_infer import REPO, infer_args

MISSING_CHECKPOINT = "/nonexistent/human3r.pth"  # loading it would fail: errors before it prove the order


def run_cli(args, capsys):
    code = main(args)
    return code, capsys.readouterr().err


def test_output_that_is_the_input_is_refused(tmp_path, tennis_video, synthetic_smplx_path, capsys):
    video = tmp_path / "clip.mp4"
    video.write_bytes(tennis_video.read_bytes())
    before = video.read_bytes()
    code, err = run_cli(infer_args(video, video, MISSING_CHECKPOINT, synthetic_smplx_path), capsys)
    assert code == 2 and "is the input" in err and "-o clip.h3r" in err
    link = tmp_path / "result.h3r"
    link.symlink_to(video)  # same file after resolving the link
    code, err = run_cli(infer_args(video, link, MISSING_CHECKPOINT, synthetic_smplx_path, "--overwrite"), capsys)
    assert code == 2 and "is the input" in err
    assert video.read_bytes() == before


def test_existing_file_that_is_not_a_result_needs_overwrite(tmp_path, tennis_video, parity_fixture_dir,
                                                            synthetic_smplx_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("keep me")
    code, err = run_cli(infer_args(tennis_video, notes, MISSING_CHECKPOINT, synthetic_smplx_path), capsys)
    assert code == 2 and "is not a Human3R result file" in err and "--overwrite" in err
    assert notes.read_text() == "keep me"
    code, err = run_cli(infer_args(tennis_video, notes, parity_fixture_dir / "checkpoint.pth", synthetic_smplx_path,
                                   "--end", "1", "--overwrite"), capsys)
    assert code == 0, err
    assert len(read_result(notes).frames) == 1
    # a result file is replaced without --overwrite (re-running a job is the normal case)
    code, err = run_cli(infer_args(tennis_video, notes, parity_fixture_dir / "checkpoint.pth", synthetic_smplx_path,
                                   "--end", "2"), capsys)
    assert code == 0, err
    assert len(read_result(notes).frames) == 2
    assert not list(tmp_path.glob(".*.part"))


def test_devices_and_unwritable_folders_are_refused_before_loading(tmp_path, tennis_video, synthetic_smplx_path,
                                                                   capsys):
    code, err = run_cli(infer_args(tennis_video, "/dev/full", MISSING_CHECKPOINT, synthetic_smplx_path,
                                   "--overwrite"), capsys)
    assert code == 2 and "not a regular file" in err
    code, err = run_cli(infer_args(tennis_video, "/proc/self/result.h3r", MISSING_CHECKPOINT,
                                   synthetic_smplx_path), capsys)
    assert code == 2 and "cannot write in" in err and "choose another folder" in err


def test_a_run_without_frames_leaves_an_existing_result_untouched(tmp_path):
    old = tmp_path / "old.h3r"
    with ResultFileWriter(old) as writer:
        writer.write(protocol.make_message("cancelled", "old", 0, frames=0))
    before = old.read_bytes()
    with ResultOutput(old) as out:
        out.write(protocol.error_message("bad_video", "broken", "new", 0))
        assert old.read_bytes() == before  # written under a temporary name so far
    assert old.read_bytes() == before and not list(tmp_path.glob(".*.part"))
    fresh = tmp_path / "fresh.h3r"
    with ResultOutput(fresh) as out:
        out.write(protocol.error_message("bad_video", "broken", "new", 0))
    assert read_result(fresh).end["code"] == "bad_video"  # nothing was there: the error record is kept


def test_full_disk_says_what_was_kept(tmp_path, tennis_video, parity_fixture_dir, synthetic_smplx_path, capsys,
                                      small_tmpfs):
    probe = tmp_path / "probe.h3r"
    assert main(infer_args(tennis_video, probe, parity_fixture_dir / "checkpoint.pth", synthetic_smplx_path,
                           "--end", "1")) == 0
    capsys.readouterr()
    # room for the header, the first frame and a little more, never for 40 frames
    room = probe.stat().st_size + 8192
    disk = small_tmpfs((room // 4096 + 1) * 4096)
    out = disk / "full.h3r"
    code, err = run_cli(infer_args(tennis_video, out, parity_fixture_dir / "checkpoint.pth", synthetic_smplx_path,
                                   "--end", "40"), capsys)
    assert code == 1
    assert "the disk is full" in err and "kept and readable in" in err and "Traceback" not in err
    res = read_result(out)
    assert res.header is not None and len(res.frames) >= 1
    assert f"the {len(res.frames)} frames written before it" in err


@pytest.mark.timeout(180)
def test_sigterm_ends_with_a_cancelled_record(tmp_path, tennis_video, parity_fixture_dir, synthetic_smplx_path):
    out = tmp_path / "terminated.h3r"
    cmd = [sys.executable, "-m", "backend", *infer_args(tennis_video, out, parity_fixture_dir / "checkpoint.pth",
                                                         synthetic_smplx_path, "--end", "300")]
    err_path = tmp_path / "infer.stderr"
    with open(err_path, "wb") as err_file:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=err_file,
                                env={**os.environ, "PYTHONPATH": str(REPO)})
        try:
            deadline = time.monotonic() + 150
            while time.monotonic() < deadline and proc.poll() is None:
                if out.exists() and len(read_result(out).frames) >= 2:
                    break
                time.sleep(0.05)
            assert proc.poll() is None, err_path.read_text(errors="replace")[-2000:]
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 130
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    res = read_result(out)
    assert res.end is not None and res.end["type"] == "cancelled"
    assert res.end["frames"] == len(res.frames) >= 2
