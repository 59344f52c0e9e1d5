"""Hostile or odd input gets its own error code and a message that says what to do: very long paths,
absurd frame indices, strip-shaped videos, non-UTF-8 file names; image folders are accepted."""
from __future__ import annotations

import argparse
import os
import shutil

import numpy as np
import pytest

from backend.cli import infer as infer_cli
from blender_addon.core import protocol
from blender_addon.core.resultfile import read_result

from .conftest import FAST_OPTIONS, make_video, replay_runner


def _submit(raw, video: str, **options) -> dict:
    return raw.request(protocol.make_message("submit", video=video, options=options, credits=100))


def test_a_path_too_long_for_the_file_system_is_named(start_server, raw_dealer, recorded_h3r, media_dir):
    server = start_server(replay_runner(recorded_h3r))
    raw = raw_dealer(server.endpoint)
    for path in (str(media_dir) + "/" + "a" * 5000 + ".mp4", str(media_dir) + ("/" + "b" * 200) * 25 + ".mp4"):
        reply = _submit(raw, path)
        assert reply["code"] == "path_not_allowed" and "shorter path" in reply["message"], reply


def test_a_start_beyond_any_video_is_a_bad_option(start_server, raw_dealer, recorded_h3r, short_video,
                                                   options_parser):
    server = start_server(replay_runner(recorded_h3r), options_parser=options_parser)
    raw = raw_dealer(server.endpoint)
    reply = _submit(raw, str(short_video), start=2**64 - 1)
    assert reply["code"] == "bad_options" and "'start'" in reply["message"] and "such as 0" in reply["message"]
    reply = _submit(raw, str(short_video), start=5, end=2**63)  # the frame cap shortens an absurd end
    assert reply["type"] == "accepted" and reply["options"]["end"] == 5 + 100_000
    raw.send_msg(protocol.make_message("cancel", reply["job"]))


@pytest.mark.timeout(120)
def test_a_strip_shaped_video_says_which_size_works(start_server, make_client, engine, engine_runner,
                                                    options_parser, media_dir):
    strip = make_video(media_dir / "strip.mp4", frames=2, width=2048, height=16)
    server = start_server(engine_runner, engine, options_parser)
    end = make_client(server.endpoint, timeout_s=60).run_job(str(strip), FAST_OPTIONS, timeout_s=60)
    assert end["type"] == "error" and end["code"] == "bad_video"
    assert "2048x16" in end["message"] and "raise --size to" in end["message"] and "ValueError" not in end["message"]


def _write_images(folder, count: int):
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        img = np.zeros((64, 96, 3), dtype=np.uint8)
        img[10:40, 5 + 6 * i:35 + 6 * i] = (250, 200, 40)
        Image.fromarray(img).save(folder / f"{i:04d}.png")
    return folder


@pytest.mark.timeout(120)
def test_image_folders_inside_the_media_root_are_accepted(start_server, make_client, raw_dealer, engine,
                                                          engine_runner, options_parser, media_dir, tmp_path):
    folder = _write_images(media_dir / "shots", 3)
    server = start_server(engine_runner, engine, options_parser)
    end = make_client(server.endpoint, timeout_s=60).run_job(str(folder), FAST_OPTIONS, timeout_s=60)
    assert end["type"] == "done" and end["frames"] == 3
    # each image is checked like a video path: one linking out of the roots spoils the folder
    outside = _write_images(tmp_path.parent / f"{tmp_path.name}-outside", 1)
    leaky = _write_images(media_dir / "leaky", 1)
    os.symlink(outside / "0000.png", leaky / "0001.png")
    reply = _submit(raw_dealer(server.endpoint), str(leaky))
    assert reply["code"] == "path_not_allowed" and "0001.png" in reply["message"]
    empty = media_dir / "empty"
    empty.mkdir(exist_ok=True)
    reply = _submit(raw_dealer(server.endpoint), str(empty))
    assert reply["code"] == "not_found" and "without images" in reply["message"]


def _infer_parser():
    parser = argparse.ArgumentParser()
    infer_cli.add_arguments(parser)
    return parser


@pytest.mark.timeout(120)
def test_non_utf8_file_names(tmp_path, tennis_video, parity_fixture_dir, synthetic_smplx_path, start_server,
                             recorded_h3r, capsys):
    video = os.fsdecode(bytes(tmp_path) + b"/t\xe9nnis.mp4")  # Latin-1 name: not UTF-8
    shutil.copyfile(tennis_video, video)
    out = tmp_path / "result.h3r"
    # locally the file is read by its exact name; the header shows U+FFFD for the odd byte
    args = _infer_parser().parse_args([video, "-o", str(out), "--checkpoint", str(parity_fixture_dir / "checkpoint.pth"),
                                       "--smplx", str(synthetic_smplx_path), "--device", "cpu", "--quiet",
                                       "--size", "112", "--end", "1"])
    assert infer_cli.run(args) == 0, capsys.readouterr().err
    assert read_result(out).header["video"]["path"].endswith("t\ufffdnnis.mp4")
    # through a server it cannot be named faithfully: a clear refusal, and no local file
    server = start_server(replay_runner(recorded_h3r))
    remote_out = tmp_path / "remote.h3r"
    args = _infer_parser().parse_args([video, "-o", str(remote_out), "--server", server.endpoint])
    assert infer_cli.run(args) == 2
    err = capsys.readouterr().err
    assert "not valid UTF-8" in err and "rename the file" in err and "Traceback" not in err
    assert not remote_out.exists()


def test_a_refused_remote_job_leaves_no_file(tmp_path, start_server, recorded_h3r, capsys):
    server = start_server(replay_runner(recorded_h3r))
    out = tmp_path / "refused.h3r"
    args = _infer_parser().parse_args(["/etc/passwd", "-o", str(out), "--server", server.endpoint])
    assert infer_cli.run(args) == 4
    assert "media roots" in capsys.readouterr().err
    assert not out.exists() and not list(tmp_path.glob(".*.part"))
