"""`human3r infer VIDEO --server ADDR -o OUT.h3r`: run a job on a remote server, write the .h3r here.

`infer_cli` (the engine's command) calls `add_remote_arguments(parser)` to get the --server flags
and `run_remote(args)` when --server is given. The local file holds the same messages as the
server's own copy (header, frames, tracks, the end; progress is shown, not stored).
"""
from __future__ import annotations

import argparse
import os
import sys
import time


def add_remote_arguments(parser: argparse.ArgumentParser) -> None:
    """Extra flags for running through a server (`human3r infer` has --server itself)."""
    group = parser.add_argument_group("remote inference (with --server)")
    if not any("--server" in a.option_strings for a in parser._actions):
        group.add_argument("--server", metavar="ADDR", default=None,
                           help="run on a `human3r serve` endpoint (e.g. tcp://gpu-box:5555) instead of locally; "
                                "VIDEO is then a path on the server's machine")
    group.add_argument("--server-key", metavar="KEY", default=None,
                       help="the server's CurveZMQ public key (z85 text or .key file) when it uses encryption")
    group.add_argument("--client-key", metavar="FILE", default=None,
                       help="this client's NAME.key_secret from `human3r keys` (allowed by the server)")
    group.add_argument("--server-timeout", type=float, default=10.0,
                       help="seconds of server silence before giving up (default 10)")


def run_remote(args: argparse.Namespace, options: dict | None = None) -> int:
    """Run `args.video` on `args.server` and write `args.output`; return the exit code (0 = done).

    `options` is the job's options map (`JobOptions.to_dict()`); when None it is built from `args`
    with `options_from_args`.
    """
    from backend.engine.result_output import OutputWriteError, output_problem
    from blender_addon.client import Human3RClient

    from .security import SecurityError, load_keypair, load_public_key

    if options is None:
        options = options_from_args(args)
    try:
        server_key = load_public_key(args.server_key) if getattr(args, "server_key", None) else None
        client_keys = load_keypair(args.client_key) if getattr(args, "client_key", None) else None
    except SecurityError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    video = args.video if not os.path.exists(args.video) else os.path.abspath(args.video)
    if (problem := _wire_path_problem(video)) is not None:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    if (problem := output_problem(args.output, getattr(args, "overwrite", False))) is not None:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    progress = _ProgressLine(sys.stderr)
    client = Human3RClient(args.server, curve_server_key=server_key, curve_keys=client_keys,
                           timeout_s=getattr(args, "server_timeout", 10.0))
    writer = None
    try:
        def on_message(msg: dict) -> None:
            nonlocal writer
            if msg["type"] == "accepted":  # only an accepted job gets a file: a refused one leaves none
                writer = _open_output(args.output)
            elif writer is not None and msg["type"] != "progress" and not msg.get("reply"):
                writer.write(msg)
            progress.update(msg)

        client.connect()
        end = client.run_job(video, options, on_message)
    except KeyboardInterrupt:
        progress.finish()
        print("interrupted; the job was cancelled on the server", file=sys.stderr)
        return 130
    except OutputWriteError as exc:
        progress.finish()
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        if writer is not None:
            writer.close()
        client.close()
    progress.finish()
    if end["type"] == "done":
        print(f"wrote {args.output}: {end.get('frames')} frames, {end.get('people')} people", file=sys.stderr)
        for warning in end.get("warnings") or ():
            print(f"warning: {warning}", file=sys.stderr)
        return 0
    if end["type"] == "cancelled":
        print(f"cancelled after {end.get('frames')} frames; partial results in {args.output}", file=sys.stderr)
        return 1
    print(f"error ({end.get('code')}): {end.get('message')}", file=sys.stderr)
    return _EXIT_FOR_CODE.get(end.get("code"), 1)


def _open_output(path: str):
    from backend.engine.result_output import ResultOutput

    return ResultOutput(path)


def _wire_path_problem(video: str) -> str | None:
    """Paths travel to the server as UTF-8 text; a name that is not UTF-8 cannot be sent faithfully."""
    try:
        video.encode("utf-8")
    except UnicodeEncodeError:
        shown = os.fsencode(video).decode("utf-8", "backslashreplace")
        return (f"the path {shown} is not valid UTF-8, and paths travel to the server as UTF-8 text; rename the "
                "file (e.g. `convmv -f latin1 -t utf8 FILE`) or run it locally without --server")
    return None


def options_from_args(args: argparse.Namespace) -> dict:
    """The job options given by `human3r infer`'s flags (its `options_from_args`)."""
    from backend.engine.infer_cli import options_from_args as from_infer_flags

    return from_infer_flags(args)


# exit codes of `human3r infer` (backend.engine.infer_cli)
_EXIT_FOR_CODE = {"bad_message": 2, "bad_options": 2, "bad_video": 4, "not_found": 4, "path_not_allowed": 4}


class _ProgressLine:
    """One self-overwriting status line: queue position, frames done/total, frames/s, ETA."""

    def __init__(self, stream):
        self.stream = stream
        self.tty = stream.isatty()
        self.last = 0.0
        self.shown = False

    def update(self, msg: dict) -> None:
        mtype = msg["type"]
        if mtype == "accepted":
            pos = msg.get("queue_position", 0)
            self._show(f"job {msg['job']}: " + ("starting" if pos == 0 else f"queued at position {pos}"), True)
        elif mtype == "progress":
            total = msg.get("total")
            eta = msg.get("eta_s")
            text = (f"{msg.get('stage', '')} {msg['done']}" + (f"/{total}" if total else "") + " frames"
                    + (f", {msg['fps']:.2f} frames/s" if msg.get("fps") else "")
                    + (f", ETA {eta:.0f} s" if eta is not None else ""))
            self._show(text, False)

    def _show(self, text: str, force: bool) -> None:
        now = time.monotonic()
        if not force and now - self.last < (0.2 if self.tty else 5.0):
            return
        self.last = now
        if self.tty:
            self.stream.write("\r\x1b[K" + text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
        self.shown = True

    def finish(self) -> None:
        if self.shown and self.tty:
            self.stream.write("\n")
            self.stream.flush()
        self.shown = False
