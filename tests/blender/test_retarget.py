"""Retargeting in real Blender: an imported person onto Rigify's human metarig and onto Mixamo-, UE5- and
MPFB-like rigs built here (T/A pose, odd rolls, Mixamo's 90° X + 0.01 object transform); world bone
directions per mapped bone per frame, the new action in bulk through the compat layer, bad input."""
from __future__ import annotations

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from blender_addon.blender import compat  # noqa: E402
from blender_addon.blender.file_import import import_result_file  # noqa: E402
from tests.support.synthetic_job import make_job, write_job  # noqa: E402
from tests.support.bpy_rigs import build_armature  # noqa: E402
from tests.support.humanoids import skeleton  # noqa: E402

pytestmark = pytest.mark.bpy


@pytest.fixture
def person(addon, tmp_path):
    path = write_job(tmp_path / "clip.h3r", make_job(n_frames=40, people=((1, 0, 40),)))
    import_result_file(path, {"point_mode": "NONE"})
    return bpy.data.objects["clip person 1"]


def world_directions(obj, names, frames):
    scene = bpy.context.scene
    out = np.empty((len(frames), len(names), 3))
    for i, f in enumerate(frames):
        scene.frame_set(int(f))
        mw = np.array(obj.matrix_world)
        for j, n in enumerate(names):
            m = mw @ np.array(obj.pose.bones[n].matrix)
            out[i, j] = m[:3, 1] / np.linalg.norm(m[:3, 1])
    return out


def direction_errors(source, target, bone_map, frames):
    pairs = list(bone_map.items())
    d_t = world_directions(target, [p[0] for p in pairs], frames)
    d_s = world_directions(source, [p[1] for p in pairs], frames)
    return np.degrees(np.arccos(np.clip(np.sum(d_t * d_s, -1), -1, 1)))


MIXAMO_IMPORT = np.diag([0.01, 0.01, 0.01, 1.0]) @ np.array([[1, 0, 0, 0], [0, 0, -1, 0], [0, 1, 0, 0], [0, 0, 0, 1.0]])


@pytest.mark.parametrize("style,pose,rolls,imported", [
    ("MIXAMO", "T", None, False), ("MIXAMO", "A", 3, True), ("UE5", "A", 4, False), ("MPFB", "A", 5, True)])
def test_retarget_reproduces_world_bone_directions(person, style, pose, rolls, imported):
    sk = skeleton(style, pose, height=90.0 if imported else 0.9, roll_seed=rolls)
    if imported:  # a cm rig under a 90° X, 0.01 object like a Mixamo FBX import
        rot = np.array([[1, 0, 0], [0, 0, 1], [0, -1, 0.0]])
        sk.heads, sk.tails = sk.heads @ rot.T, sk.tails @ rot.T
    target = build_armature(sk, f"{style} rig", MIXAMO_IMPORT if imported else None)
    before = {k: getattr(person.animation_data, k, None) for k in ("action", "action_slot")}
    result = bpy.ops.human3r.retarget(source=person.name, target=target.name, preset="AUTO", in_place=False)
    assert result == {"FINISHED"}
    assert {k: getattr(person.animation_data, k, None) for k in before} == before  # source untouched
    action = target.animation_data.action
    assert action is not None and action.name == f"{person.name} to {target.name}"
    assert len(compat.fcurves_of(target)) > 0
    from blender_addon.core.retarget.bonemaps import preset_map
    bm = preset_map("AUTO", [b.name for b in target.data.bones])
    err = direction_errors(person, target, bm.bones, range(1, 41, 3))
    assert err.mean() <= 0.5 and np.percentile(err, 99) <= 2.0, (err.mean(), np.percentile(err, 99))


def test_retarget_onto_rigify_metarig(person):
    import addon_utils

    addon_utils.enable("rigify", default_set=True)
    bpy.ops.object.armature_human_metarig_add()
    metarig = bpy.context.object
    assert bpy.ops.human3r.retarget(source=person.name, target=metarig.name) == {"FINISHED"}
    from blender_addon.core.retarget.bonemaps import preset_map
    bm = preset_map("AUTO", [b.name for b in metarig.data.bones])
    assert bm.preset == "RIGIFY_METARIG" and bm.missing_body_joints() == []
    err = direction_errors(person, metarig, bm.bones, range(1, 41, 3))
    assert err.mean() <= 0.5 and np.percentile(err, 99) <= 2.0, (err.mean(), np.percentile(err, 99))


def generated_rigify_rig():
    """Rigify's human metarig generated into the full rig (headless; about 5-25 s)."""
    import addon_utils

    addon_utils.enable("rigify", default_set=True)
    bpy.ops.object.armature_human_metarig_add()
    metarig = bpy.context.object
    try:
        bpy.ops.pose.rigify_generate()
    except Exception as exc:  # pragma: no cover - depends on the Rigify build shipped with bpy
        pytest.skip(f"Rigify cannot generate headless here: {exc}")
    return next(o for o in bpy.data.objects if o.type == "ARMATURE" and o is not metarig and "torso" in o.pose.bones)


def test_retarget_onto_generated_rigify_rig_fk_controls(person):
    rig = generated_rigify_rig()
    assert rig.pose.bones["upper_arm_parent.L"]["IK_FK"] == 0.0  # Rigify's default: IK
    assert bpy.ops.human3r.retarget(source=person.name, target=rig.name) == {"FINISHED"}
    from blender_addon.core.retarget.bonemaps import preset_map
    bm = preset_map("AUTO", [b.name for b in rig.data.bones])
    assert bm.preset == "RIGIFY" and bm.missing_body_joints() == [] and bm.hips == "torso"
    assert len(bm.bones) == 22 + 30  # body and fingers
    assert all(rig.pose.bones[f"{limb}_parent.{s}"]["IK_FK"] == 1.0 for limb in ("upper_arm", "thigh") for s in "LR")
    frames = range(1, 41, 3)
    err = direction_errors(person, rig, bm.bones, frames)
    assert err.mean() <= 0.5 and np.percentile(err, 99) <= 2.0, (err.mean(), np.percentile(err, 99))
    # the deforming skeleton follows: the limbs' ORG bones (FK mode) point where the source's joints point
    # (ORG-spine.002 sits between spine controls of other rest directions: up to 9° off, not checked)
    org = {"ORG-upper_arm.L": "left_shoulder", "ORG-forearm.R": "right_elbow", "ORG-hand.L": "left_wrist",
           "ORG-thigh.R": "right_hip", "ORG-shin.L": "left_knee", "ORG-foot.R": "right_ankle",
           "ORG-spine.003": "spine3"}
    err = direction_errors(person, rig, org, frames)
    assert err.mean() <= 0.5 and np.percentile(err, 99) <= 2.0, (err.mean(), np.percentile(err, 99))


def test_constraints_that_cannot_be_modelled_are_refused_and_leave_nothing(person):
    target = build_armature(skeleton("MIXAMO", "T", roll_seed=2), "hero")
    c = target.pose.bones["mixamorig:LeftForeArm"].constraints.new("COPY_ROTATION")
    c.target, c.subtarget, c.influence = target, "mixamorig:Hips", 0.5  # a half blend: not a follower
    actions = set(bpy.data.actions)
    with pytest.raises(RuntimeError, match=r"constraints of 'hero' move mixamorig:LeftForeArm \(\d+°\)"):
        bpy.ops.human3r.retarget(source=person.name, target=target.name)
    assert set(bpy.data.actions) == actions and target.animation_data.action is None
    c.mute = True  # a rig with constraints that do nothing goes through the evaluated path, exactly
    assert bpy.ops.human3r.retarget(source=person.name, target=target.name) == {"FINISHED"}
    from blender_addon.core.retarget.bonemaps import preset_map
    bm = preset_map("AUTO", [b.name for b in target.data.bones])
    err = direction_errors(person, target, bm.bones, range(1, 41, 5))
    assert err.mean() <= 0.5 and np.percentile(err, 99) <= 2.0


def test_motion_at_another_frame_rate_is_resampled_onto_the_scene(person):
    from blender_addon.blender.build_retarget import retarget_objects
    from blender_addon.blender.scene_builder import MOTION_FPS

    scene = bpy.context.scene
    motion_fps = scene.render.fps / scene.render.fps_base
    assert person[MOTION_FPS] == person.animation_data.action[MOTION_FPS] == pytest.approx(motion_fps)
    assert person[MOTION_FPS] == pytest.approx(29.97, abs=1e-3)  # the synthetic clip's rate
    scene.render.fps, scene.render.fps_base = 24, 1.001  # the user's scene runs at 23.976 fps: 4/5 of it
    target = build_armature(skeleton("MIXAMO", "A", roll_seed=6), "char")
    report = retarget_objects(person, target)
    assert report.resampled == pytest.approx((29.97, 23.976), abs=1e-3)
    assert "resampled from the motion's 29.97 fps to the scene's 23.976 fps" in report.message()
    assert report.frames == (1, 32)  # the same 39 frame steps of motion on 4/5 as many scene frames
    # scene frame 1 + 4k shows source frame 1 + 5k: same world bone directions at the same time
    from blender_addon.core.retarget.bonemaps import preset_map
    pairs = list(preset_map("AUTO", [b.name for b in target.data.bones]).bones.items())
    d_t = world_directions(target, [p[0] for p in pairs], range(1, 32, 4))
    d_s = world_directions(person, [p[1] for p in pairs], range(1, 40, 5))
    err = np.degrees(np.arccos(np.clip(np.sum(d_t * d_s, -1), -1, 1)))
    assert err.mean() <= 0.5 and np.percentile(err, 99) <= 2.0, (err.mean(), np.percentile(err, 99))


def test_second_retarget_onto_the_same_target_gets_a_versioned_action_name(person):
    from blender_addon.blender.build_retarget import retarget_objects

    target = build_armature(skeleton("UE5"), "hero")
    first = retarget_objects(person, target).action
    report = retarget_objects(person, target)
    base = f"{person.name} to {target.name}"
    assert first.name == base and report.action.name == f"{base} v2"
    assert report.name_taken == base and f"{base!r} already exists" in report.message()
    assert target.animation_data.action == report.action and bpy.data.actions.get(base) == first  # kept
    assert retarget_objects(person, target).action.name == f"{base} v3"
    assert not any(a.name.startswith(base + ".") for a in bpy.data.actions)  # never Blender's .001


def test_bad_input_is_reported_and_leaves_nothing(person):
    mesh = bpy.data.objects.new("Cube", bpy.data.meshes.new("Cube"))
    bpy.context.scene.collection.objects.link(mesh)
    actions = set(bpy.data.actions)
    with pytest.raises(RuntimeError, match="is a mesh, not an armature"):
        bpy.ops.human3r.retarget(source=person.name, target="Cube")
    odd = build_armature(skeleton("MIXAMO", prefix=""), "odd")
    with pytest.raises(RuntimeError, match="no object named 'nope'"):
        bpy.ops.human3r.retarget(source=person.name, target="nope")
    generic = build_armature(type(skeleton("MIXAMO"))(["Bone", "Bone.001"], [-1, 0], np.array([[0, 0, 0], [0, 0, 1.0]]),
                                                      np.array([[0, 0, 1.0], [0, 0, 2.0]]), np.zeros(2)), "generic")
    with pytest.raises(RuntimeError, match="no preset matches"):
        bpy.ops.human3r.retarget(source=person.name, target=generic.name)
    assert set(bpy.data.actions) == actions  # nothing half-written
    assert odd.animation_data is None or odd.animation_data.action is None


def test_custom_map_reports_missing_bones_and_json_round_trip(person, tmp_path):
    target = build_armature(skeleton("MIXAMO", prefix=""), "char")
    s = bpy.context.scene.human3r_retarget
    s.target = target
    assert bpy.ops.human3r.bone_map_fill() == {"FINISHED"}
    assert s.preset == "CUSTOM" and len(s.entries) > 22
    path = str(tmp_path / "map.json")
    assert bpy.ops.human3r.bone_map_save(filepath=path) == {"FINISHED"}
    s.entries.clear()
    assert bpy.ops.human3r.bone_map_load(filepath=path) == {"FINISHED"}
    assert len(s.entries) > 22
    e = s.entries.add()
    e.target, e.source = "NoSuchBone", "left_wrist"
    assert bpy.ops.human3r.retarget(source=person.name, target=target.name, preset="CUSTOM") == {"FINISHED"}


def test_linked_rig_needs_an_override_and_the_override_retargets(person, tmp_path):
    # a character library: one .blend holding a Mixamo-like rig in a collection
    lib_coll = bpy.data.collections.new("character")
    bpy.context.scene.collection.children.link(lib_coll)
    rig = build_armature(skeleton("MIXAMO", "T", height=0.9, roll_seed=2), "hero")
    bpy.context.scene.collection.objects.unlink(rig)
    lib_coll.objects.link(rig)
    lib_path = str(tmp_path / "character.blend")
    bpy.data.libraries.write(lib_path, {lib_coll})
    bpy.data.objects.remove(rig)
    bpy.data.collections.remove(lib_coll)

    with bpy.data.libraries.load(lib_path, link=True) as (src, dst):
        dst.collections = ["character"]
    linked = dst.collections[0]
    linked_rig = linked.objects["hero"]
    with pytest.raises(RuntimeError, match="linked from .*make a library override"):
        bpy.ops.human3r.retarget(source=person.name, target=linked_rig.name)
    override = linked.override_hierarchy_create(bpy.context.scene, bpy.context.view_layer)
    rig_o = override.objects["hero"]
    assert rig_o.override_library is not None
    assert bpy.ops.human3r.retarget(source=person.name, target=rig_o.name) == {"FINISHED"}
    assert rig_o.animation_data.action is not None
    from blender_addon.core.retarget.bonemaps import preset_map
    bm = preset_map("AUTO", [b.name for b in rig_o.data.bones])
    err = direction_errors(person, rig_o, bm.bones, range(1, 41, 5))
    assert err.mean() <= 0.5 and np.percentile(err, 99) <= 2.0


def test_bone_map_files_that_cannot_be_written_or_read_are_reported(person, tmp_path):
    target = build_armature(skeleton("UE5"), "ue")
    s = bpy.context.scene.human3r_retarget
    s.target = target
    bpy.ops.human3r.bone_map_fill()
    with pytest.raises(RuntimeError, match="bone map not saved"):
        bpy.ops.human3r.bone_map_save(filepath=str(tmp_path / "missing" / "map.json"))
    (tmp_path / "bad.json").write_text("{oops")
    before = len(s.entries)
    with pytest.raises(RuntimeError, match="not valid JSON"):
        bpy.ops.human3r.bone_map_load(filepath=str(tmp_path / "bad.json"))
    assert len(s.entries) == before  # the list is kept
    with pytest.raises(RuntimeError, match="map is empty"):
        s.entries.clear()
        bpy.ops.human3r.retarget(source=person.name, target=target.name, preset="CUSTOM")


def test_an_empty_source_means_the_active_person(person):
    """Click a person, pick the character, Retarget: the Source field may stay empty."""
    from blender_addon.blender.retarget_ops import source_person

    target = build_armature(skeleton("UE5"), "hero")
    settings = bpy.context.scene.human3r_retarget
    settings.source, settings.target = None, target
    bpy.context.view_layer.objects.active = target  # not a person: nothing to copy from
    assert source_person(bpy.context) is None
    bpy.context.view_layer.objects.active = person
    assert source_person(bpy.context) == person
    assert bpy.ops.human3r.retarget() == {"FINISHED"}  # the panel button with both fields as chosen
    assert target.animation_data.action.name == f"{person.name} to {target.name}"
    other = bpy.data.objects.new("picked", person.data)
    settings.source = other  # an explicit choice wins over the active object
    assert source_person(bpy.context) == other
