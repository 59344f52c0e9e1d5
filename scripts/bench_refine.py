"""Benchmark the motion clean-up (numpy, no bpy).

    python scripts/bench_refine.py                       # 4 people x 3,000 frames, 5 runs
    python scripts/bench_refine.py --frames 600 --runs 3 # quicker

Targets (issue 10): offline refinement of 4 people x 3,000 frames <= 2 s (median of the runs), live
filters <= 1 ms per frame for 4 people. Figures printed:
- offline: `refine_job` (smoothing, floor, contacts, foot lock) on decoded messages, wall and CPU time,
  median and best of `--runs`; one run's stage breakdown is not timed separately;
- live: `LiveRefiner.frame` per frame (One Euro on every joint of every person; floor evidence while
  the floor is not found yet and after), median and p95 over the stream.
Inputs are generated first (not timed) with tests/motion/synthetic_motion.py (walking, standing and
jumping people with model-like noise, moving camera, floor + walls cloud). On a shared machine the CPU
figure is the one to compare.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=3000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)

    from blender_addon.core import protocol
    from blender_addon.core.motion import LiveRefiner, refine_job
    from tests.motion.synthetic_motion import make_scene, split

    t0 = time.perf_counter()
    scene = make_scene(seed=0, n_frames=args.frames, kinds=("walk", "walk", "stand", "jump"), frame_points=True)
    msgs = [protocol.decode(protocol.encode(m)) for m in scene.messages]  # read-only arrays, as read from a file
    header, frames, tracks, end = split(msgs)
    print(f"inputs: 4 people x {args.frames} frames generated in {time.perf_counter() - t0:.1f} s")

    walls, cpus = [], []
    for _ in range(args.runs):
        w, c = time.perf_counter(), time.process_time()
        result = refine_job(header, frames, tracks, end)
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    rep = result.report
    print(f"offline refine_job: median {statistics.median(walls):.3f} s wall / {statistics.median(cpus):.3f} s CPU, "
          f"best {min(walls):.3f} s wall over {args.runs} runs (target <= 2 s for 4 x 3,000)")
    print(f"  ground {rep['ground'].get('evidence')} (confidence {rep['ground'].get('confidence')}), "
          f"{rep['smooth'].get('outlier_frames')} outlier frames, {rep['foot_lock'].get('contact_samples')} contact samples")

    live = LiveRefiner({"smooth": 1.0})
    live.header(header)
    per_frame, cpu_total = [], time.process_time()
    found_at = None
    for i, f in enumerate(frames):
        t = time.perf_counter()
        out = live.frame(f)
        per_frame.append(time.perf_counter() - t)
        if "ground" in out:
            found_at = i
    cpu_ms = (time.process_time() - cpu_total) * 1000 / max(len(frames), 1)
    ms = np.array(per_frame) * 1000
    after = ms[found_at + 1:] if found_at is not None else ms
    print(f"live LiveRefiner.frame: median {np.median(ms):.3f} ms, p95 {np.percentile(ms, 95):.3f} ms per frame "
          f"for 4 people (target <= 1 ms); after the floor is held: median {np.median(after):.3f} ms; "
          f"floor found at frame {found_at}; mean CPU {cpu_ms:.3f} ms per frame")
    return 0


if __name__ == "__main__":
    sys.exit(main())
