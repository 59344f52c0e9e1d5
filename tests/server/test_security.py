"""Bind policy, CurveZMQ keys and allow-list, and the video path checks."""
from __future__ import annotations

import argparse
import os
import stat
import time
from pathlib import Path

import pytest
import zmq
import zmq.auth

from backend.cli import keys as keys_cli, serve as serve_cli
from backend.server import security
from backend.server.app import Server
from backend.server.settings import ServerSettings
from blender_addon.core.protocol import ErrorCode, ProtocolError

from .conftest import GOLDEN, replay_runner, wait_for, wait_ready


# ------------------------------------------------------------------------------------------------
# bind addresses


@pytest.mark.parametrize("endpoint,loopback", [
    ("tcp://127.0.0.1:5555", True), ("tcp://localhost:5555", True), ("tcp://[::1]:5555", True),
    ("tcp://127.0.0.2:1", True), ("ipc:///tmp/h3r", True), ("tcp://0.0.0.0:5555", False),
    ("tcp://*:5555", False), ("tcp://eth0:5555", False), ("tcp://192.168.1.4:5555", False),
    ("tcp://[::]:5555", False), ("udp://127.0.0.1:5555", False)])
def test_loopback_detection(endpoint, loopback):
    assert security.is_loopback_endpoint(endpoint) is loopback


def test_non_loopback_bind_without_keys_is_refused(tmp_path):
    with pytest.raises(security.SecurityError, match="human3r keys"):
        Server(ServerSettings(bind="tcp://0.0.0.0:5555", results_dir=tmp_path), replay_runner(GOLDEN / "tiny.h3r"))
    parser = argparse.ArgumentParser()
    serve_cli.add_arguments(parser)
    args = parser.parse_args(["--bind", "tcp://0.0.0.0:5555", "--checkpoint", "x", "--smplx", "y"])
    assert serve_cli.run(args) == 2  # refused before any model loads


def test_serve_refuses_a_bad_thread_count_before_loading(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    serve_cli.add_arguments(parser)
    args = parser.parse_args(["--threads", "0", "--checkpoint", str(tmp_path / "x"), "--smplx", str(tmp_path / "y"),
                              "--results-dir", str(tmp_path / "results")])
    assert serve_cli.run(args) == 2
    assert "--threads must be >= 1, got 0" in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--keep-results-days", "--max-results-gb"])
def test_serve_refuses_negative_result_limits(tmp_path, capsys, flag):
    parser = argparse.ArgumentParser()
    serve_cli.add_arguments(parser)
    args = parser.parse_args([flag, "-1", "--checkpoint", str(tmp_path / "x"), "--smplx", str(tmp_path / "y")])
    assert serve_cli.run(args) == 2
    assert f"{flag} must be >= 0 (0 = no limit), got -1.0" in capsys.readouterr().err


def test_keys_command_writes_private_files(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    keys_cli.add_arguments(parser)
    assert keys_cli.run(parser.parse_args(["-o", str(tmp_path), "--name", "srv"])) == 0
    for name in ("srv.key", "srv.key_secret"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o600
    public, secret = security.load_keypair(tmp_path / "srv.key_secret")
    assert security.load_public_key(str(tmp_path / "srv.key")) == public
    assert zmq.curve_public(secret) == public
    assert zmq.auth.load_certificate(str(tmp_path / "srv.key_secret")) == (public, secret)
    assert keys_cli.run(parser.parse_args(["-o", str(tmp_path), "--name", "srv"])) == 1  # no overwrite


# ------------------------------------------------------------------------------------------------
# video paths


@pytest.fixture
def roots(tmp_path):
    media = tmp_path / "media"
    media.mkdir()
    (media / "clip.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42")
    (tmp_path / "secret.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42")
    (media / "escape.mp4").symlink_to(tmp_path / "secret.mp4")
    (media / "sub").mkdir()
    (media / "fake.mp4").write_bytes(b"#EXTM3U\n#EXTINF:1,\nhttp://example.com/a.ts\n")
    (media / "list.mp4").write_bytes(b"ffconcat version 1.0\nfile '/etc/passwd'\n")
    return media


def _code(path, roots) -> str:
    with pytest.raises(ProtocolError) as info:
        security.check_video_path(path, [roots])
    return info.value.code


def test_allowed_video_resolves(roots):
    assert security.check_video_path(str(roots / "clip.mp4"), [roots]) == (roots / "clip.mp4").resolve()
    assert security.check_video_path(str(roots / "sub" / ".." / "clip.mp4"), [roots]).name == "clip.mp4"


@pytest.mark.parametrize("path", [
    "http://example.com/v.mp4", "https://x/v.mp4", "rtsp://cam/stream", "concat:/a.mp4|/b.mp4", "file:/etc/passwd",
    "pipe:0", "data:video/mp4;base64,AAAA", "subfile,,start,0,end,1,,:/x.mp4", "tcp://1.2.3.4:1", "async:file:/x",
    "", "relative/clip.mp4"])
def test_urls_and_protocols_are_not_allowed(path, roots):
    assert _code(path, roots) == ErrorCode.PATH_NOT_ALLOWED.value


def test_paths_outside_roots_and_playlists_are_not_allowed(roots, tmp_path):
    assert _code(str(tmp_path / "secret.mp4"), roots) == "path_not_allowed"
    assert _code(str(roots / ".." / "secret.mp4"), roots) == "path_not_allowed"
    assert _code(str(roots / "escape.mp4"), roots) == "path_not_allowed"  # symlink out of the root
    assert _code("/etc/passwd", roots) == "path_not_allowed"
    assert _code(str(tmp_path / "missing.mp4"), roots) == "path_not_allowed"  # no existence probing outside
    for name in ("x.m3u8", "x.M3U", "x.pls", "x.ffconcat"):
        (roots / name).write_text("#EXTM3U\n")
        assert _code(str(roots / name), roots) == "path_not_allowed"
    assert _code(str(roots / "fake.mp4"), roots) == "path_not_allowed"  # HLS playlist content
    assert _code(str(roots / "list.mp4"), roots) == "path_not_allowed"  # concat list content


def test_missing_or_non_regular_files_are_not_found(roots):
    assert _code(str(roots / "missing.mp4"), roots) == ErrorCode.NOT_FOUND.value
    assert _code(str(roots / "sub"), roots) == ErrorCode.NOT_FOUND.value
    assert _code("/dev/null", Path("/dev")) == ErrorCode.NOT_FOUND.value


# ------------------------------------------------------------------------------------------------
# CurveZMQ end to end (bound on 127.0.0.1 with curve on)


@pytest.mark.timeout(60)
def test_curve_allowed_key_works_and_unknown_key_gets_nothing(tmp_path, start_server, make_client, short_video):
    server_public, server_secret = zmq.curve_keypair()
    allowed = zmq.curve_keypair()
    stranger = zmq.curve_keypair()
    server = start_server(replay_runner(GOLDEN / "tiny.h3r"), curve_secret_key=server_secret,
                          curve_public_key=server_public, allowed_client_keys=frozenset({allowed[0]}))
    good = make_client(server.endpoint, curve_server_key=server_public, curve_keys=allowed)
    wait_ready(good)
    end = good.run_job(str(short_video), {}, timeout_s=20)
    assert end["type"] == "done"

    bad = make_client(server.endpoint, curve_server_key=server_public, curve_keys=stranger, timeout_s=1.5)
    plain = make_client(server.endpoint, timeout_s=1.5)  # no encryption at all
    got_bad, got_plain = [], []
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:
        got_bad += bad.poll(timeout_ms=50)
        got_plain += plain.poll(timeout_ms=50)
    for got, client in ((got_bad, bad), (got_plain, plain)):
        assert [m["code"] for m in got] == ["server_gone"]  # nothing but the client's own timeout
        assert client.server_info is None
    # the allowed client is unaffected
    good.request_status()
    assert wait_for(good, lambda m: m["type"] == "status")["jobs"]


def test_client_reads_key_files_written_by_the_keys_command(tmp_path):
    from blender_addon.client.curve_keys import client_curve_options, read_key_file

    server_pub, _ = security.write_keypair(tmp_path, "server")
    _, client_secret = security.write_keypair(tmp_path, "blender")
    options = client_curve_options(server_pub, client_secret)
    assert options["curve_server_key"] == read_key_file(server_pub)[0]
    public, secret = options["curve_keys"]
    assert zmq.curve_public(secret.encode()) == public.encode()
    with pytest.raises(ValueError):
        client_curve_options(server_pub, server_pub)  # a public file is not a key pair
