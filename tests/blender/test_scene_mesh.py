"""Blender's evaluated skinned mesh and bone heads equal the SMPL-X layer to 0.1 mm.

Cases: plain linear blend skinning (the model without pose correctives), the 486 pose-corrective shape
keys against the model with correctives, and expression shape keys. The reference is the `smplx`
package where it is installed (system Python); elsewhere (the bpy 4.2 venv has no torch) it is
`core.body_model.BodyModel.lbs`, which tests/core checks against smplx. With a non-zero expression the
reference is always `BodyModel.lbs`, whose joints, like the rig's, ignore the expression.
"""
from __future__ import annotations

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from blender_addon.blender.scene_builder import SceneBuilder  # noqa: E402
from blender_addon.core import protocol  # noqa: E402
from blender_addon.core.body_model import BodyModel  # noqa: E402
from blender_addon.core.coords import M  # noqa: E402
from blender_addon.core.scene_plan import ImportOptions  # noqa: E402
from tests.support.synthetic_job import JOB, decoded, header_message  # noqa: E402

pytestmark = pytest.mark.bpy
TOL = 1e-4  # metres (0.1 mm)


def reference(body, synthetic_path, correctives):
    """Function (pose [55,3], betas [10], transl [3]) -> (vertices [V,3], joints [55,3]) in W."""
    try:
        import smplx
        import torch
    except ImportError:
        return lambda pose, betas, transl: body.lbs(pose, betas, transl, correctives=correctives)
    layer = smplx.create(str(synthetic_path.parent.parent), model_type="smplx", gender="neutral", num_betas=10,
                         num_expression_coeffs=10, use_pca=False, flat_hand_mean=True, ext="npz").to(torch.float64)

    def run(pose, betas, transl):
        t = lambda a: torch.tensor(np.asarray(a, dtype=np.float64)[None])  # noqa: E731
        out = layer(betas=t(betas), global_orient=t(pose[0]), body_pose=t(pose[1:22].ravel()), jaw_pose=t(pose[22]),
                    leye_pose=t(pose[23]), reye_pose=t(pose[24]), left_hand_pose=t(pose[25:40].ravel()),
                    right_hand_pose=t(pose[40:55].ravel()), expression=t(np.zeros(10)), transl=t(transl))
        return out.vertices[0].detach().numpy(), out.joints[0, :55].detach().numpy()
    return run


def frame_message(index, people, expression=None):
    """A frame with the given persons: list of (id, pose [55,3], betas [10], transl [3])."""
    f4 = lambda a: np.asarray(a, dtype=np.float32)  # noqa: E731
    poses = np.stack([p[1] for p in people])
    return protocol.make_message(
        protocol.MessageType.FRAME, JOB, index + 1, index=index, time=index / 30.0,
        camera={"cam_to_world": np.eye(4, dtype=np.float32),
                "K": f4([[500, 0, 320], [0, 500, 240], [0, 0, 1]]), "width": 640, "height": 480},
        people={"id": np.array([p[0] for p in people], np.int32), "score": f4([0.9] * len(people)),
                "global_orient": f4(poses[:, 0]), "body_pose": f4(poses[:, 1:22]), "jaw_pose": f4(poses[:, 22]),
                "leye_pose": f4(poses[:, 23]), "reye_pose": f4(poses[:, 24]),
                "left_hand_pose": f4(poses[:, 25:40]), "right_hand_pose": f4(poses[:, 40:55]),
                "betas": f4([p[2] for p in people]),
                "expression": np.zeros((len(people), 10), np.float32) if expression is None
                else np.repeat(f4(expression)[None], len(people), 0),
                "transl": f4([p[3] for p in people]), "head_xy": np.zeros((len(people), 2), np.float32)},
        points={"xyz": np.zeros((0, 3), np.float32), "rgb": np.zeros((0, 3), np.uint8),
                "conf": np.zeros(0, np.float32)})


def evaluated_vertices(obj):
    depsgraph = bpy.context.evaluated_depsgraph_get()
    ob_eval = obj.evaluated_get(depsgraph)
    me = ob_eval.to_mesh()
    co = np.empty(len(me.vertices) * 3, dtype=np.float32)
    me.vertices.foreach_get("co", co)
    ob_eval.to_mesh_clear()
    mw = np.array(obj.matrix_world)
    return co.reshape(-1, 3).astype(np.float64) @ mw[:3, :3].T + mw[:3, 3]


@pytest.mark.parametrize("case", ["lbs", "pose correctives", "expression"])
def test_evaluated_mesh_and_joints_match_smplx(factory_scene, request, case):
    correctives = case == "pose correctives"
    fixture = "synthetic_smplx_path" if correctives else "synthetic_smplx_no_correctives_path"
    header = decoded([header_message(correctives=correctives)])[0]
    body = BodyModel.from_header(header)
    rng = np.random.default_rng(11)
    expression = rng.normal(0, 1.0, 10).astype(np.float32) if case == "expression" else None
    if expression is None:
        ref = reference(body, request.getfixturevalue(fixture), correctives)
    else:
        ref = lambda pose, betas, transl: body.lbs(pose, betas, transl, expression=expression)  # noqa: E731
    ids = (3, 7)
    shapes = {pid: rng.normal(0, 1.0, 10).astype(np.float32) for pid in ids}
    frames, expected = [], {}
    for i in range(3):
        people = []
        for pid in ids:
            pose = rng.normal(0, 0.5, (55, 3)).astype(np.float32)
            pose[0] += (np.pi, 0, 0)  # upright in the OpenCV world
            transl = rng.normal(0, 1.0, 3).astype(np.float32) + (0, 0, 4)
            people.append((pid, pose, shapes[pid], transl))
            expected[(i, pid)] = ref(pose.astype(np.float64), shapes[pid].astype(np.float64), transl.astype(np.float64))
        frames.append(frame_message(i, people, expression))
    frames = decoded(frames)
    tracks = [{"id": pid, "betas": shapes[pid]} for pid in ids]
    options = ImportOptions(point_mode="NONE", import_camera=False, pose_correctives=correctives,
                            expressions=case == "expression")
    builder = SceneBuilder("mesh test", options, tracks=tracks)
    builder.on_header(header)
    assert builder.on_frames(frames) == 3
    keys = builder.meshes[ids[0]].data.shape_keys
    n_keys = {"lbs": 0, "pose correctives": 486, "expression": 10}[case]
    assert (0 if keys is None else len(keys.key_blocks) - 1) == n_keys

    for pid in ids:  # rest bones are exactly the planned rest matrices
        arm = builder.armatures[pid]
        rest = builder.planner.people[pid].rest
        planned = rest.matrices
        got = np.array([np.array(arm.data.bones[name].matrix_local) for name in rest.names])
        np.testing.assert_allclose(got, planned, atol=5e-5)  # float32 roll round trip
    worst_v = worst_j = 0.0
    for i in range(3):
        factory_scene.frame_set(1 + i)
        for pid in ids:
            verts_w, joints_w = expected[(i, pid)]
            got_v = evaluated_vertices(builder.meshes[pid])
            arm = builder.armatures[pid]
            mw = np.array(arm.matrix_world)
            names = builder.planner.people[pid].rest.names
            heads = np.array([mw[:3, :3] @ np.array(arm.pose.bones[n].head) + mw[:3, 3] for n in names])
            worst_v = max(worst_v, np.abs(got_v - verts_w @ M.T).max())
            worst_j = max(worst_j, np.abs(heads - joints_w @ M.T).max())
    print(f"{case}: worst vertex error {worst_v * 1000:.5f} mm, worst joint error {worst_j * 1000:.5f} mm")
    assert worst_v <= TOL, f"vertices off by {worst_v * 1000:.4f} mm"
    assert worst_j <= TOL, f"joints off by {worst_j * 1000:.4f} mm"
