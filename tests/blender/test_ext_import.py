"""The 'Import .h3r' operator end to end: a result file written with the protocol and ResultFileWriter
from synthetic messages becomes a camera, one armature (+ skinned mesh) per person and point clouds."""
from __future__ import annotations

import os

import pytest

bpy = pytest.importorskip("bpy")

from tests.support.synthetic_job import WIDTH, HEIGHT, job_messages, write_job_file  # noqa: E402

pytestmark = pytest.mark.bpy


def collection_objects(name: str):
    coll = bpy.data.collections.get(name)
    assert coll is not None, f"no collection {name!r}; have {[c.name for c in bpy.data.collections]}"
    return list(coll.all_objects)


def test_import_operator_builds_camera_people_points(addon, tmp_path):
    path = write_job_file(tmp_path / "walk.h3r", frames=6, people=2)
    result = bpy.ops.human3r.import_result(filepath=str(path))
    assert result == {"FINISHED"}
    objects = collection_objects("synthetic")  # the header's video is /videos/synthetic.mp4
    by_type = {}
    for ob in objects:
        by_type.setdefault(ob.type, []).append(ob)
    assert len(by_type.get("CAMERA", [])) == 1
    assert len(by_type.get("ARMATURE", [])) == 2
    assert len(by_type.get("MESH", [])) + len(by_type.get("POINTCLOUD", [])) >= 3  # 2 bodies + points
    cam = by_type["CAMERA"][0]
    assert cam.animation_data is not None and cam.animation_data.action is not None
    scene = bpy.context.scene
    assert (scene.render.resolution_x, scene.render.resolution_y) == (WIDTH, HEIGHT)
    assert scene.frame_start == 1 and scene.frame_end >= 6
    for arm in by_type["ARMATURE"]:
        assert len(arm.data.bones) == 55
        assert arm.animation_data is not None and arm.animation_data.action is not None


def test_import_respects_scene_settings(addon, tmp_path):
    path = write_job_file(tmp_path / "walk.h3r", frames=4, people=1)
    settings = bpy.context.scene.human3r
    settings.import_meshes = False
    settings.point_mode = "NONE"
    settings.scene_frame_start = 101
    assert bpy.ops.human3r.import_result(filepath=str(path)) == {"FINISHED"}
    objects = collection_objects("synthetic")
    assert sorted(ob.type for ob in objects) == ["ARMATURE", "CAMERA"]
    assert bpy.context.scene.frame_start == 101


def test_truncated_file_imports_what_it_has(addon, tmp_path):
    path = write_job_file(tmp_path / "cut.h3r", frames=6, people=1)
    size = os.path.getsize(path)
    with open(path, "r+b") as f:  # cut into the last record (the `done` message)
        f.truncate(size - 100)
    assert bpy.ops.human3r.import_result(filepath=str(path)) == {"FINISHED"}
    objects = collection_objects("synthetic")
    assert any(ob.type == "ARMATURE" for ob in objects)


def test_bad_file_is_reported_not_raised(addon, tmp_path):
    bad = tmp_path / "not_a_result.h3r"
    bad.write_bytes(b"hello world, not a result file")
    with pytest.raises(RuntimeError, match="not a Human3R result file"):
        bpy.ops.human3r.import_result(filepath=str(bad))  # operator ERROR reports surface as RuntimeError
    assert not bpy.data.objects


def test_file_import_menu_entry(addon):
    from blender_addon.blender import operators

    draw_funcs = bpy.types.TOPBAR_MT_file_import._dyn_ui_initialize()
    assert operators.menu_import in draw_funcs


def test_messages_are_the_protocol_kind():
    # guard that the synthetic job stays valid protocol (decode validates every field)
    from blender_addon.core import protocol

    for msg in job_messages(frames=2, people=1):
        protocol.decode(protocol.encode(msg))
