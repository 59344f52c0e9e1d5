"""Retargeting maths without Blender: world bone directions reproduced on Mixamo/UE5/MPFB/metarig-like
rigs in T- and A-pose with random rolls and Mixamo's 90° X / 0.01 object transform, chains of other
lengths, root scaling, in-place, planted feet, an exact SMPL-X round trip, presets and the JSON map."""
from __future__ import annotations

import json

import numpy as np
import pytest

from blender_addon.core.body_model import BodyModel
from blender_addon.core.retarget import bonemaps
from blender_addon.core.retarget.bonemaps import BODY_JOINTS, BoneMap, BoneMapError, detect_preset, preset_map
from blender_addon.core.retarget.rig import RigError, forward
from blender_addon.core.rotations import axis_angle_to_matrix
from blender_addon.core.retarget.solve import (RetargetOptions, local_matrices, retarget, world_directions,
                                               world_heads)
from tests.support.synthetic_job import header_message
from tests.support.humanoids import (lock_feet, rig_spec, skeleton, smplx_source, source_local,
                                     walking_motion)

MIXAMO_IMPORT = np.diag([0.01, 0.01, 0.01, 1.0]) @ np.array(
    [[1, 0, 0, 0], [0, 0, -1, 0], [0, 1, 0, 0], [0, 0, 0, 1.0]])  # 90° about X, 0.01 scale


@pytest.fixture(scope="module")
def source():
    body = BodyModel.from_header(header_message())
    spec, rest = smplx_source(body)
    pose, pelvis = walking_motion(90, pelvis_height=rest.heads[0, 2])
    return spec, rest, source_local(rest, pose, pelvis)


def direction_errors(src, src_local, tgt, result, bone_map):
    """Angles (degrees) [T, n] between source and target world directions of every one-to-one mapped bone."""
    h = tgt.index[result.hips] if result.hips else None
    local = local_matrices(tgt, result.bones, result.rotations, h, result.hips_location)
    d_t = world_directions(tgt, local)
    d_s = world_directions(src, src_local)
    pairs = [(tgt.index[b], src.index[j]) for b, j in bone_map.bones.items()]
    dots = np.sum(d_t[:, [p[0] for p in pairs]] * d_s[:, [p[1] for p in pairs]], axis=-1)
    return np.degrees(np.arccos(np.clip(dots, -1, 1)))


CASES = [(style, pose, seed, obj) for style in ("MIXAMO", "UE5", "MPFB", "METARIG") for pose in ("T", "A")
         for seed, obj in ((None, None), (3, "mixamo_import"))]


@pytest.mark.parametrize("style,pose,seed,obj", CASES)
def test_world_directions_are_reproduced(source, style, pose, seed, obj):
    src, _, src_local = source
    sk = skeleton(style, pose, height=0.9 if style != "UE5" else 1.1, roll_seed=seed)
    tgt = rig_spec(sk, MIXAMO_IMPORT @ np.diag([100, 100, 100, 1.0]) if obj else None)
    bone_map = preset_map("AUTO", tgt.names)
    assert bone_map.preset == {"METARIG": "RIGIFY_METARIG"}.get(style, style)
    assert bone_map.missing_body_joints() == []
    result = retarget(src, src_local, tgt, bone_map, RetargetOptions(keep_contacts=False))
    assert result.unmapped == []
    err = direction_errors(src, src_local, tgt, result, bone_map)
    assert err.mean() <= 0.5 and np.percentile(err, 99) <= 2.0, (err.mean(), np.percentile(err, 99))


def test_mixamo_cm_import_moves_like_an_unscaled_rig(source):
    """0.01 scale + 90° X object rotation with a cm skeleton = the same world motion as a metre rig."""
    src, _, src_local = source
    sk_m = skeleton("MIXAMO", "T", height=0.9)
    sk_cm = skeleton("MIXAMO", "T", height=90.0)
    sk_cm.heads = sk_cm.heads @ np.array([[1, 0, 0], [0, 0, 1], [0, -1, 0.0]]).T  # undo the object's +90° X
    sk_cm.tails = sk_cm.tails @ np.array([[1, 0, 0], [0, 0, 1], [0, -1, 0.0]]).T
    plain, imported = rig_spec(sk_m), rig_spec(sk_cm, MIXAMO_IMPORT)
    heads = []
    for tgt in (plain, imported):
        bm = preset_map("MIXAMO", tgt.names)
        r = retarget(src, src_local, tgt, bm, RetargetOptions(keep_contacts=False))
        heads.append(world_heads(tgt, local_matrices(tgt, r.bones, r.rotations, tgt.index[r.hips], r.hips_location)))
    np.testing.assert_allclose(heads[1], heads[0], atol=1e-6)


def test_root_translation_scales_with_leg_length_and_in_place_drops_it(source):
    src, _, src_local = source
    pelvis = forward(src, src_local)[:, 0, :3, 3]
    for height in (0.7, 1.3):
        tgt = rig_spec(skeleton("MIXAMO", "T", height=height))
        bm = preset_map("AUTO", tgt.names)
        r = retarget(src, src_local, tgt, bm, RetargetOptions(keep_contacts=False))
        hips = world_heads(tgt, local_matrices(tgt, r.bones, r.rotations, tgt.index[r.hips], r.hips_location))[:, 0]
        leg_t = height * (np.linalg.norm([0.01, -0.02, -0.43]) + np.linalg.norm([0, 0.05, -0.44]))
        src_heads = src.rest[:, :3, 3]
        leg_s = np.mean([np.linalg.norm(src_heads[h] - src_heads[k]) + np.linalg.norm(src_heads[k] - src_heads[a])
                         for h, k, a in ((1, 4, 7), (2, 5, 8))])
        assert r.leg_ratio == pytest.approx(leg_t / leg_s, rel=1e-6)
        np.testing.assert_allclose(hips - hips[0], r.leg_ratio * (pelvis - pelvis[0]), atol=1e-9)
        r2 = retarget(src, src_local, tgt, bm, RetargetOptions(keep_contacts=False, in_place=True))
        hips2 = world_heads(tgt, local_matrices(tgt, r2.bones, r2.rotations, tgt.index[r2.hips], r2.hips_location))[:, 0]
        np.testing.assert_allclose(hips2[:, :2], np.broadcast_to(tgt.rest[0, :2, 3], hips2[:, :2].shape), atol=1e-9)
        np.testing.assert_allclose(hips2[:, 2] - hips2[0, 2], r.leg_ratio * (pelvis[:, 2] - pelvis[0, 2]), atol=1e-9)


def test_planted_feet_stay_planted_on_a_differently_proportioned_rig(source):
    src, _, src_local = source
    quiet = src_local.copy()  # smaller body motion, then each foot in turn pinned to the floor
    body_pose, _ = walking_motion(90, seed=2, amplitude=0.25)
    body_pose[:, [7, 8, 10, 11]] = 0.0  # feet rigid on the shins
    body_pose[10:45, 5, 0] = 1.2  # the other foot lifted (knee bent) while one is planted
    body_pose[50:85, 4, 0] = 1.2
    quiet[:, 1:22, :3, :3] = axis_angle_to_matrix(body_pose[:, 1:22])
    quiet[:, 0, :3, 3] += np.array([0.0, 0.0, 0.15]) @ src.rest[0, :3, :3]  # off the floor between runs
    planted = lock_feet(src, quiet, [("left_ankle", 10, 45), ("right_ankle", 50, 85)])
    for style in ("MIXAMO", "UE5", "MPFB"):
        tgt = rig_spec(skeleton(style, "A", height=0.8, roll_seed=5))
        bm = preset_map("AUTO", tgt.names)
        r = retarget(src, planted, tgt, bm, RetargetOptions(keep_contacts=True, fps=30))
        assert r.contacts[15:40, 0].all() and r.contacts[55:80, 2].all()
        heads = world_heads(tgt, local_matrices(tgt, r.bones, r.rotations, tgt.index[r.hips], r.hips_location))
        rest_heads = tgt.world_rest()[:, :3, 3]
        for joint, a, b in (("left_ankle", 10, 45), ("right_ankle", 50, 85)):
            bone = {v: k for k, v in bm.bones.items()}[joint]
            run = heads[a:b, tgt.index[bone]]
            slide = np.linalg.norm(run[:, :2] - run[:, :2].mean(0), axis=1).max()
            height_err = np.abs(run[:, 2] - rest_heads[tgt.index[bone], 2]).max()
            assert slide <= 0.01 and height_err <= 0.01, (style, joint, slide, height_err)
        off = retarget(src, planted, tgt, bm, RetargetOptions(keep_contacts=False))
        h_off = world_heads(tgt, local_matrices(tgt, off.bones, off.rotations, tgt.index[off.hips], off.hips_location))
        bone = {v: k for k, v in bm.bones.items()}["left_ankle"]
        slide_off = np.linalg.norm(np.diff(h_off[10:45, tgt.index[bone], :2], axis=0), axis=1).sum()
        assert slide_off > 0.005  # the proportions differ: without contact keeping the foot slides


def test_smplx_to_smplx_like_rig_round_trip_is_exact(source):
    """Same joints, other bone rolls and axes: the recovered SMPL-X local rotations equal the source's."""
    src, rest, src_local = source
    rng = np.random.default_rng(7)
    rolled = src.rest.copy()
    for j in range(len(rolled)):
        a = rng.uniform(-np.pi, np.pi)
        c, s = np.cos(a), np.sin(a)
        rolled[j, :3, :3] = rolled[j, :3, :3] @ np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    from blender_addon.core.retarget.rig import RigSpec
    tgt = RigSpec(tuple(f"SMPLX_{n}" for n in src.names), src.parents, rolled, np.eye(4), lengths=src.lengths)
    bm = preset_map("AUTO", tgt.names)
    assert bm.preset == "SMPLX" and len(bm.bones) == 55
    r = retarget(src, src_local, tgt, bm, RetargetOptions(keep_contacts=False))
    local = local_matrices(tgt, r.bones, r.rotations, tgt.index[r.hips], r.hips_location)
    posed_t = forward(tgt, local)[..., :3, :3] @ np.swapaxes(rolled[:, :3, :3], -1, -2)  # world deltas
    posed_s = forward(src, src_local)[..., :3, :3] @ np.swapaxes(src.rest[:, :3, :3], -1, -2)
    rel = np.swapaxes(posed_s, -1, -2) @ posed_t
    angle = np.arccos(np.clip((np.trace(rel, axis1=-2, axis2=-1) - 1) / 2, -1, 1))
    assert angle.max() <= 1e-4
    heads_t = world_heads(tgt, local)
    np.testing.assert_allclose(heads_t, world_heads(src, src_local), atol=1e-6)  # leg ratio 1


@pytest.mark.parametrize("style,prefix,expected", [
    ("MIXAMO", "mixamorig:", "MIXAMO"), ("MIXAMO", "mixamorig1:", "MIXAMO"), ("MIXAMO", "", "MIXAMO"),
    ("UE5", None, "UE5"), ("MPFB", None, "MPFB"), ("METARIG", None, "RIGIFY_METARIG")])
def test_presets_are_detected_from_bone_names(style, prefix, expected):
    sk = skeleton(style, prefix=prefix if prefix is not None else "mixamorig:")
    assert detect_preset(sk.names)[0] == expected
    bm = preset_map("AUTO", sk.names)
    assert bm.preset == expected
    if prefix:
        assert all(b.startswith(prefix) for b in bm.bones)


def test_generated_rigify_rig_is_detected_as_its_fk_controls():
    controls = list(bonemaps.RIGIFY.joints.values())
    names = ["root", *controls, *(f"{k}-{n}" for n in skeleton("METARIG").names for k in ("ORG", "DEF"))]
    bm = preset_map("AUTO", names)
    assert bm.preset == "RIGIFY" and bm.hips == "torso" and bm.missing_body_joints() == []
    assert bm.bones["upper_arm_fk.L"] == "left_shoulder" and bm.bones["torso"] == "pelvis"
    assert preset_map("AUTO", skeleton("METARIG").names).preset == "RIGIFY_METARIG"


def test_unknown_rig_needs_a_bone_map_and_named_preset_errors_say_what_is_missing():
    with pytest.raises(BoneMapError, match="no preset matches"):
        preset_map("AUTO", ["Bone", "Bone.001", "Bone.002"])
    with pytest.raises(BoneMapError, match="none of the Mixamo bones"):
        preset_map("MIXAMO", skeleton("UE5").names)
    with pytest.raises(BoneMapError, match="unknown preset"):
        preset_map("BIPED", ["a"])


def test_rig_missing_mapped_bones_reports_them(source):
    src, _, src_local = source
    sk = skeleton("MIXAMO", prefix="")
    keep = [i for i, n in enumerate(sk.names) if n not in ("LeftForeArm", "LeftHand") and "LeftHand" not in n]
    names = [sk.names[i] for i in keep]
    full = preset_map("MIXAMO", sk.names)
    resolved, missing = full.resolve(names)
    assert "LeftForeArm" in missing and "LeftHand" in missing
    assert resolved.missing_body_joints() == ["left_elbow", "left_wrist"]


def test_source_without_a_mapped_joint_is_an_error(source):
    src, _, src_local = source
    tgt = rig_spec(skeleton("MIXAMO"))
    bm = preset_map("AUTO", tgt.names)
    bm.bones["mixamorig:Spine"] = "no_such_joint"
    with pytest.raises(RigError, match="no_such_joint"):
        retarget(src, src_local, tgt, bm)


def test_bone_map_json_round_trip_and_bad_files(tmp_path):
    bm = preset_map("AUTO", skeleton("UE5").names)
    path = tmp_path / "ue5.json"
    bonemaps.save_map(bm, path)
    back = bonemaps.load_map(path)
    assert back == bm
    data = json.loads(path.read_text())
    assert data["format"] == "human3r-bonemap" and data["bones"]["upperarm_l"] == "left_shoulder"
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(BoneMapError, match="not valid JSON"):
        bonemaps.load_map(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text(json.dumps({"bones": {}}))
    with pytest.raises(BoneMapError, match="not a Human3R bone map"):
        bonemaps.load_map(tmp_path / "other.json")
    (tmp_path / "newer.json").write_text(json.dumps({"format": "human3r-bonemap", "version": 99, "bones": {}}))
    with pytest.raises(BoneMapError, match="newer"):
        bonemaps.load_map(tmp_path / "newer.json")


def test_every_preset_maps_the_22_body_joints():
    for preset in bonemaps.PRESETS.values():
        chained = {j for src, _ in preset.chains for j in src}
        assert set(BODY_JOINTS) <= set(preset.joints) | chained, preset.name
