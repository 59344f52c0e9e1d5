"""Clean-up in Blender: a refined job imports with the floor at z = 0 and a standing person's feet on it;
import with clean-up on, the re-apply operator, and the live wrapper keying the floor once."""
from __future__ import annotations

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from blender_addon.blender import compat  # noqa: E402
from blender_addon.blender.cleanup import LiveCleanup, reapply_person  # noqa: E402
from blender_addon.blender.file_import import import_result_file  # noqa: E402
from blender_addon.blender.scene_builder import SceneBuilder  # noqa: E402
from blender_addon.core.motion import refine_job  # noqa: E402
from tests.support.synthetic_job import write_job  # noqa: E402
from tests.motion.synthetic_motion import make_scene, split  # noqa: E402

pytestmark = pytest.mark.bpy
IMPORT = {"point_mode": "ACCUMULATED", "import_meshes": True, "expressions": False}


@pytest.fixture(scope="module")
def scene_msgs():
    return make_scene(seed=11, n_frames=60, kinds=("stand", "walk")).messages


def world_vertices(obj) -> np.ndarray:
    depsgraph = bpy.context.evaluated_depsgraph_get()
    ob_eval = obj.evaluated_get(depsgraph)
    me = ob_eval.to_mesh()
    co = np.empty(3 * len(me.vertices), dtype=np.float64)
    me.vertices.foreach_get("co", co)
    ob_eval.to_mesh_clear()
    m = np.array(obj.matrix_world)
    return co.reshape(-1, 3) @ m[:3, :3].T + m[:3, 3]


def floor_height(cloud) -> float:
    """Median world z of the cloud's points near z = 0 (the mesh's own vertices: its modifier draws points)."""
    co = np.empty(3 * len(cloud.data.vertices), dtype=np.float64)
    cloud.data.vertices.foreach_get("co", co)
    m = np.array(cloud.matrix_world)
    z = (co.reshape(-1, 3) @ m[:3, :3].T + m[:3, 3])[:, 2]
    near = z[np.abs(z) < 0.2]
    return float(np.median(near))


def lowest_foot(summary, pid: int, frames) -> list[float]:
    mesh = [o for o in bpy.data.objects[summary["armatures"][pid]].children if o.type == "MESH"][0]
    out = []
    for f in frames:
        bpy.context.scene.frame_set(f)
        out.append(float(world_vertices(mesh)[:, 2].min()))
    return out


def check_floor_and_standing_feet(summary):
    assert abs(floor_height(bpy.data.objects[summary["clouds"]["scene"]])) <= 0.01
    lows = lowest_foot(summary, 1, (5, 20, 40, 58))  # person 1 stands (frame 5: before a live floor exists)
    assert all(-0.005 <= z <= 0.02 for z in lows), lows


def test_refined_job_imports_with_floor_at_zero(factory_scene, scene_msgs, tmp_path):
    refined = refine_job(*split(scene_msgs))
    path = write_job(tmp_path / "refined.h3r", [refined.header, *refined.frames, *refined.tracks, refined.end])
    summary = import_result_file(path, IMPORT)
    check_floor_and_standing_feet(summary)
    # the raw job, imported as it is, stands on the first camera's tilted world, off the z = 0 plane
    raw = import_result_file(write_job(tmp_path / "raw.h3r", scene_msgs), IMPORT)
    assert all(abs(z) > 0.05 for z in lowest_foot(raw, 1, (5, 40))), lowest_foot(raw, 1, (5, 40))


def test_import_with_cleanup_keys_contacts_and_reapplies(factory_scene, scene_msgs, tmp_path):
    path = write_job(tmp_path / "raw.h3r", scene_msgs)
    summary = import_result_file(path, IMPORT, cleanup={"smooth": 1.0})
    check_floor_and_standing_feet(summary)
    arm = bpy.data.objects[summary["armatures"][1]]
    fc = compat.find_fcurve(arm, '["h3r_contact_left_heel"]')
    assert fc is not None and len(fc.keyframe_points) == 60
    values = np.empty(2 * 60, np.float32)
    fc.keyframe_points.foreach_get("co", values)
    assert values[1::2].mean() > 0.9  # standing: in contact nearly all the time
    before = compat.find_fcurve(arm, 'pose.bones["pelvis"].location', 0)
    n_before = len(before.keyframe_points)
    message = reapply_person(arm, {"smooth": 3.0, "foot_lock": True})
    assert "Re-applied" in message
    after = compat.find_fcurve(arm, 'pose.bones["pelvis"].location', 0)
    assert len(after.keyframe_points) == n_before
    check_floor_and_standing_feet(summary)  # same world as the rest of the scene


def test_live_cleanup_keys_the_floor_once(factory_scene):
    header, frames, tracks, end = split(make_scene(seed=11, n_frames=90, kinds=("stand", "walk"),
                                                   frame_points=True).messages)
    builder = LiveCleanup(SceneBuilder("live", IMPORT, tracks=tracks), {"smooth": 1.0})
    builder.on_header(header)
    for i in range(0, len(frames), 8):
        builder.on_frames(frames[i:i + 8])
    summary = builder.on_end(end)
    floor = builder.floor
    assert floor is not None
    fcs = [fc for fc in compat.fcurves_of(floor) if fc.data_path == "location"]
    assert fcs and all(len(fc.keyframe_points) == 1 for fc in fcs)
    for name in (summary["camera"], summary["armatures"][1], summary["clouds"]["scene"]):
        assert bpy.data.objects[name].parent is floor
    # held for every frame, including those before the estimate; live runs filter causally and do not
    # lock feet (that needs the frames after a contact), so the feet are on the floor within the noise
    assert abs(floor_height(bpy.data.objects[summary["clouds"]["scene"]])) <= 0.01
    lows = lowest_foot(summary, 1, range(5, 90, 5))
    assert abs(float(np.median(lows))) <= 0.02, lows
