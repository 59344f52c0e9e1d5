"""Start and stop a local `human3r serve` process from Blender without blocking its UI (no bpy).

The add-on's preferences name the backend executable (the `human3r` console script of the backend's
own Python environment, or that environment's python, run as `python -m backend`), the checkpoint
and the SMPL-X model. `LocalServer.start` returns as soon as the process is spawned; the panel asks
`state()` on redraw, and the server's output goes to a log file whose tail explains an early exit.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class ServerCommand:
    """Everything needed to start `human3r serve`; paths are absolute strings ('' = not given)."""

    executable: str = ""  # 'human3r', a path to it, or a python interpreter with the backend installed
    bind: str = "tcp://127.0.0.1:5555"
    checkpoint: str = ""
    smplx: str = ""
    device: str = ""  # '' = the server's default
    media_roots: tuple[str, ...] = ()
    extra_args: tuple[str, ...] = field(default_factory=tuple)

    def argv(self) -> list[str]:
        """The command line; raises FileNotFoundError (with advice) when no executable is found."""
        exe = resolve_executable(self.executable)
        name = Path(exe).name.lower()
        argv = [exe, "-m", "backend", "serve"] if name.startswith("python") else [exe, "serve"]
        argv += ["--bind", self.bind]
        if self.checkpoint:
            argv += ["--checkpoint", self.checkpoint]
        if self.smplx:
            argv += ["--smplx", self.smplx]
        if self.device:
            argv += ["--device", self.device]
        for root in self.media_roots:
            argv += ["--media-root", root]
        argv += list(self.extra_args)
        return argv


def resolve_executable(executable: str) -> str:
    """An existing executable path for `executable` ('' → `human3r` on PATH)."""
    candidate = executable.strip() or "human3r"
    path = Path(os.path.expanduser(candidate))
    if path.is_file():
        return str(path)
    found = shutil.which(candidate)
    if found:
        return found
    raise FileNotFoundError(
        f"Cannot find the Human3R backend executable {candidate!r}. Install the backend from a checkout "
        f"of the Human3R for Blender repository (scripts/setup.sh, or `pip install -e .` in a Python 3.11+ "
        f"environment; it is not on PyPI) and set the path to its `human3r` program (e.g. "
        f".venv/bin/human3r) in the add-on preferences.")


class LocalServer:
    """One child `human3r serve` process; every method returns quickly."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen | None = None
        self._log_path: Path | None = None
        self._log_file = None
        self.command: list[str] = []

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def log_path(self) -> Path | None:
        return self._log_path

    def start(self, command: ServerCommand, *, cwd: str | None = None, env: dict | None = None) -> None:
        """Spawn the server; raises FileNotFoundError / OSError when it cannot be started at all."""
        if self.running:
            raise RuntimeError(f"the local server is already running (pid {self.pid})")
        self._release()
        argv = command.argv()
        fd, log_name = tempfile.mkstemp(prefix="human3r-serve-", suffix=".log")
        os.close(fd)
        self._log_path = Path(log_name)
        self._log_file = open(self._log_path, "wb")
        kwargs: dict = {}
        if sys.platform == "win32":  # own process group: Blender's Ctrl+C does not reach it
            kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP
        else:
            kwargs["start_new_session"] = True
        try:
            self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._log_file,
                                          stderr=subprocess.STDOUT, cwd=cwd, env=env, **kwargs)
        except OSError:
            self._release()
            raise
        self.command = argv

    def state(self) -> str:
        """'stopped', 'running (pid N)' or 'exited with code N: <last log line>'."""
        if self._proc is None:
            return "stopped"
        code = self._proc.poll()
        if code is None:
            return f"running (pid {self._proc.pid})"
        tail = self.log_tail(1)
        return f"exited with code {code}" + (f": {tail}" if tail else "")

    def log_tail(self, lines: int = 5) -> str:
        """The last `lines` lines of the server's output (for error messages)."""
        if self._log_path is None or not self._log_path.exists():
            return ""
        with open(self._log_path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 8192))
            text = f.read().decode("utf-8", "replace")
        return "\n".join([line for line in text.splitlines() if line.strip()][-lines:])

    def terminate(self) -> None:
        """Ask the server to stop (SIGTERM) and return at once; `kill_if_running` finishes the job."""
        if self.running:
            self._proc.terminate()

    def kill_if_running(self) -> None:
        """Kill a server that ignored `terminate` (call a few seconds later, e.g. from a timer)."""
        if self.running:
            self._proc.kill()
        if self._proc is not None:
            try:
                self._proc.wait(timeout=1.0)
            except subprocess.TimeoutExpired:
                return
        self._release(keep_log=True)

    def stop(self, wait_s: float = 2.0) -> None:
        """Terminate the server (SIGTERM, then kill after `wait_s`); a no-op when not running."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=wait_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=wait_s)
        self._release(keep_log=True)

    def _release(self, keep_log: bool = False) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        if self._proc is not None and self._proc.poll() is not None:
            self._proc = None
        if not keep_log:
            self._log_path = None
