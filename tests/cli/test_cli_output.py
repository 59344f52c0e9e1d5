"""What the command line tells the user (issue 16 item 10): track counts that say what they count,
every missing model file at once, a help text for every option (the server's log and the result
file's body model: tests/server/test_quiet_leave.py)."""
from __future__ import annotations

import argparse
import time

import pytest

from backend.cli import main
from backend.cli.common import EXIT_SETUP
from backend.cli.main import build_parser
from blender_addon.core.track_tally import LONG_TRACK_FRAMES, TrackTally


def test_track_tally_counts_ids_and_the_lasting_ones():
    tally = TrackTally(long_frames=10)
    for n in (1, 1, 2, 9, 10, 250):
        tally.add({"type": "track", "n_frames": n})
    tally.add({"type": "frame", "n_frames": 99})  # not a track: ignored
    assert (tally.total, tally.long) == (6, 2)
    assert tally.describe() == "6 tracks (2 of at least 10 frames)"
    assert TrackTally().describe() == f"0 tracks (0 of at least {LONG_TRACK_FRAMES} frames)"


@pytest.mark.parametrize("command", ["infer", "serve"])
def test_both_missing_model_files_are_named_in_one_message(command, tmp_path, tennis_video, capsys):
    checkpoint, smplx = tmp_path / "none.pth", tmp_path / "no_smplx"
    common = ["--checkpoint", str(checkpoint), "--smplx", str(smplx), "--device", "cpu"]
    argv = (["infer", str(tennis_video), "-o", str(tmp_path / "o.h3r"), "--quiet", *common] if command == "infer"
            else ["serve", "--bind", "tcp://127.0.0.1:0", "--results-dir", str(tmp_path / "r"), *common])
    started = time.perf_counter()
    code = main(argv)
    err = capsys.readouterr().err
    assert code == EXIT_SETUP, err
    assert "2 model files are missing" in err
    assert f"checkpoint not found at {checkpoint}" in err and "human3r download" in err
    assert "No SMPL-X model at" in err and "smpl-x.is.tue.mpg.de" in err
    assert "loading the model" not in err and "Traceback" not in err
    assert time.perf_counter() - started < 30  # told before anything is loaded (generous on a loaded machine)
    assert not (tmp_path / "o.h3r").exists()


def test_doctor_reports_both_missing_files(tmp_path, capsys):
    code = main(["doctor", "--checkpoint", str(tmp_path / "none.pth"), "--smplx", str(tmp_path / "x"), "--quick",
                 "--port", "1"])
    out = capsys.readouterr().out
    assert code != 0
    assert "checkpoint not found at" in out and "No SMPL-X model at" in out
    assert "missing: checkpoint, SMPL-X model" in out


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


@pytest.mark.parametrize("command", ["serve", "infer", "batch", "refine", "export"])
def test_every_option_has_a_help_text(command):
    parser = _subparsers()[command]
    undocumented = [a.option_strings or [a.dest] for a in parser._actions
                    if not isinstance(a, argparse._HelpAction) and not (a.help or "").strip()]
    assert not undocumented, f"`human3r {command}` options without help: {undocumented}"
    assert len(parser._actions) > 3  # the parser really was built with its options
