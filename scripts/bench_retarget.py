"""Retarget speed: 3,000 frames of an imported SMPL-X person onto a 63-bone UE5-like rig in bpy, and
export times of that person (armature + skinned body) as FBX, BVH and GLB.

Times `build_retarget.retarget_objects` end to end (read the source action, solve, write the new action
in bulk), median of --runs, with the read/solve/write split of one extra run. Target: <= 1 s median.
--target RIGIFY times the generated Rigify rig instead (FK controls through its evaluated rest pose and
constraints, plus the 3-frame check against the source; generating the rig takes a while first).
Run: PYTHONPATH=. .venv/bin/python scripts/bench_retarget.py [--frames 3000] [--runs 5] [--no-export]
     [--target UE5|RIGIFY]
"""
from __future__ import annotations

import argparse
import os
import tempfile
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import bpy  # noqa: E402

from blender_addon.blender import build_retarget  # noqa: E402
from blender_addon.blender.build_retarget import retarget_objects  # noqa: E402
from blender_addon.blender.export import FORMATS, export_person  # noqa: E402
from blender_addon.blender.file_import import import_result_file  # noqa: E402
from tests.support.synthetic_job import make_job, write_job  # noqa: E402
from tests.support.bpy_rigs import build_armature  # noqa: E402
from tests.support.humanoids import skeleton  # noqa: E402


def split(source, target) -> dict[str, float]:
    """Seconds spent reading the source action, solving, and writing the new action (one run)."""
    from blender_addon.core.retarget.bonemaps import preset_map
    from blender_addon.core.retarget.solve import RetargetOptions, retarget_channels

    out = {}
    t0 = time.perf_counter()
    src, tgt = build_retarget.rig_spec(source), build_retarget.rig_spec(target)
    frames, rotation, location = build_retarget.source_motion(source, src)
    out["read"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    bm = preset_map("AUTO", tgt.names)
    result = retarget_channels(src, rotation, location, tgt, bm, RetargetOptions())
    out["solve"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    build_retarget._write_action(target, "split", frames, tgt, result)
    out["write"] = time.perf_counter() - t0
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=3000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-export", action="store_true", help="skip the export timings")
    parser.add_argument("--target", choices=("UE5", "RIGIFY"), default="UE5",
                        help="63-bone UE5-like rig, or Rigify's generated human rig")
    args = parser.parse_args()
    bpy.ops.wm.read_factory_settings(use_empty=True)
    with tempfile.TemporaryDirectory() as tmp:
        path = write_job(Path(tmp) / "bench.h3r", make_job(n_frames=args.frames, people=((1, 0, args.frames),),
                                                           points_per_frame=1, scene_points=1))
        import_result_file(path, {"point_mode": "NONE", "expressions": False})
    source = next(o for o in bpy.data.objects if o.type == "ARMATURE" and "human3r_track_id" in o)
    if args.target == "RIGIFY":
        import addon_utils

        addon_utils.enable("rigify", default_set=True)
        bpy.ops.object.armature_human_metarig_add()
        bpy.ops.pose.rigify_generate()
        target = bpy.context.view_layer.objects.active
    else:
        target = build_armature(skeleton("UE5", "A", roll_seed=1), "target")
    times = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        report = retarget_objects(source, target, "AUTO")
        times.append(time.perf_counter() - t0)
    print(f"retarget {args.frames} frames onto {len(target.data.bones)} bones ({report.bones} driven): "
          f"median {statistics.median(times):.3f} s, runs {', '.join(f'{t:.3f}' for t in times)}")
    if args.target == "UE5":  # the split reads the data-bone rest (a rig without constraints)
        print("split of one run: " + ", ".join(f"{k} {v:.3f} s" for k, v in split(source, target).items()))
    if not args.no_export:
        with tempfile.TemporaryDirectory() as out:
            for fmt in ("FBX", "BVH", "GLB"):
                t0 = time.perf_counter()
                export_person(source, os.path.join(out, "person"), fmt)
                size = os.path.getsize(os.path.join(out, "person" + FORMATS[fmt])) / 1e6
                print(f"export {fmt}: {time.perf_counter() - t0:.2f} s, {size:.1f} MB ({args.frames} frames, with mesh)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
