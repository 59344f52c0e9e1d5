"""`human3r batch INPUTS... -o OUT_DIR`: many clips on every GPU of a machine or a Ray cluster.

INPUTS are video files, image folders, folders to scan, or manifests (`.txt`/`.list`: one
``PATH [option=value ...]`` per line; `.csv`: a header with ``path``, optional ``name`` and option
columns). Each clip gives `OUT_DIR/<name>.h3r`, the same file `human3r infer` writes, plus a
completion record `<name>.h3r.json`; `OUT_DIR/batch.json` summarises the run. A rerun skips clips
whose result exists for the same options, checkpoint and input (`--force` redoes them).

Without `--address` a local Ray instance is started (loopback only) with one worker per GPU, or one
per two CPU cores without GPUs. Needs the `farm` extra (Ray).

Exit status: 0 every clip done or skipped; 1 some clip failed; 2 bad option or input list;
3 Ray, the checkpoint or the SMPL-X model unusable; 130 interrupted (finished results stay).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from backend.cli.common import (
    EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_SETUP, EXIT_USAGE, add_model_file_arguments,
    model_file_argument_error,
)
from backend.engine.options import add_model_arguments, options_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="video file, image folder, folder to scan, or manifest (.txt/.list/.csv)")
    parser.add_argument("-o", "--out-dir", required=True, help="folder for the results (shared storage on a cluster)")
    add_model_file_arguments(parser)
    g = parser.add_argument_group("cluster")
    g.add_argument("--address", default=None,
                   help="join a Ray cluster: auto (this machine's cluster), HOST:PORT or ray://HOST:10001 "
                        "(default: start a local instance)")
    g.add_argument("--workers", type=int, default=None,
                   help="number of workers (default: one per GPU; without GPUs one per --cpus-per-worker cores)")
    g.add_argument("--cpus-per-worker", type=int, default=None,
                   help="CPU cores per worker (default: 2 without GPUs; with GPUs the CPUs per GPU, at most 4)")
    g.add_argument("--retries", type=int, default=2,
                   help="re-runs of a clip whose worker or node died (default 2; bad input is never retried)")
    g.add_argument("--force", action="store_true", help="redo clips whose result already exists")
    g.add_argument("--retry-failed", action="store_true", help="run again clips recorded as bad input")
    g.add_argument("--dashboard", action="store_true", help="start the Ray dashboard of a local instance (127.0.0.1)")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    add_model_arguments(parser)


def _err(text: str) -> None:
    print(f"human3r batch: {text}", file=sys.stderr)


def _checked_options(args: argparse.Namespace) -> tuple[dict | None, str | None]:
    """(the batch's JobOptions map, None) or (None, what is wrong with the arguments)."""
    from backend.engine.options import JobOptions

    try:
        options = JobOptions.from_dict(options_from_args(args)).to_dict()
    except ValueError as exc:
        return None, str(exc)
    problem = _usage_problem(args)
    return (None, problem) if problem else (options, None)


def _usage_problem(args: argparse.Namespace) -> str | None:
    for flag, value in (("--workers", args.workers), ("--cpus-per-worker", args.cpus_per_worker)):
        if value is not None and value < 1:
            return f"{flag} must be >= 1, got {value}"
    if args.retries < 0:
        return f"--retries must be >= 0, got {args.retries}"
    out = Path(args.out_dir)
    if out.exists() and not out.is_dir():
        return f"output {out} is a file; give a folder"
    return model_file_argument_error(args)


def run(args: argparse.Namespace) -> int:
    from backend.farm.inputs import InputError, collect_clips

    base, problem = _checked_options(args)
    if problem is not None:
        _err(problem)
        return EXIT_USAGE
    try:
        clips = collect_clips(args.inputs)
    except InputError as exc:
        _err(str(exc))
        return EXIT_USAGE
    from backend.smplx_model import SmplxNotFoundError, resolve_smplx_path

    if args.address is None:  # local workers read the same files: check them before starting anything
        try:
            resolve_smplx_path(args.smplx)
        except SmplxNotFoundError as exc:
            _err(str(exc))
            return EXIT_SETUP

    from backend.farm.driver import BatchSettings, SetupError, run_batch

    model = {"checkpoint": _absolute(args.checkpoint), "smplx": _absolute(args.smplx), "device": args.device,
             "precision": base["precision"], "threads": args.threads,
             "graphs": args.graphs}
    settings = BatchSettings(model=model, address=args.address, workers=args.workers,
                             cpus_per_worker=args.cpus_per_worker, retries=args.retries, force=args.force,
                             retry_failed=args.retry_failed, dashboard=args.dashboard, quiet=args.quiet)
    out_dir = Path(args.out_dir).absolute()
    try:
        report = run_batch(clips, out_dir, base, settings)
    except SetupError as exc:
        _err(str(exc))
        return EXIT_SETUP
    counts = {s: report.count(s) for s in ("done", "skipped", "failed", "cancelled", "not_run")}
    print(f"batch: {counts['done']} done, {counts['skipped']} skipped, {counts['failed']} failed"
          + (f", {counts['cancelled']} cancelled, {counts['not_run']} not run" if report.interrupted else "")
          + f" in {report.seconds:.1f} s -> {out_dir / 'batch.json'}")
    for state in report.clips:
        if state.status == "failed" and state.error:
            reason = f" ({state.error['reason']})" if state.error.get("reason") else ""
            _err(f"{state.clip.name}: {state.error['code']}{reason}: {state.error['message']}")
    if report.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_FAILED if counts["failed"] else EXIT_OK


def _absolute(path: str | None) -> str | None:
    """Workers may run in another folder: hand them absolute paths."""
    return None if path is None else str(Path(path).expanduser().absolute())
