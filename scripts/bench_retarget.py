"""Retarget speed: 3,000 frames of an imported SMPL-X person onto a 60-bone UE5-like rig in bpy.

Times `build_retarget.retarget_objects` end to end (read the source action, solve, write the new action
in bulk), median of --runs. Target: <= 1 s median. Run: PYTHONPATH=. .venv/bin/python scripts/bench_retarget.py
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import bpy  # noqa: E402

from blender_addon.blender.build_retarget import retarget_objects  # noqa: E402
from blender_addon.blender.scene_builder import import_result_file  # noqa: E402
from tests.core.synthetic_job import make_job, write_job  # noqa: E402
from tests.support.humanoids import skeleton  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=3000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    import tempfile
    bpy.ops.wm.read_factory_settings(use_empty=True)
    with tempfile.TemporaryDirectory() as tmp:
        path = write_job(Path(tmp) / "bench.h3r", make_job(n_frames=args.frames, people=((1, 0, args.frames),),
                                                           points_per_frame=1, scene_points=1))
        import_result_file(path, {"point_mode": "NONE", "import_meshes": False})
    source = next(o for o in bpy.data.objects if o.type == "ARMATURE" and "human3r_track_id" in o)
    sk = skeleton("UE5", "A", roll_seed=1)
    target = bpy.data.objects.new("target", bpy.data.armatures.new("target"))
    bpy.context.scene.collection.objects.link(target)
    bpy.context.view_layer.objects.active = target
    bpy.ops.object.mode_set(mode="EDIT")
    made = []
    for n, p, h, t, r in zip(sk.names, sk.parents, sk.heads, sk.tails, sk.rolls):
        eb = target.data.edit_bones.new(n)
        eb.head, eb.tail, eb.roll = h.tolist(), t.tolist(), float(r)
        if p >= 0:
            eb.parent = made[p]
        made.append(eb)
    bpy.ops.object.mode_set(mode="OBJECT")
    times = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        report = retarget_objects(source, target, "AUTO")
        times.append(time.perf_counter() - t0)
    print(f"retarget {args.frames} frames onto {len(target.data.bones)} bones ({report.bones} driven): "
          f"median {statistics.median(times):.3f} s, runs {', '.join(f'{t:.3f}' for t in times)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
