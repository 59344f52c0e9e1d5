"""`human3r infer VIDEO --server ADDR -o OUT.h3r`: run a job on a remote server, write the .h3r here.

`backend.cli.infer` adds these flags (`add_remote_arguments`) and calls `run_remote(args)` when
--server is given. The local file holds the same messages as the server's own copy (header, frames,
tracks, the end; progress is shown, not stored), and the exit status is the one `infer` gives for the
same end (`backend.cli.common.exit_status`; a cancel on the server exits 130 like Ctrl-C here).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

from backend.cli.common import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, exit_status
from backend.engine.options import options_from_args
from blender_addon.core.track_tally import TrackTally

DEFAULT_SERVER_TIMEOUT_S = 10.0


def add_remote_arguments(parser: argparse.ArgumentParser) -> None:
    """--server and the flags that only matter with it (encryption keys, silence timeout)."""
    group = parser.add_argument_group("remote inference (with --server)")
    group.add_argument("--server", metavar="ADDR", default=None,
                       help="run on a `human3r serve` endpoint (e.g. tcp://gpu-box:5555) instead of locally; "
                            "VIDEO is then a path on the server's machine")
    group.add_argument("--server-key", metavar="KEY", default=None,
                       help="the server's CurveZMQ public key (z85 text or .key file) when it uses encryption")
    group.add_argument("--client-key", metavar="FILE", default=None,
                       help="this client's NAME.key_secret from `human3r keys` (allowed by the server)")
    group.add_argument("--server-timeout", type=float, default=DEFAULT_SERVER_TIMEOUT_S,
                       help=f"seconds of server silence before giving up (default {DEFAULT_SERVER_TIMEOUT_S:g})")


def run_remote(args: argparse.Namespace, options: dict | None = None) -> int:
    """Run `args.video` on `args.server` and write `args.output`; return the exit status (0 = done).

    `options` is the job's options map (`JobOptions.to_dict()`); when None it is built from the flags
    (`options_from_args`). The server validates it and answers `bad_options` (exit 2) if it refuses.
    """
    from backend.engine.result_output import OutputWriteError, output_problem
    from backend.server.security import SecurityError, load_keypair, load_public_key
    from blender_addon.client import Human3RClient

    if options is None:
        options = options_from_args(args)
    if args.client_key and not args.server_key:
        print("error: --client-key needs --server-key (the server's public key)", file=sys.stderr)
        return EXIT_USAGE
    try:
        server_key = load_public_key(args.server_key) if args.server_key else None
        client_keys = load_keypair(args.client_key) if args.client_key else None
    except SecurityError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    video = args.video if not os.path.exists(args.video) else os.path.abspath(args.video)
    if (problem := _wire_path_problem(video)) is not None:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    if (problem := output_problem(args.output, getattr(args, "overwrite", False))) is not None:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    progress = _ProgressLine(sys.stderr)
    client = Human3RClient(args.server, curve_server_key=server_key, curve_keys=client_keys,
                           timeout_s=args.server_timeout)
    writer = None
    tally = TrackTally()
    try:
        def on_message(msg: dict) -> None:
            nonlocal writer
            if msg["type"] == "accepted":  # only an accepted job gets a file: a refused one leaves none
                writer = _open_output(args.output)
            elif writer is not None and msg["type"] != "progress" and not msg.get("reply"):
                writer.write(msg)
            progress.update(msg)
            tally.add(msg)

        client.connect()
        end = client.run_job(video, options, on_message)
    except KeyboardInterrupt:
        progress.finish()
        print("interrupted; the job was cancelled on the server", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OutputWriteError as exc:
        progress.finish()
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        if writer is not None:
            writer.close()
        client.close()
    progress.finish()
    if end["type"] == "done":
        print(f"wrote {args.output}: {end.get('frames')} frames, {tally.describe()}", file=sys.stderr)
        for warning in end.get("warnings") or ():
            print(f"warning: {warning}", file=sys.stderr)
    elif end["type"] == "cancelled":
        print(f"cancelled after {end.get('frames')} frames; partial results in {args.output}", file=sys.stderr)
    else:
        print(f"error ({end.get('code')}): {end.get('message')}", file=sys.stderr)
    return exit_status(end)


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
