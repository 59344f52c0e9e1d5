"""`human3r infer VIDEO -o OUT.h3r`: run a video offline into a result file, with a progress bar.

The file is written message by message (header, frames, tracks, done/error/cancelled) and flushed
after each, so a crash or kill leaves every whole frame readable. A failure at frame N keeps frames
before N and records where it stopped (`error.frame`); the exit status is non-zero (the table is in
`backend.cli.common`: 2 bad option, 3 checkpoint or SMPL-X model unusable, 4 unreadable video, 130
interrupted, with the file ending in `cancelled`).
`--server ADDR` runs the job on a `human3r serve` instance instead (`backend.cli.remote`), with the
same flags, the same file and the same exit statuses.
`--live URL` reads a camera or stream instead of a video (`backend.video.live`: newest frame each
step, reconnects on drops) and writes results until Ctrl-C, which ends the file with `cancelled`
and exits 0.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import time
import uuid
from pathlib import Path

from backend.cli.common import (
    EXIT_FAILED, EXIT_OK, EXIT_SETUP, EXIT_USAGE, EXIT_VIDEO, add_model_file_arguments, exit_status,
    model_file_argument_error,
    model_load_error,
)
from backend.cli.remote import add_remote_arguments
from backend.engine.options import add_model_arguments, options_from_args



def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("video", nargs="?", help="video file (or folder of images)")
    parser.add_argument("--live", metavar="URL", default=None,
                        help="a camera or stream instead of a video: rtsp://, rtsp+udp://, rtmp://, udp://, rtp://, "
                             "http(s)://, /dev/videoN (?listen=1 on rtsp/rtmp receives a pushed stream); "
                             "runs until Ctrl-C")
    parser.add_argument("-o", "--output", required=True, help="result file to write (.h3r)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing file at -o that is not a Human3R result file")
    add_model_file_arguments(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_remote_arguments(parser)
    add_model_arguments(parser)


def _err(text: str) -> None:
    print(f"human3r infer: {text}", file=sys.stderr)


class _Progress:
    """tqdm on stderr when available, else a plain line every few seconds."""

    def __init__(self, total: int | None, quiet: bool):
        self.quiet = quiet
        self.bar = None
        self._last = 0.0
        self.total = total
        if quiet:
            return
        try:
            from tqdm import tqdm
            self.bar = tqdm(total=total, unit="frame", file=sys.stderr, dynamic_ncols=True)
        except ImportError:
            self.bar = None

    def update(self, done: int, people: int) -> None:
        if self.quiet:
            return
        if self.bar is not None:
            self.bar.update(done - self.bar.n)
            self.bar.set_postfix(people=people, refresh=False)
        elif time.monotonic() - self._last > 2.0:
            self._last = time.monotonic()
            print(f"  {done}/{self.total or '?'} frames, {people} people", file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run(args: argparse.Namespace) -> int:
    if args.server:
        from backend.cli.remote import run_remote

        return run_remote(args)

    from backend.engine.options import JobOptions

    try:
        options = JobOptions.from_dict(options_from_args(args))
    except ValueError as exc:
        _err(str(exc))
        return EXIT_USAGE
    if (problem := model_file_argument_error(args)) is not None:
        _err(problem)
        return EXIT_USAGE
    if (args.live is None) == (args.video is None):
        _err("give either a VIDEO or --live URL")
        return EXIT_USAGE
    out_path = Path(args.output)
    from backend.engine.result_output import output_problem

    inputs = (args.video,) if args.video is not None else ()  # a live URL is no file to protect
    if (problem := output_problem(out_path, args.overwrite, inputs=inputs)) is not None:
        _err(problem)
        return EXIT_USAGE

    # cheap checks first: the video and the SMPL-X file, before loading the network
    from backend.video.reader import VideoError, open_source

    try:
        if args.live is not None:  # opened once, by the job (a listening URL binds its port)
            from backend.video.live import LiveSpec

            source, total = LiveSpec("cli", args.live), None
        else:
            source = args.video
            with open_source(args.video, start=options.start, end=options.end, stride=options.stride) as probe:
                total = probe.expected_frames
    except ValueError as exc:
        _err(str(exc))
        return EXIT_USAGE
    except VideoError as exc:
        _err(f"cannot read the video: {exc}")
        _err("check the path, or that the file plays (`ffprobe FILE`); a damaged file may play again after "
             "`ffmpeg -i FILE -c:v libx264 fixed.mp4`")
        return EXIT_VIDEO
    from backend.model_files import SmplxNotFoundError, resolve_smplx_path

    try:
        resolve_smplx_path(args.smplx)
    except SmplxNotFoundError as exc:
        _err(str(exc))
        return EXIT_SETUP

    from backend.engine.job import iter_job_messages
    from backend.engine.result_output import OutputWriteError, ResultOutput
    from backend.engine.stream import Engine
    from blender_addon.core import protocol

    t_load = time.perf_counter()
    try:
        engine = Engine.from_paths(args.checkpoint, args.smplx, device=args.device, precision=options.precision,
                                   strict_checkpoint=args.strict_checkpoint, graphs=args.graphs)
    except Exception as exc:
        if (message := model_load_error(exc, args.checkpoint)) is None:
            raise
        _err(message)
        return EXIT_SETUP
    load_s = time.perf_counter() - t_load
    threads = engine.use_cpu_threads(args.threads)
    if not args.quiet:
        on_cpu = f", {threads} CPU thread{'s' if threads != 1 else ''}" if engine.device.type == "cpu" else ""
        print(f"loaded {engine.checkpoint_path.name} on {engine.device} ({options.precision}{on_cpu}) in {load_s:.1f} s",
              file=sys.stderr)

    job_id = uuid.uuid4().hex[:12]
    progress = _Progress(total, args.quiet)
    frames = people = 0
    last: dict | None = None
    seq = 0
    started = time.perf_counter()
    file_types = {t.value for t in protocol.FILE_TYPES}
    cancel = _cancel_on_ctrl_c() if args.live is not None else None
    with ResultOutput(out_path) as writer, _sigterm_as_interrupt():
        try:
            for msg in iter_job_messages(engine, source, options, job_id, cancel):
                seq = msg["seq"] + 1
                if msg["type"] in file_types:
                    writer.write(msg)
                if msg["type"] == "frame":
                    frames += 1
                    people = max(people, int(msg["people"]["id"].max()) + 1 if len(msg["people"]["id"]) else 0)
                    progress.update(frames, people)
                elif msg["type"] in ("done", "error", "cancelled"):
                    last = msg
        except KeyboardInterrupt:
            last = protocol.make_message(protocol.MessageType.CANCELLED, job_id, seq, frames=frames)
            writer.write(last)
        except OutputWriteError as exc:
            progress.close()
            _err(str(exc))
            return EXIT_FAILED
        finally:
            progress.close()
    elapsed = time.perf_counter() - started
    if cancel is not None:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        if last is not None and last["type"] == "cancelled":  # Ctrl-C is how a live run ends
            print(f"stopped: {frames} frames -> {out_path} ({_size(out_path)})")
            return EXIT_OK
    return _summary(last, frames, elapsed, out_path)


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """SIGTERM (a service manager, `kill`) ends the run like Ctrl-C: the file gets its `cancelled` record."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _cancel_on_ctrl_c():
    """An Event that Ctrl-C sets (the live job then ends within one step, writing `cancelled`)."""
    import threading

    cancel = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: cancel.set())
    return cancel


def _summary(last: dict | None, frames: int, elapsed: float, out_path: Path) -> int:
    fps = frames / elapsed if elapsed > 0 else 0.0
    if last is None:
        _err(f"the job ended without a final message; {frames} frames written to {out_path}")
    elif last["type"] == "done":
        print(f"done: {last['frames']} frames, {last['people']} people, {fps:.2f} frames/s, "
              f"{len(last['scene_points']['xyz'])} scene points -> {out_path} ({_size(out_path)})")
        for warning in last.get("warnings") or ():
            _err(f"warning: {warning}")
    elif last["type"] == "cancelled":
        _err(f"interrupted after {last['frames']} frames; they are in {out_path}")
    else:
        _err(f"{last['code']}: {last['message']}")
        _err(f"stopped before source frame {last.get('frame')}; {frames} frames kept in {out_path}")
    return exit_status(last)


def _size(path: Path) -> str:
    try:
        n = os.path.getsize(path)
    except OSError:
        return "?"
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"
