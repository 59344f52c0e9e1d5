"""`human3r infer --server` through a real server on loopback: encrypted runs with the key files of
`human3r keys`, and exit statuses that match a local run (the table in `backend.cli.common`)."""
from __future__ import annotations

import pytest

from backend.cli import main
from backend.cli.common import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from backend.server import security
from blender_addon.core import protocol
from blender_addon.core.resultfile import ResultFileReader, ResultFileWriter, read_result

from .conftest import FAST_OPTIONS, replay_runner

pytestmark = pytest.mark.timeout(120)

FAST_FLAGS = ["--size", str(FAST_OPTIONS["size"]), "--max-points", str(FAST_OPTIONS["max_points_per_frame"]),
              "--conf-threshold", str(FAST_OPTIONS["conf_threshold"])]


@pytest.fixture
def curve_keys(tmp_path):
    """Key files made by `human3r keys` for a server and two clients (one allowed, one not)."""
    folder = tmp_path / "keys"
    for name in ("server", "blender", "stranger"):
        assert main(["keys", "-o", str(folder), "--name", name]) == EXIT_OK
    return folder


def _encrypted_server(start_server, runner, keys, engine=None, options_parser=None):
    public, secret = security.load_keypair(keys / "server.key_secret")
    return start_server(runner, engine, options_parser, curve_secret_key=secret, curve_public_key=public,
                        allowed_client_keys=security.load_public_keys([str(keys / "blender.key")]))


def test_infer_help_lists_the_remote_flags(capsys):
    with pytest.raises(SystemExit):
        main(["infer", "--help"])
    text = capsys.readouterr().out
    for flag in ("--server", "--server-key", "--client-key", "--server-timeout"):
        assert flag in text


def test_encrypted_remote_run_with_key_files(start_server, engine, engine_runner, options_parser, short_video,
                                             curve_keys, tmp_path, capsys):
    server = _encrypted_server(start_server, engine_runner, curve_keys, engine, options_parser)
    out = tmp_path / "remote.h3r"
    code = main(["infer", str(short_video), "-o", str(out), "--server", server.endpoint, "--end", "3",
                 "--server-key", str(curve_keys / "server.key"), "--client-key", str(curve_keys / "blender.key_secret"),
                 *FAST_FLAGS])
    err = capsys.readouterr().err
    assert code == EXIT_OK, err
    local = read_result(out)
    remote = read_result(server.board.summaries()[0]["result_path"])
    assert local.end["type"] == "done" and len(local.frames) == 3 and not local.truncated
    assert f"3 frames, {len(local.tracks)} track" in err and "(0 of at least 10 frames)" in err
    assert [f["seq"] for f in local.frames] == [f["seq"] for f in remote.frames]
    assert local.header["options"]["size"] == FAST_OPTIONS["size"]  # the flags reached the server's job


def test_encrypted_server_refuses_a_client_key_it_does_not_allow(start_server, engine, engine_runner, options_parser,
                                                                 short_video, curve_keys, tmp_path, capsys):
    server = _encrypted_server(start_server, engine_runner, curve_keys, engine, options_parser)
    out = tmp_path / "refused.h3r"
    code = main(["infer", str(short_video), "-o", str(out), "--server", server.endpoint, "--server-timeout", "1.5",
                 "--server-key", str(curve_keys / "server.key"),
                 "--client-key", str(curve_keys / "stranger.key_secret"), *FAST_FLAGS])
    assert code == EXIT_FAILED
    assert "server_gone" in capsys.readouterr().err  # the handshake is dropped: the server stays silent
    assert server.board.summaries() == []  # no job ran


def test_without_the_server_key_nothing_is_sent_in_clear(start_server, engine, engine_runner, options_parser,
                                                          short_video, curve_keys, tmp_path, capsys):
    server = _encrypted_server(start_server, engine_runner, curve_keys, engine, options_parser)
    # a client key pair alone would be ignored (no encryption without the server's key): refused up front
    code = main(["infer", str(short_video), "-o", str(tmp_path / "a.h3r"), "--server", server.endpoint,
                 "--client-key", str(curve_keys / "blender.key_secret")])
    assert code == EXIT_USAGE and "--server-key" in capsys.readouterr().err
    # a public key file where the key pair belongs names the problem
    code = main(["infer", str(short_video), "-o", str(tmp_path / "b.h3r"), "--server", server.endpoint,
                 "--server-key", str(curve_keys / "server.key"), "--client-key", str(curve_keys / "blender.key")])
    assert code == EXIT_USAGE and "secret" in capsys.readouterr().err


def test_a_cancel_on_the_server_exits_like_a_local_interrupt(start_server, recorded_h3r, short_video, tmp_path,
                                                             capsys):
    # the engine's own messages up to the first frame, then the `cancelled` end the engine sends when its
    # job is cancelled on the server (a peer or stall timeout, or a cancel request)
    messages = list(ResultFileReader(recorded_h3r))
    first_frame = next(i for i, m in enumerate(messages) if m["type"] == "frame")
    cut = tmp_path / "cancelled.h3r"
    with ResultFileWriter(cut) as writer:
        for msg in messages[:first_frame + 1]:
            writer.write(msg)
        writer.write(protocol.make_message("cancelled", messages[0]["job"], first_frame + 1, frames=1))
    server = start_server(replay_runner(cut))
    out = tmp_path / "remote.h3r"
    code = main(["infer", str(short_video), "-o", str(out), "--server", server.endpoint])
    assert code == EXIT_INTERRUPTED == 130
    assert read_result(out).end["type"] == "cancelled" and len(read_result(out).frames) == 1
    assert "cancelled after 1 frames" in capsys.readouterr().err
