"""Starting/stopping a local `human3r serve` process (the command line and the process control)."""
from __future__ import annotations

import os
import stat
import sys
import time

import pytest

from blender_addon.core.local_server import LocalServer, ServerCommand, resolve_executable


def wait_until(predicate, timeout_s: float = 20.0) -> bool:
    """Poll `predicate` every 50 ms until it holds or `timeout_s` passes (a slow, shared CI box)."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture
def server():
    """A LocalServer killed at teardown, so a failed assertion never leaves a TERM-proof script running."""
    local = LocalServer()
    yield local
    local.kill_if_running()


def test_argv_for_console_script_and_python(tmp_path):
    exe = tmp_path / "human3r"
    exe.write_text("#!/bin/sh\n")
    cmd = ServerCommand(executable=str(exe), bind="tcp://127.0.0.1:6000", checkpoint="/m/ck.pth",
                        smplx="/m/smplx", device="cpu", media_roots=("/videos",))
    assert cmd.argv() == [str(exe), "serve", "--bind", "tcp://127.0.0.1:6000", "--checkpoint", "/m/ck.pth",
                          "--smplx", "/m/smplx", "--device", "cpu", "--media-root", "/videos"]
    python = tmp_path / "python3.11"
    python.write_text("#!/bin/sh\n")
    assert ServerCommand(executable=str(python)).argv()[:4] == [str(python), "-m", "backend", "serve"]


def test_missing_executable_explains_what_to_do():
    with pytest.raises(FileNotFoundError, match="add-on preferences"):
        resolve_executable("/nonexistent/human3r")


@pytest.mark.skipif(sys.platform == "win32", reason="uses a POSIX shell script as the executable")
def test_start_state_log_and_stop(tmp_path, server):
    exe = tmp_path / "human3r"
    exe.write_text("#!/bin/sh\necho \"serving $*\"\nexec sleep 30\n")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    t0 = time.monotonic()
    server.start(ServerCommand(executable=str(exe), bind="tcp://127.0.0.1:6001"))
    assert time.monotonic() - t0 < 1.0  # spawning does not wait for the server
    assert server.running and server.state().startswith("running (pid")
    with pytest.raises(RuntimeError):
        server.start(ServerCommand(executable=str(exe)))
    assert wait_until(lambda: "serving" in server.log_tail()), server.log_tail()
    assert "serve --bind tcp://127.0.0.1:6001" in server.log_tail()
    server.stop()
    assert not server.running and server.state() == "stopped"


@pytest.mark.skipif(sys.platform == "win32", reason="uses a POSIX shell script as the executable")
def test_terminate_returns_at_once_and_kill_finishes(tmp_path, server):
    exe = tmp_path / "human3r"
    exe.write_text("#!/bin/sh\ntrap '' TERM\necho ready\nwhile true; do sleep 0.1; done\n")  # ignores SIGTERM
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    server.start(ServerCommand(executable=str(exe)))
    # the script prints "ready" only after its trap is set: terminating earlier would really stop it
    assert wait_until(lambda: "ready" in server.log_tail()), server.log_tail()
    t0 = time.monotonic()
    server.terminate()
    assert time.monotonic() - t0 < 0.5 and server.running
    server.kill_if_running()
    assert not server.running and server.state() == "stopped"


@pytest.mark.skipif(sys.platform == "win32", reason="uses a POSIX shell script as the executable")
def test_early_exit_is_reported_with_the_last_log_line(tmp_path, server):
    exe = tmp_path / "human3r"
    exe.write_text("#!/bin/sh\necho 'error: checkpoint not found' >&2\nexit 3\n")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    server.start(ServerCommand(executable=str(exe)))
    assert wait_until(lambda: not server.running), server.state()
    assert server.state() == "exited with code 3: error: checkpoint not found"
    server.stop()
    assert os.path.exists(server.log_path)
