"""Result files and live message streams become the same scene: objects, keys on the right frames,
hidden absent people, truncated files, quaternion continuity, re-shaping on `track`, point clouds."""
from __future__ import annotations

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from blender_addon.blender import compat  # noqa: E402
from blender_addon.blender.file_import import import_result_file  # noqa: E402
from blender_addon.blender.scene_builder import SceneBuilder  # noqa: E402
from blender_addon.core.coords import M  # noqa: E402
from blender_addon.core.keyframes import bone_path  # noqa: E402
from blender_addon.core.rotations import axis_angle_to_matrix, matrix_to_quaternion  # noqa: E402
from blender_addon.core.scene_plan import ImportOptions  # noqa: E402
from tests.support.synthetic_job import decoded, make_job, write_job  # noqa: E402

pytestmark = pytest.mark.bpy


@pytest.fixture(scope="module")
def job():
    return make_job(n_frames=30, people=((1, 0, 30), (2, 10, 25)))


def keys(id_data, data_path, index=0):
    fc = compat.find_fcurve(id_data, data_path, index)
    assert fc is not None, f"no F-curve {data_path}[{index}] on {id_data.name}"
    co = np.empty(2 * len(fc.keyframe_points), dtype=np.float32)
    fc.keyframe_points.foreach_get("co", co)
    return co.reshape(-1, 2)


def mesh_extent(obj):
    depsgraph = bpy.context.evaluated_depsgraph_get()
    ob_eval = obj.evaluated_get(depsgraph)
    me = ob_eval.to_mesh()
    co = np.empty(3 * len(me.vertices), dtype=np.float32)
    me.vertices.foreach_get("co", co)
    ob_eval.to_mesh_clear()
    co = co.reshape(-1, 3)
    return co, float(np.ptp(co, axis=0).max())


def evaluated_points(obj):
    depsgraph = bpy.context.evaluated_depsgraph_get()
    return sum(len(inst.object.data.points) for inst in depsgraph.object_instances
               if inst.object.original == obj and isinstance(inst.object.data, bpy.types.PointCloud))


def test_result_file_imports_end_to_end(factory_scene, tmp_path, job):
    path = write_job(tmp_path / "clip.h3r", job)
    summary = import_result_file(path, {"point_mode": "BOTH"})
    scene = factory_scene
    assert summary["truncated"] is False and summary["frames"] == 30 and summary["people"] == [1, 2]
    coll = bpy.data.collections[summary["collection"]]
    assert coll.name == "clip"
    names = sorted(o.name for o in coll.objects)
    assert names == ["clip camera", "clip frame points", "clip person 1", "clip person 1 body",
                     "clip person 2", "clip person 2 body", "clip scene points"]
    assert (scene.render.fps, round(scene.render.fps_base, 6), scene.frame_start, scene.frame_end) == (30, 1.001, 1, 30)
    assert (scene.render.resolution_x, scene.render.resolution_y) == (640, 480)
    arm2 = bpy.data.objects["clip person 2"]
    assert len(arm2.data.bones) == 55
    mesh2 = bpy.data.objects["clip person 2 body"]
    assert mesh2.parent == arm2 and len(mesh2.vertex_groups) == 55
    assert mesh2.modifiers[0].type == "ARMATURE" and mesh2.modifiers[0].object == arm2

    # keys on the right frames: source index N -> Blender frame 1 + N
    knee = keys(arm2, bone_path("left_knee", "rotation_quaternion"), 0)
    np.testing.assert_array_equal(knee[:, 0], np.arange(11, 26))
    hidden = keys(arm2, '["human3r_hidden_2"]', 0)
    np.testing.assert_array_equal(hidden, [[1, 1], [11, 0], [26, 1]])
    assert not [fc for fc in compat.fcurves_of(arm2) if fc.data_path.endswith(".scale")]
    cam_loc = keys(bpy.data.objects["clip camera"], "location", 0)
    np.testing.assert_array_equal(cam_loc[:, 0], np.arange(1, 31))
    assert len(keys(bpy.data.objects["clip camera"].data, "lens", 0)) == 30  # the synthetic clip zooms

    # absent people are hidden (viewport and render, rig and body), present ones shown at full size
    for frame, hidden in ((5, True), (15, False), (27, True), (12, False)):
        scene.frame_set(frame)
        assert [arm2.hide_viewport, arm2.hide_render, mesh2.hide_viewport, mesh2.hide_render] == [hidden] * 4, frame
        assert mesh_extent(mesh2)[1] > 0.5

    # points: the scene cloud whole, the per-frame cloud one frame at a time
    assert len(bpy.data.objects["clip scene points"].data.vertices) == 300
    assert "Col" in bpy.data.objects["clip scene points"].data.color_attributes
    frame_points = bpy.data.objects["clip frame points"]
    assert len(frame_points.data.vertices) == 30 * 40
    for f in (1, 17, 30):
        scene.frame_set(f)
        assert evaluated_points(frame_points) == 40
    scene.frame_set(31)
    assert evaluated_points(frame_points) == 0


def test_truncated_file_imports_up_to_the_last_whole_frame(factory_scene, tmp_path, job):
    path = write_job(tmp_path / "clip.h3r", job)
    whole = path.read_bytes()
    # cut inside the 13th frame record: find record boundaries by writing prefixes of the stream
    partial = write_job(tmp_path / "partial.h3r", job[:13])  # header + 12 frames
    cut = partial.stat().st_size + 100
    (tmp_path / "cut.h3r").write_bytes(whole[:cut])
    summary = import_result_file(tmp_path / "cut.h3r", {"point_mode": "PER_FRAME"})
    assert summary["truncated"] is True and summary["problem"]
    assert summary["frames"] == 12 and summary["last_frame"] == 12 and summary["status"] == "incomplete"
    arm1 = bpy.data.objects["clip person 1"]
    np.testing.assert_array_equal(keys(arm1, bone_path("spine1", "rotation_quaternion"), 0)[:, 0], np.arange(1, 13))
    assert (factory_scene.frame_start, factory_scene.frame_end) == (1, 12)  # the frames that were imported


def test_quaternion_keys_stay_continuous_through_half_turns(factory_scene, tmp_path):
    msgs = make_job(n_frames=40, people=((1, 0, 40),))
    frames = [m for m in msgs if m["type"] == "frame"]
    for i, m in enumerate(frames):  # the person spins 1.5 turns about the vertical, the camera 1 turn
        spin = axis_angle_to_matrix(np.array([0.0, 3 * np.pi * i / 39, 0.0]))
        go = spin @ axis_angle_to_matrix(np.array([np.pi, 0.0, 0.0]))
        q = matrix_to_quaternion(go)
        angle = 2 * np.arctan2(np.linalg.norm(q[1:]), q[0])
        axis = q[1:] / max(np.linalg.norm(q[1:]), 1e-12)
        m["people"]["global_orient"] = (axis * angle)[None].astype(np.float32)
        c2w = np.eye(4, dtype=np.float32)
        c2w[:3, :3] = axis_angle_to_matrix(np.array([0.0, 2 * np.pi * i / 39, 0.0]))
        m["camera"]["cam_to_world"] = c2w
    summary = import_result_file(write_job(tmp_path / "spin.h3r", msgs), {"point_mode": "NONE"})
    assert summary["frames"] == 40
    arm = bpy.data.objects["clip person 1"]
    cam = bpy.data.objects["clip camera"]
    for id_data, path in ((arm, bone_path("pelvis", "rotation_quaternion")), (cam, "rotation_quaternion")):
        q = np.stack([keys(id_data, path, i)[:, 1] for i in range(4)], 1)
        dots = np.sum(q[1:] * q[:-1], axis=1)
        assert np.all(dots > 0.9), f"{id_data.name}: sign flip between keys"
    # and the pose is still right after the half turns: relative to frame 1, the pelvis bone and the camera
    # have turned by exactly the spin (the rest orientation is a constant factor on the right, it cancels)
    def world_rotation(ob, bone=None):
        m = np.array(ob.matrix_world) @ (np.array(ob.pose.bones[bone].matrix) if bone else np.eye(4))
        return m[:3, :3]

    factory_scene.frame_set(1)
    pelvis_1, cam_1 = world_rotation(arm, "pelvis"), world_rotation(cam)
    for f in (10, 14, 27, 33, 40):  # about 0.7, 1, 2, 2.5 and 3 half turns of the person
        factory_scene.frame_set(f)
        spin = axis_angle_to_matrix(np.array([0.0, 3 * np.pi * (f - 1) / 39, 0.0]))
        turn = axis_angle_to_matrix(np.array([0.0, 2 * np.pi * (f - 1) / 39, 0.0]))
        np.testing.assert_allclose(world_rotation(arm, "pelvis") @ pelvis_1.T, M @ spin @ M.T, atol=1e-4,
                                   err_msg=f"pelvis at frame {f}")
        np.testing.assert_allclose(world_rotation(cam) @ cam_1.T, M @ turn @ M.T, atol=1e-4,
                                   err_msg=f"camera at frame {f}")


def test_live_stream_in_small_batches_equals_file_import(factory_scene, tmp_path, job):
    msgs = decoded(job)
    header = msgs[0]
    frames = [m for m in msgs if m["type"] == "frame"]
    tracks = [m for m in msgs if m["type"] == "track"]
    # live: rest pose from the first frame's betas, re-shaped by the track messages at the end
    live = SceneBuilder("live", ImportOptions(point_mode="PER_FRAME"))
    live.on_header(header)
    for i in range(0, len(frames), 3):
        live.on_frames(frames[i:i + 3])
    before = np.array(live.armatures[1].data.bones["left_knee"].head_local)
    for t in tracks:
        live.on_track(t)
    summary = live.on_end(msgs[-1])
    assert summary["frames"] == 30 and "frames" in summary["clouds"]
    after = np.array(live.armatures[1].data.bones["left_knee"].head_local)
    assert np.abs(after - before).max() > 1e-4  # the rig moved to the robust shape

    filed = import_result_file(write_job(tmp_path / "clip.h3r", job), {"point_mode": "NONE"})
    arm_file = bpy.data.objects[filed["armatures"][2]]
    arm_live = live.armatures[2]
    # bone-local rotations differ (rest axes come from other betas), visibility keys must not
    np.testing.assert_array_equal(keys(arm_live, '["human3r_hidden_2"]', 0), keys(arm_file, '["human3r_hidden_2"]', 0))
    elbow = bone_path("right_elbow", "rotation_quaternion")
    np.testing.assert_array_equal(keys(arm_live, elbow, 0)[:, 0], keys(arm_file, elbow, 0)[:, 0])
    # same world-space body either way (rest offsets differ, the posed mesh must not)
    for f in (12, 20):
        factory_scene.frame_set(f)
        live_v, _ = mesh_extent(live.meshes[2])
        file_v, _ = mesh_extent(bpy.data.objects[f"{filed['armatures'][2]} body"])
        np.testing.assert_allclose(live_v, file_v, atol=1e-4)


def test_repeated_import_gets_its_own_collection(factory_scene, tmp_path, job):
    path = write_job(tmp_path / "clip.h3r", make_job(n_frames=3, people=((1, 0, 3),)))
    a = import_result_file(path, {"point_mode": "NONE", "import_meshes": False})
    b = import_result_file(path, {"point_mode": "NONE", "import_meshes": False})
    assert a["collection"] != b["collection"]
    assert bpy.data.objects[b["armatures"][1]].users_collection[0].name == b["collection"]
    assert not any(o.type == "MESH" for o in bpy.data.objects)


def test_live_rigs_build_while_the_user_edits_another_object(factory_scene, job):
    msgs = decoded(job)
    frames = [m for m in msgs if m["type"] == "frame"]
    me = bpy.data.meshes.new("user mesh")
    me.from_pydata([(0, 0, 0), (1, 0, 0), (0, 1, 0)], [], [(0, 1, 2)])
    user = bpy.data.objects.new("user object", me)
    factory_scene.collection.objects.link(user)
    bpy.context.view_layer.objects.active = user
    bpy.ops.object.mode_set(mode="EDIT")
    live = SceneBuilder("live", ImportOptions(point_mode="NONE"))
    live.on_header(msgs[0])
    live.on_frames(frames[:12])  # person 2 appears at frame 10: rigs are built mid-stream
    live.on_frames(frames[12:])
    arm = live.armatures[1]
    arm.hide_set(True)  # the user hid the rig before the track arrived
    before = np.array(arm.data.bones["spine2"].head_local)
    for t in (m for m in msgs if m["type"] == "track"):
        live.on_track(t)
    assert np.abs(np.array(arm.data.bones["spine2"].head_local) - before).max() > 1e-4
    assert arm.hide_get() and arm.mode == "OBJECT"
    assert bpy.context.view_layer.objects.active == user


def test_animation_goes_through_the_version_compat_layer(factory_scene, tmp_path):
    import re
    from pathlib import Path

    summary = import_result_file(write_job(tmp_path / "clip.h3r", make_job(n_frames=3, people=((1, 0, 3),))),
                                 {"point_mode": "NONE"})
    anim = bpy.data.objects[summary["armatures"][1]].animation_data
    assert compat.HAS_SLOTTED_ACTIONS == (bpy.app.version >= (4, 4, 0))
    if compat.HAS_SLOTTED_ACTIONS:  # 4.4+: a slot is assigned explicitly, keys live in its channelbag
        assert anim.action_slot is not None and anim.action_slot.target_id_type == "OBJECT"
    else:  # 4.2/4.3: the legacy action F-curves
        assert len(anim.action.fcurves) == 55 * 4 + 3 + 1  # rotations, root location, hidden
    # grep gate: nothing else in the add-on touches F-curves or keyframe_insert directly
    addon = Path(__file__).resolve().parents[2] / "blender_addon"
    offenders = [str(p) for p in addon.rglob("*.py") if p.name != "compat.py"
                 and re.search(r"\.fcurves\b|keyframe_insert\(", p.read_text(encoding="utf-8"))]
    assert not offenders, offenders


@pytest.mark.parametrize("batches", [[40], [1] * 40, [3, 1, 7, 2, 27], [10, 30]])
def test_appending_keys_in_any_batches_equals_one_bulk_write(factory_scene, batches):
    ob = bpy.data.objects.new("keyed", None)
    factory_scene.collection.objects.link(ob)
    target = compat.AnimationTarget(ob, "keyed action")
    frames = np.arange(1, 41, dtype=np.float32)
    values = np.sin(frames / 5).astype(np.float32)
    co = np.stack([frames, values], 1).ravel()
    start = 0
    for n in batches:
        compat.append_keys(target.fcurve("location", 0, "Object Transforms"), co[2 * start:2 * (start + n)], "LINEAR")
        start += n
    fc = compat.find_fcurve(ob, "location", 0)
    np.testing.assert_array_equal(keys(ob, "location", 0), co.reshape(-1, 2))
    assert {k.interpolation for k in fc.keyframe_points} == {"LINEAR"}
    assert fc.group is not None and fc.group.name == "Object Transforms"
    for f in (1.0, 7.5, 23.25, 40.0):  # evaluates as a linear curve through the keys
        assert np.isclose(fc.evaluate(f), np.interp(f, frames, values), atol=1e-6)


def test_import_into_a_scene_that_is_not_the_active_one(factory_scene, tmp_path):
    other = bpy.data.scenes.new("other")
    path = write_job(tmp_path / "clip.h3r", make_job(n_frames=3, people=((1, 0, 3),)))
    summary = import_result_file(path, {"point_mode": "NONE"}, scene=other)
    arm = bpy.data.objects[summary["armatures"][1]]
    assert bpy.context.scene == factory_scene and arm.name in other.objects and arm.name not in factory_scene.objects
    assert len(arm.data.bones) == 55 and other.camera is not None and factory_scene.camera is None
