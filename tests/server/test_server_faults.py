"""Faults a client must hear about: a full results disk, a frame cap that cut a job short, and
`serve` start-up errors told before the model loads."""
from __future__ import annotations

import argparse
import struct

import pytest
import zmq

from backend.cli import serve as serve_cli
from blender_addon.core.resultfile import read_result

from .conftest import FAST_OPTIONS, replay_runner


def _record_sizes(path) -> list[int]:
    """Bytes of each record of a .h3r (head and payload), in file order."""
    sizes, data, at = [], path.read_bytes(), 16
    while at + 8 <= len(data):
        (length,) = struct.unpack_from("<I", data, at)
        sizes.append(8 + length)
        at += 8 + length
    return sizes


@pytest.mark.timeout(60)
def test_a_full_results_disk_reaches_the_client_with_the_frames_kept(start_server, make_client, recorded_h3r,
                                                                       short_video, small_tmpfs):
    sizes = _record_sizes(recorded_h3r)
    # the header, about two frames, and one page for the job's ownership sidecar
    room = 16 + sizes[0] + 2 * sizes[1] + 4096
    results = small_tmpfs((room // 4096 + 1) * 4096)
    server = start_server(replay_runner(recorded_h3r, repeat=50), results_dir=results, results_max_gb=0,
                          peer_timeout_s=30)
    client = make_client(server.endpoint, timeout_s=30)
    got: list[dict] = []
    end = client.run_job(str(short_video), {}, got.append, timeout_s=30)
    assert end["type"] == "error" and end["code"] == "disk_full"
    frames = [m for m in got if m["type"] == "frame"]
    assert frames and f"the {len(frames)} frames before source frame" in end["message"]
    assert "free space" in end["message"]
    stored = read_result(server.board.get(end["job"]).result_path)
    assert stored.header is not None and len(stored.frames) == len(frames)
    assert server.board.get(end["job"]).state == "error"


@pytest.mark.timeout(120)
def test_a_frame_cap_is_said_in_the_done_summary(start_server, make_client, engine, engine_runner, options_parser,
                                                 short_video):
    server = start_server(engine_runner, engine, options_parser, max_frames_per_job=2)
    client = make_client(server.endpoint, timeout_s=60)
    end = client.run_job(str(short_video), FAST_OPTIONS, timeout_s=60)
    assert end["type"] == "done" and end["frames"] == 2
    assert any("limit of 2 frames per job" in w and "start=2" in w for w in end["warnings"])
    short = client.run_job(str(short_video), {**FAST_OPTIONS, "start": 7}, timeout_s=60)
    assert short["type"] == "done" and not short.get("warnings")  # the video ended first: nothing to say


def _serve(argv, tmp_path) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    serve_cli.add_arguments(parser)
    return parser.parse_args([*argv, "--checkpoint", str(tmp_path / "missing.pth"), "--smplx", str(tmp_path / "x"),
                              "--results-dir", str(tmp_path / "results")])


def test_serve_start_up_errors_come_before_the_model_loads(tmp_path, capsys):
    ctx = zmq.Context()
    taken = ctx.socket(zmq.ROUTER)
    port = taken.bind_to_random_port("tcp://127.0.0.1")
    try:
        assert serve_cli.run(_serve(["--bind", f"tcp://127.0.0.1:{port}"], tmp_path)) == 2
        err = capsys.readouterr().err
        assert "already in use" in err and "pick another port" in err and "Traceback" not in err
    finally:
        taken.close(0)
        ctx.term()
    for bind in ("tcp://127.0.0.1:notaport", "tcp://127.0.0.1", "127.0.0.1:5555"):
        assert serve_cli.run(_serve(["--bind", bind], tmp_path)) == 2
        err = capsys.readouterr().err
        assert "tcp://127.0.0.1:5555" in err and "Traceback" not in err, (bind, err)
