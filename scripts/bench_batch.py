"""Batch benchmark: what the Ray path costs per clip, and how it scales with workers.

1. Per-clip overhead (tiny preset = the parity fixture's checkpoint at 112 px, CPU, 1 model thread):
   the same synthetic clips (`--frames`, default 200) run by `human3r infer` (one process per clip,
   as a user would) and by `human3r batch` with one worker. Compared per clip: infer's job time (its
   own "frames/s" line: decode, model, post-processing and writing, model load excluded) vs the
   batch driver's time from handing the clip to the worker until its result arrived (the same job
   plus Ray dispatch, progress streaming, rename and completion record). Target: overhead <= 5 %.
   `--reps` interleaved rounds (infer on every clip, then the batch); the headline is the median of
   the per-clip ratios, because the background load of a shared machine drifts between rounds.
   Ray's own share is also given without that drift: the driver-side time over the same job's time
   measured inside the worker (dispatch, progress streaming, rename and record on top of the job).
   Whole-run wall times (Ray start-up and model loads included) are printed too.
2. Scaling: `--scale-clips` clips of `--scale-frames` frames with 1 and then 2 CPU workers (one core
   and one model thread each); throughput from the first clip handed out to the last result. On a
   2-core machine the gain is bounded by the cores (each worker's decoding process competes too).

    python scripts/bench_batch.py [--clips 3] [--frames 200] [--reps 3] [--scale-clips 4] [--scale-frames 80]

Without --smplx a synthetic SMPL-X model (tests/support) is written to a temporary folder.
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED = Path(os.environ.get("HUMAN3R_SHARED", REPO.parent / "shared"))
TINY = {"size": 112}


def make_clips(folder: Path, count: int, frames: int, prefix: str) -> list[Path]:
    """`count` synthetic 256x192 clips of `frames` frames (a moving square on a gradient)."""
    from tests.farm.clips import moving_blob
    from tests.video.media import write_video

    return [write_video(folder / f"{prefix}{i}.mp4", [moving_blob(256, 192, k, i) for k in range(frames)])
            for i in range(count)]


def infer_clip(clip: Path, out: Path, checkpoint: str, smplx: str) -> tuple[float, float]:
    """Run `human3r infer` in its own process; returns (job seconds, process wall seconds)."""
    cmd = [sys.executable, "-m", "backend", "infer", str(clip), "-o", str(out), "--checkpoint", checkpoint,
           "--smplx", smplx, "--device", "cpu", "--threads", "1", "--quiet", "--size", str(TINY["size"])]
    started = time.perf_counter()
    run = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    wall = time.perf_counter() - started
    match = re.search(r"done: (\d+) frames, .*?([\d.]+) frames/s", run.stdout)
    if run.returncode != 0 or match is None:
        raise SystemExit(f"infer failed on {clip}: {run.stdout}{run.stderr[-2000:]}")
    frames, fps = int(match.group(1)), float(match.group(2))
    return frames / fps, wall


def batch_clips(clips: list[Path], out: Path, model: dict, workers: int) -> tuple[dict[str, float], dict[str, float],
                                                                                 float, float]:
    """Run the clips through `run_batch` (forced, fresh folder); returns (name -> driver-side seconds
    from hand-out to result, name -> the worker's own job seconds, seconds from the first hand-out to
    the last result, whole wall seconds)."""
    from backend.farm.driver import BatchSettings, run_batch
    from backend.farm.inputs import ClipInput

    started_at: dict[str, float] = {}
    seconds: dict[str, float] = {}
    job_seconds: dict[str, float] = {}

    def on_event(event, state, payload):
        if event == "start":
            started_at[state.clip.name] = time.perf_counter()
        elif event == "end":
            seconds[state.clip.name] = time.perf_counter() - started_at[state.clip.name]
            job_seconds[state.clip.name] = payload["seconds"]

    t0 = time.perf_counter()
    report = run_batch([ClipInput(c, c.stem) for c in clips], out, dict(TINY),
                       BatchSettings(model=model, workers=workers, cpus_per_worker=1, force=True, quiet=True),
                       on_event)
    wall = time.perf_counter() - t0
    bad = [c.clip.name for c in report.clips if c.status != "done"]
    if bad:
        raise SystemExit(f"batch failed on {bad}")
    span = max(started_at[n] + s for n, s in seconds.items()) - min(started_at.values())
    return seconds, job_seconds, span, wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default=str(SHARED / "fixtures/parity-small/checkpoint.pth"))
    parser.add_argument("--smplx", default=None)
    parser.add_argument("--clips", type=int, default=3)
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--scale-clips", type=int, default=4)
    parser.add_argument("--scale-frames", type=int, default=80)
    parser.add_argument("--scale-reps", type=int, default=2)
    args = parser.parse_args()

    from backend.farm.cluster import connect, disconnect

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        smplx = args.smplx
        if smplx is None:
            from tests.support.synthetic_smplx import write_synthetic_smplx

            smplx = str(write_synthetic_smplx(tmp / "smplx" / "SMPLX_NEUTRAL.npz"))
        model = {"checkpoint": args.checkpoint, "smplx": smplx, "device": "cpu", "precision": "fp32", "threads": 1}
        clips = make_clips(tmp, args.clips, args.frames, "clip")
        cores = os.cpu_count() or 1
        t0 = time.perf_counter()
        resources = connect(None, num_cpus=max(2, cores))
        print(f"{len(clips)} clips x {args.frames} frames, tiny preset, CPU, 1 model thread; {cores} cores; "
              f"local Ray started in {time.perf_counter() - t0:.1f} s; load average {os.getloadavg()[0]:.1f}")
        try:
            ratios, ray_shares, infer_walls, batch_walls = [], [], [], []
            for rep in range(args.reps):
                infer_s = {}
                infer_wall = 0.0
                for clip in clips:
                    infer_s[clip.stem], wall = infer_clip(clip, tmp / f"infer_{clip.stem}.h3r", args.checkpoint, smplx)
                    infer_wall += wall
                batch_s, job_s, _span, batch_wall = batch_clips(clips, tmp / "batch_out", model, workers=1)
                infer_walls.append(infer_wall)
                batch_walls.append(batch_wall)
                for name, seconds in batch_s.items():
                    ratios.append(seconds / infer_s[name])
                    ray_shares.append(seconds / job_s[name] - 1)
                    print(f"  round {rep + 1} {name}: infer job {infer_s[name]:.2f} s, batch clip {seconds:.2f} s "
                          f"(its job inside the worker {job_s[name]:.2f} s), ratio {seconds / infer_s[name]:.3f}")
            overhead = statistics.median(ratios) - 1
            print(f"per-clip overhead of the Ray path: median {overhead * 100:+.1f} % "
                  f"(min {(min(ratios) - 1) * 100:+.1f} %, max {(max(ratios) - 1) * 100:+.1f} %, {len(ratios)} pairs; "
                  f"target <= 5 %) -> {'OK' if overhead <= 0.05 else 'OVER TARGET'}")
            print(f"Ray's own share (driver-side clip time over the same job timed inside the worker, so free of "
                  f"the load drift between processes): median {statistics.median(ray_shares) * 100:+.2f} %, "
                  f"max {max(ray_shares) * 100:+.2f} %")
            print(f"whole runs, start-up and model loads included: infer processes {statistics.median(infer_walls):.1f} s, "
                  f"batch (one worker) {statistics.median(batch_walls):.1f} s (medians of {args.reps})")

            scale = make_clips(tmp, args.scale_clips, args.scale_frames, "scale")
            total = args.scale_clips * args.scale_frames
            rates: dict[int, list[float]] = {1: [], 2: []}
            for rep in range(args.scale_reps):
                for workers in (1, 2):
                    _s, _j, span, wall = batch_clips(scale, tmp / f"scale_out{workers}", model, workers=workers)
                    rates[workers].append(total / span)
                    print(f"  scaling round {rep + 1}, {workers} worker(s): {total / span:.2f} frames/s "
                          f"({span:.1f} s for {total} frames; whole run {wall:.1f} s)")
            one, two = statistics.median(rates[1]), statistics.median(rates[2])
            print(f"scaling: 1 worker {one:.2f} frames/s, 2 workers {two:.2f} frames/s -> x{two / one:.2f} "
                  f"(medians of {args.scale_reps}; {cores} cores, so at most about x{min(2, cores / 1):.0f})")
        finally:
            disconnect(resources)
    return 0


if __name__ == "__main__":
    sys.exit(main())
