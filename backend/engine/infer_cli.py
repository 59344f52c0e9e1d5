"""`human3r infer VIDEO -o OUT.h3r`: run a video offline into a result file, with a progress bar.

The file is written message by message (header, frames, tracks, done/error/cancelled) and flushed
after each, so a crash or kill leaves every whole frame readable. A failure at frame N keeps frames
before N and records where it stopped (`error.frame`); the exit status is non-zero.

Exit status: 0 done; 1 processing failed; 2 bad option; 3 checkpoint or SMPL-X model missing or
unusable; 4 unreadable video; 130 interrupted (Ctrl-C; the file ends with `cancelled`).
`--server ADDR` runs the job on a `human3r serve` instance instead (backend.server.remote).
`--live URL` reads a camera or stream instead of a video (`backend.video.live`: newest frame each
step, reconnects on drops) and writes results until Ctrl-C, which ends the file with `cancelled`
and exits 0.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import time
import uuid
from pathlib import Path

from backend.cli import add_model_file_arguments, model_file_argument_error

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_SETUP, EXIT_VIDEO, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130

# stored in .h3r files (protocol.py: types marked F)
_FILE_TYPES = {"header", "frame", "track", "done", "error", "cancelled"}


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The model options shared by `infer` and remote jobs (interfaces.md §4), mapped to JobOptions
    (defaults come from `JobOptions`)."""
    from backend.engine.options import JobOptions

    d = JobOptions()
    g = parser.add_argument_group("model options")
    g.add_argument("--start", type=int, default=d.start, help="first source frame index (default 0)")
    g.add_argument("--end", type=int, default=d.end, help="stop before this source frame index")
    g.add_argument("--stride", type=int, default=d.stride, help="process every N-th frame (default 1)")
    g.add_argument("--reset-interval", type=int, default=d.reset_interval,
                   help=f"reset the recurrent state every N processed frames (default {d.reset_interval})")
    g.add_argument("--no-ttt3r", dest="ttt3r", action="store_false", help="disable the TTT3R state update")
    g.add_argument("--detection-threshold", type=float, default=d.detection_threshold,
                   help=f"person detection score (default {d.detection_threshold})")
    g.add_argument("--conf-threshold", type=float, default=d.conf_threshold,
                   help=f"keep points with confidence strictly above this (default {d.conf_threshold})")
    g.add_argument("--point-stride", type=int, default=d.point_stride,
                   help=f"keep every N-th pixel per row/column (default {d.point_stride})")
    g.add_argument("--max-points", dest="max_points_per_frame", type=int, default=d.max_points_per_frame,
                   help=f"at most this many points per frame (default {d.max_points_per_frame}; 0 = none)")
    g.add_argument("--keep-human-points", dest="remove_humans_from_points", action="store_false",
                   help="keep points on people (default: removed using the human mask)")
    g.add_argument("--size", type=int, default=d.size,
                   help=f"long side of the model input, multiple of 16 (default {d.size})")
    g.add_argument("--precision", choices=("fp32", "bf16"), default=d.precision,
                   help="fp32 (reference numerics) or bf16 autocast (default fp32)")
    g.add_argument("--jpeg-roundtrip", action="store_true",
                   help="pass frames through JPEG q95 like the reference's video path")
    g.add_argument("--voxel-size", dest="scene_voxel_size", type=float, default=d.scene_voxel_size,
                   help=f"voxel edge of the accumulated scene cloud (default {d.scene_voxel_size})")


OPTION_NAMES = ("start", "end", "stride", "reset_interval", "ttt3r", "detection_threshold", "conf_threshold",
                "point_stride", "max_points_per_frame", "remove_humans_from_points", "size", "precision",
                "jpeg_roundtrip", "scene_voxel_size")


def options_from_args(args: argparse.Namespace) -> dict:
    """The JobOptions map given by the command-line flags."""
    return {name: getattr(args, name) for name in OPTION_NAMES if hasattr(args, name)}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("video", nargs="?", help="video file (or folder of images)")
    parser.add_argument("--live", metavar="URL", default=None,
                        help="a camera or stream instead of a video: rtsp://, rtsp+udp://, rtmp://, udp://, rtp://, "
                             "http(s)://, /dev/videoN (?listen=1 on rtsp/rtmp receives a pushed stream); "
                             "runs until Ctrl-C")
    parser.add_argument("-o", "--output", required=True, help="result file to write (.h3r)")
    add_model_file_arguments(parser)
    parser.add_argument("--server", default=None, metavar="ADDR",
                        help="run on a human3r server (e.g. tcp://127.0.0.1:5555) instead of locally")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
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
    if getattr(args, "server", None):
        from backend.server.remote import run_remote  # the server team's client side

        return int(run_remote(args) or 0)

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
    if out_path.exists() and out_path.is_dir():
        _err(f"output {out_path} is a folder; give a file name like result.h3r")
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
        return EXIT_VIDEO
    from backend.smplx_model import SmplxNotFoundError, resolve_smplx_path

    try:
        resolve_smplx_path(args.smplx)
    except SmplxNotFoundError as exc:
        _err(str(exc))
        return EXIT_SETUP

    from backend.engine.job import iter_job_messages
    from backend.engine.stream import Engine, resolve_checkpoint_path
    from backend.model.checkpoint import CheckpointError
    from blender_addon.core.resultfile import ResultFileWriter

    t_load = time.perf_counter()
    try:
        engine = Engine.from_paths(args.checkpoint, args.smplx, device=args.device, precision=options.precision)
    except CheckpointError as exc:
        _err(f"cannot load the checkpoint {resolve_checkpoint_path(args.checkpoint)}:\n{exc}")
        return EXIT_SETUP
    except (SmplxNotFoundError, ValueError, OSError) as exc:
        _err(str(exc))
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
    cancel = _cancel_on_ctrl_c() if args.live is not None else None
    with ResultFileWriter(out_path) as writer:
        try:
            for msg in iter_job_messages(engine, source, options, job_id, cancel):
                seq = msg["seq"] + 1
                if msg["type"] in _FILE_TYPES:
                    writer.write(msg)
                if msg["type"] == "frame":
                    frames += 1
                    people = max(people, int(msg["people"]["id"].max()) + 1 if len(msg["people"]["id"]) else 0)
                    progress.update(frames, people)
                elif msg["type"] in ("done", "error", "cancelled"):
                    last = msg
        except KeyboardInterrupt:
            from blender_addon.core import protocol

            last = protocol.make_message(protocol.MessageType.CANCELLED, job_id, seq, frames=frames)
            writer.write(last)
        finally:
            progress.close()
    elapsed = time.perf_counter() - started
    if cancel is not None:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        if last is not None and last["type"] == "cancelled":  # Ctrl-C is how a live run ends
            print(f"stopped: {frames} frames -> {out_path} ({_size(out_path)})")
            return EXIT_OK
    return _summary(last, frames, elapsed, out_path)


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
        return EXIT_FAILED
    if last["type"] == "done":
        print(f"done: {last['frames']} frames, {last['people']} people, {fps:.2f} frames/s, "
              f"{len(last['scene_points']['xyz'])} scene points -> {out_path} ({_size(out_path)})")
        return EXIT_OK
    if last["type"] == "cancelled":
        _err(f"interrupted after {last['frames']} frames; they are in {out_path}")
        return EXIT_INTERRUPTED
    where = last.get("frame")
    _err(f"{last['code']}: {last['message']}")
    _err(f"stopped before source frame {where}; {frames} frames kept in {out_path}")
    return EXIT_VIDEO if last["code"] == "bad_video" else EXIT_FAILED


def _size(path: Path) -> str:
    try:
        n = os.path.getsize(path)
    except OSError:
        return "?"
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"
