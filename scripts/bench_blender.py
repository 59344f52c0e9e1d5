"""Benchmark the Blender scene import (run under a Python with the `bpy` module, e.g. bpy 5.0.1).

    python scripts/bench_blender.py                 # 4 people x 3,000 frames, a crowd, 10 M scene points
    python scripts/bench_blender.py --frames 300 --points 1000000 --crowd 50 --crowd-frames 300  # quicker

Targets: 4 people x 3,000 frames <= 2 s, 10 M points <= 5 s, crowd import linear in people, no live
tick longer than the timer's budget. Figures printed:
- people: whole `import_result_file` (file read + plan + bpy), and the planner alone (numpy);
- live: `on_frames` time per timer-sized batch at the end of the long stream (bounded work per call);
- crowd: `import_result_file` of --crowd people x --crowd-frames frames (default 200 x 3,000), people
  entering one after another, plus the largest single `on_frames` call (the worst stall of a live run)
  while --live-crowd people (default 50) enter a live stream in timer-sized batches;
- points: `import_result_file` of a job whose `done` message carries the scene cloud, the builder's
  `on_end` alone, and the first depsgraph evaluation of the point display (Geometry Nodes).
Synthetic inputs are generated first (not timed) with tests/core/synthetic_job.py. Wall and CPU
(process) time are both printed: on a shared machine the CPU figure is the one to compare.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def people_job(frames: int, people: int) -> list[dict]:
    from tests.support.synthetic_job import make_job
    spans = tuple((pid + 1, 0, frames) for pid in range(people))
    return make_job(n_frames=frames, people=spans, points_per_frame=0, scene_points=0)


def points_job(n: int) -> list[dict]:
    from blender_addon.core import protocol
    from tests.support.synthetic_job import JOB, header_message
    rng = np.random.default_rng(0)
    xyz = rng.uniform((-10, -3, 1), (10, 2, 30), (n, 3)).astype(np.float32)
    rgb = rng.integers(0, 256, (n, 3), dtype=np.uint8)
    done = protocol.make_message(protocol.MessageType.DONE, JOB, 1, frames=0, people=0, elapsed_s=0.0, fps=0.0,
                                 scene_points={"xyz": xyz, "rgb": rgb})
    return [header_message(frame_count=1), done]


def timed(fn, wall: list, cpu: list) -> None:
    """Call fn(); append its wall and CPU (process) seconds."""
    t, c = time.perf_counter(), time.process_time()
    fn()
    wall.append(time.perf_counter() - t)
    cpu.append(time.process_time() - c)


def crowd_job(frames: int, people: int) -> list[dict]:
    """`people` tracks, each entering a little after the previous one and staying to the end."""
    from tests.support.synthetic_job import make_job
    step = max(1, frames // (2 * people))
    spans = tuple((pid + 1, min(frames - 1, pid * step), frames) for pid in range(people))
    return make_job(n_frames=frames, people=spans, points_per_frame=0, scene_points=0)


def crowd_import(people: int, frames: int, tmp: Path) -> None:
    import bpy

    from blender_addon.blender.file_import import import_result_file
    from tests.support.synthetic_job import write_job

    t = time.perf_counter()
    path = write_job(tmp / "crowd.h3r", crowd_job(frames, people))
    print(f"[setup] crowd {people} people x {frames} frames generated in {time.perf_counter() - t:.1f} s "
          f"({path.stat().st_size / 1e6:.0f} MB)")
    bpy.ops.wm.read_factory_settings(use_empty=True)
    t, cpu = time.perf_counter(), time.process_time()
    summary = import_result_file(path, {"point_mode": "NONE"})
    print(f"crowd: import_result_file {time.perf_counter() - t:.2f} s wall, {time.process_time() - cpu:.2f} s CPU "
          f"(read {summary['read_s']:.2f} s, build {summary['build_s']:.2f} s), {len(summary['armatures'])} rigs, "
          f"{summary['keys']:,} keys")
    path.unlink()


def crowd_live(people: int, batch: int, budget_s: float = 0.010) -> None:
    """Ticks of a live run while `people` enter (one every 2 frames): each tick either continues the
    builder's queued work or hands it the next batch, both within `budget_s` (what the live timer does).
    Prints the largest tick (the worst stall of the UI) and the work-unit split."""
    import bpy

    from blender_addon.blender import gc_policy
    from blender_addon.blender.scene_builder import SceneBuilder
    from blender_addon.core.scene_plan import ImportOptions
    from tests.support.synthetic_job import decoded

    frames_n = 2 * people + 40
    dec = decoded(crowd_job(frames_n, people))
    frames = [m for m in dec if m["type"] == "frame"]
    bpy.ops.wm.read_factory_settings(use_empty=True)
    live = SceneBuilder("crowd", ImportOptions(point_mode="NONE"))
    live.on_header(dec[0])
    gc_policy.freeze_long_lived()  # as live.start does
    ticks, cpu_ticks, i = [], [], 0
    while i < len(frames) or live.busy:
        if live.busy:
            timed(lambda: live.pump(budget_s), ticks, cpu_ticks)
        else:
            timed(lambda: live.on_frames(frames[i:i + batch], budget_s=budget_s), ticks, cpu_ticks)
            i += batch
    ms, cpu_ms = np.array(ticks) * 1000, np.array(cpu_ticks) * 1000
    print(f"crowd live: {people} people entering over {frames_n} frames, batches of {batch}, {budget_s * 1000:.0f} ms "
          f"budget: {len(ticks)} ticks, largest tick {ms.max():.0f} ms wall / {cpu_ms.max():.0f} ms CPU, median "
          f"{np.median(ms):.0f} ms wall / {np.median(cpu_ms):.0f} ms CPU, {len(live.armatures)} rigs "
          f"[target: budget + one unit of work (<= 8 ms)]")
    gc_policy.thaw()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=3000)
    parser.add_argument("--people", type=int, default=4)
    parser.add_argument("--points", type=int, default=10_000_000)
    parser.add_argument("--batch", type=int, default=4, help="frames per live on_frames call")
    parser.add_argument("--crowd", type=int, default=200, help="people of the crowd import")
    parser.add_argument("--crowd-frames", type=int, default=3000, help="frames of the crowd import")
    parser.add_argument("--live-crowd", type=int, default=50, help="people entering the live crowd run")
    args = parser.parse_args(argv)

    import bpy

    from blender_addon.blender.file_import import import_result_file
    from blender_addon.blender.scene_builder import SceneBuilder
    from blender_addon.core.scene_plan import ImportOptions, ScenePlanner
    from tests.support.synthetic_job import decoded, write_job

    print(f"Blender {bpy.app.version_string}, numpy {np.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        # --- people ---------------------------------------------------------------------------------
        t = time.perf_counter()
        msgs = people_job(args.frames, args.people)
        path = write_job(Path(tmp) / "people.h3r", msgs)
        print(f"[setup] {args.people} people x {args.frames} frames generated in {time.perf_counter() - t:.1f} s "
              f"({path.stat().st_size / 1e6:.1f} MB)")
        bpy.ops.wm.read_factory_settings(use_empty=True)
        t, cpu = time.perf_counter(), time.process_time()
        summary = import_result_file(path, {"point_mode": "NONE"})
        total, cpu = time.perf_counter() - t, time.process_time() - cpu
        print(f"people: import_result_file {total:.2f} s wall, {cpu:.2f} s CPU (read {summary['read_s']:.2f} s, build "
              f"{summary['build_s']:.2f} s), {summary['keys']:,} keys, {len(summary['armatures'])} rigs "
              f"[target <= 2 s]")
        dec = decoded(msgs)
        planner = ScenePlanner(ImportOptions(point_mode="NONE"), tracks=[m for m in dec if m["type"] == "track"])
        planner.header(dec[0])
        t, cpu = time.perf_counter(), time.process_time()
        planner.frames([m for m in dec if m["type"] == "frame"])
        print(f"people: planner alone (numpy) {time.perf_counter() - t:.2f} s wall, "
              f"{time.process_time() - cpu:.2f} s CPU")

        # live: bounded work per timer tick at the end of a long stream
        bpy.ops.wm.read_factory_settings(use_empty=True)
        frames = [m for m in dec if m["type"] == "frame"]
        live = SceneBuilder("live", ImportOptions(point_mode="NONE"))
        live.on_header(dec[0])
        live.on_frames(frames[:-100])
        ticks, cpu_ticks = [], []
        for i in range(len(frames) - 100, len(frames), args.batch):
            timed(lambda: live.on_frames(frames[i:i + args.batch]), ticks, cpu_ticks)
        ticks_ms, cpu_ms = np.array(ticks) * 1000, np.array(cpu_ticks) * 1000
        print(f"live: on_frames of {args.batch} frames ({args.people} people) after {len(frames) - 100} frames: "
              f"wall mean {ticks_ms.mean():.1f} ms / max {ticks_ms.max():.1f} ms, CPU mean {cpu_ms.mean():.1f} ms / "
              f"max {cpu_ms.max():.1f} ms [goal <= 50 ms per tick]")
        del msgs, dec, planner, frames, live

        # --- crowd -----------------------------------------------------------------------------------
        crowd_import(args.crowd, args.crowd_frames, Path(tmp))
        crowd_live(args.live_crowd, args.batch)

        # --- points ---------------------------------------------------------------------------------
        t = time.perf_counter()
        msgs = points_job(args.points)
        path = write_job(Path(tmp) / "points.h3r", msgs)
        print(f"[setup] {args.points:,} points generated in {time.perf_counter() - t:.1f} s "
              f"({path.stat().st_size / 1e6:.0f} MB)")
        bpy.ops.wm.read_factory_settings(use_empty=True)
        t, cpu = time.perf_counter(), time.process_time()
        summary = import_result_file(path, {"point_mode": "ACCUMULATED", "import_camera": False})
        total, cpu = time.perf_counter() - t, time.process_time() - cpu
        print(f"points: import_result_file {total:.2f} s wall, {cpu:.2f} s CPU (read {summary['read_s']:.2f} s, build "
              f"{summary['build_s']:.2f} s), {summary['scene_points']:,} points [target <= 5 s]")
        obj = bpy.data.objects[summary["clouds"]["scene"]]
        t = time.perf_counter()
        depsgraph = bpy.context.evaluated_depsgraph_get()
        shown = sum(len(i.object.data.points) for i in depsgraph.object_instances
                    if i.object.original == obj and isinstance(i.object.data, bpy.types.PointCloud))
        print(f"points: first display evaluation (Mesh to Points) {time.perf_counter() - t:.2f} s, {shown:,} points")
        bpy.ops.wm.read_factory_settings(use_empty=True)
        builder = SceneBuilder(None, ImportOptions(point_mode="ACCUMULATED", import_camera=False))
        builder.on_header(msgs[0])
        t, cpu = time.perf_counter(), time.process_time()
        builder.on_end(msgs[1])
        print(f"points: builder.on_end alone {time.perf_counter() - t:.2f} s wall, "
              f"{time.process_time() - cpu:.2f} s CPU")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
