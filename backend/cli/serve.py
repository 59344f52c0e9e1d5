"""`human3r serve`: load the engine once and serve jobs over ZeroMQ until interrupted.

Media roots default to the user's home directory only (see `settings.default_media_roots`); the
results directory defaults to ~/.human3r/results. Binding anything but loopback requires
`--curve-secret` (make keys with `human3r keys`).
"""
from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from backend.cli.common import (
    EXIT_OK, EXIT_SETUP, EXIT_USAGE, add_model_file_arguments, model_file_argument_error, model_load_error,
)
from backend.engine.options import PRECISIONS
from backend.server.settings import DEFAULT_BIND, ServerSettings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = ServerSettings.__dataclass_fields__
    parser.add_argument("--bind", default=DEFAULT_BIND,
                        help=f"ZeroMQ endpoint (default {DEFAULT_BIND}; port 0 picks a free one)")
    add_model_file_arguments(parser)
    parser.add_argument("--precision", default="auto", choices=PRECISIONS,
                        help="numeric mode of the loaded model: auto (fast on CUDA, fp32 elsewhere), fp32 (the "
                             "reference's numerics), fast (bf16 weights cast once); bf16 = fast")
    parser.add_argument("--media-root", action="append", default=None, metavar="DIR",
                        help="directory videos may come from (repeatable; default: your home directory)")
    parser.add_argument("--results-dir", default=None, help="where job result files go (default ~/.human3r/results)")
    parser.add_argument("--keep-results-days", type=float, default=d["results_keep_days"].default,
                        help="delete result files older than this (days; 0 = keep; default %(default)s)")
    parser.add_argument("--max-results-gb", type=float, default=d["results_max_gb"].default,
                        help="delete the oldest result files above this total (GB; 0 = no limit; default %(default)s)")
    sec = parser.add_argument_group("CurveZMQ (required to bind beyond loopback)")
    sec.add_argument("--curve-secret", metavar="FILE", help="the server's NAME.key_secret from `human3r keys`")
    sec.add_argument("--curve-public", metavar="FILE", help="the server's NAME.key (optional; read from the secret)")
    sec.add_argument("--allow-client-key", action="append", default=[], metavar="KEY",
                     help="a client public key: z85 text, a .key file or a folder of them (repeatable)")
    lim = parser.add_argument_group("timings and limits")
    lim.add_argument("--heartbeat", type=float, default=d["heartbeat_s"].default, help="seconds between heartbeats")
    lim.add_argument("--peer-timeout", type=float, default=d["peer_timeout_s"].default,
                     help="drop a client silent this many seconds and cancel its jobs")
    lim.add_argument("--stall-timeout", type=float, default=d["stall_timeout_s"].default,
                     help="cancel a job whose client grants no credits this many seconds")
    lim.add_argument("--busy-stall-timeout", type=float, default=d["busy_stall_timeout_s"].default,
                     help="... and this many seconds while another client's job waits (default %(default)s)")
    lim.add_argument("--max-frames-per-job", type=int, default=d["max_frames_per_job"].default)
    lim.add_argument("--max-size", type=int, default=d["max_size"].default,
                     help="largest model input size (--size) a job may ask for (default %(default)s)")
    lim.add_argument("--max-jobs-per-client", type=int, default=d["max_jobs_per_client"].default)
    lim.add_argument("--max-queue", type=int, default=d["max_queue"].default)
    lim.add_argument("--max-request-bytes", type=int, default=d["max_request_bytes"].default)
    lim.add_argument("--stream-queue", type=int, default=d["stream_queue_messages"].default,
                     help="messages buffered per job before the worker waits for the client")
    parser.add_argument("--shared-results", action="store_true",
                        help="let every client see, fetch and cancel every job (default: only its own)")
    parser.add_argument("--live", action="append", default=[], metavar="NAME=URL",
                        help="a camera or stream clients may ask for by NAME (repeatable): rtsp://, rtsp+udp://, "
                             "rtmp://, udp://, rtp://, http(s)://, /dev/videoN; add ?listen=1 to an rtsp/rtmp URL "
                             "to receive a pushed stream. Clients never supply URLs")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])


def settings_from_args(args: argparse.Namespace) -> ServerSettings:
    """Build and security-check the settings (raises SecurityError or ValueError before anything heavy loads)."""
    from backend.server import security

    kwargs: dict = {}
    if args.media_root:
        kwargs["media_roots"] = tuple(Path(p).expanduser().resolve() for p in args.media_root)
    if args.results_dir:
        kwargs["results_dir"] = Path(args.results_dir).expanduser()
    for name, value in (("--keep-results-days", args.keep_results_days), ("--max-results-gb", args.max_results_gb)):
        if not value >= 0:  # also refuses NaN
            raise ValueError(f"{name} must be >= 0 (0 = no limit), got {value}")
    kwargs["results_keep_days"] = args.keep_results_days
    kwargs["results_max_gb"] = args.max_results_gb
    if args.curve_secret:
        public, secret = security.load_keypair(args.curve_secret)
        if args.curve_public:
            public = security.load_public_key(args.curve_public)
        kwargs.update(curve_secret_key=secret, curve_public_key=public,
                      allowed_client_keys=security.load_public_keys(args.allow_client_key))
        if not kwargs["allowed_client_keys"]:
            raise security.SecurityError("--curve-secret needs at least one --allow-client-key (the public keys "
                                         "of the clients that may connect)")
    elif args.allow_client_key:
        raise security.SecurityError("--allow-client-key needs --curve-secret")
    from backend.video.live import LiveSpec

    from backend.server import live_sources

    kwargs["live_sources"] = live_sources.table(LiveSpec.parse(text) for text in args.live)
    settings = ServerSettings(
        bind=args.bind, heartbeat_s=args.heartbeat, peer_timeout_s=args.peer_timeout,
        stall_timeout_s=args.stall_timeout, busy_stall_timeout_s=args.busy_stall_timeout,
        max_frames_per_job=args.max_frames_per_job, max_size=args.max_size, shared_results=args.shared_results,
        max_jobs_per_client=args.max_jobs_per_client, max_queue=args.max_queue,
        max_request_bytes=args.max_request_bytes, stream_queue_messages=args.stream_queue, **kwargs)
    security.check_bind(settings.bind, settings.curve_enabled)
    security.check_bindable(settings.bind)
    return settings


def run(args: argparse.Namespace) -> int:
    from backend.server import security

    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log = logging.getLogger("human3r.serve")
    try:
        settings = settings_from_args(args)
    except (security.SecurityError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if (problem := model_file_argument_error(args)) is not None:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_USAGE

    from backend.engine.job import iter_job_messages
    from backend.engine.options import JobOptions
    from backend.engine.stream import Engine

    from backend.server.app import Server

    log.info("loading the model (%s) on %s", args.checkpoint or "default checkpoint", args.device)
    try:
        engine = Engine.from_paths(args.checkpoint, args.smplx, device=args.device, precision=args.precision,
                                   strict_checkpoint=args.strict_checkpoint, graphs=args.graphs)
    except Exception as exc:
        if (message := model_load_error(exc, args.checkpoint)) is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        return EXIT_SETUP
    threads = engine.use_cpu_threads(args.threads)
    log.info("model on %s with %d CPU threads", engine.device, threads)
    info = {"device": str(engine.device), "precision": args.precision,
            "model": engine.describe()}
    server = Server(settings, iter_job_messages, engine, options_parser=JobOptions.from_dict, info=info)
    endpoint = server.start()
    print(f"human3r server listening on {endpoint}", flush=True)
    log.info("media roots: %s; results in %s", ", ".join(map(str, settings.media_roots)), settings.results_dir)
    if settings.live_sources:
        log.info("live sources: %s", ", ".join(f"{s.name} ({s.kind})" for s in settings.live_sources.values()))

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(0.5):
        if not server.serving:
            log.error("the socket thread ended unexpectedly")
            break
    log.info("shutting down")
    server.stop()
    return EXIT_OK
