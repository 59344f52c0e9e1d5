"""Body model and rig math without Blender: numpy LBS vs the smplx package, and the bone-channel conversion.

`emulate_armature` re-implements Blender's pose evaluation (pose = parent_pose · parent_rest⁻¹ · rest ·
local, deform = pose · rest⁻¹, linear blend) so the conversion can be checked here; tests/blender checks
the same against Blender itself.
"""
from __future__ import annotations

import numpy as np
import pytest

from blender_addon.core.body_model import BodyModel
from blender_addon.core.coords import M
from blender_addon.core.rotations import quaternion_to_matrix
from blender_addon.core.skeleton import build_rig_rest, pose_to_bone_channels
from tests.support.synthetic_job import header_message


@pytest.fixture(scope="module")
def body() -> BodyModel:
    return BodyModel.from_header(header_message())


def random_params(rng, n=3):
    return [(rng.normal(0, 0.5, (55, 3)), rng.normal(0, 1.0, 10), rng.normal(0, 1.0, 3)) for _ in range(n)]


def emulate_armature(rest, quats, root_loc, weights):
    """Blender's armature deform in numpy: returns (deformed rest.vertices [V, 3], bone heads [J, 3])."""
    b = rest.matrices
    r = quaternion_to_matrix(quats)
    pose = np.zeros_like(b)
    for k, p in enumerate(rest.parents):
        local = np.eye(4)
        local[:3, :3] = r[k]
        if p < 0:
            local[:3, 3] = root_loc
            pose[k] = b[k] @ local
        else:
            pose[k] = pose[p] @ np.linalg.inv(b[p]) @ b[k] @ local
    deform = pose @ np.linalg.inv(b)
    blend = np.einsum("vj,jab->vab", weights, deform)
    v = np.c_[rest.vertices.astype(np.float64), np.ones(len(rest.vertices))]
    return np.einsum("vab,vb->va", blend, v)[:, :3], pose[:, :3, 3]


def test_rest_joints_are_regressed_from_the_shaped_template(body):
    betas = np.random.default_rng(0).normal(size=10)
    np.testing.assert_allclose(body.rest_joints(betas), body.J_regressor @ body.shaped_vertices(betas), atol=1e-9)
    # batched betas
    both = body.rest_joints(np.stack([betas, -betas]))
    np.testing.assert_allclose(both[1], body.rest_joints(-betas), atol=1e-12)


def test_numpy_lbs_matches_the_smplx_layer(body, synthetic_smplx_no_correctives_path):
    import smplx  # hard dependencies of the project (pyproject): a skip here would only hide a broken install
    import torch

    layer = smplx.create(str(synthetic_smplx_no_correctives_path.parent.parent), model_type="smplx", gender="neutral",
                         num_betas=10, num_expression_coeffs=10, use_pca=False, flat_hand_mean=True, ext="npz")
    rng = np.random.default_rng(3)
    for pose, betas, transl in random_params(rng):
        t = lambda a: torch.tensor(np.asarray(a)[None], dtype=torch.float64)  # noqa: E731
        out = layer.to(torch.float64)(betas=t(betas), global_orient=t(pose[0]), body_pose=t(pose[1:22].ravel()),
                                      jaw_pose=t(pose[22]), leye_pose=t(pose[23]), reye_pose=t(pose[24]),
                                      left_hand_pose=t(pose[25:40].ravel()), right_hand_pose=t(pose[40:55].ravel()),
                                      expression=t(np.zeros(10)), transl=t(transl))
        verts, joints = body.lbs(pose, betas, transl)
        np.testing.assert_allclose(verts, out.vertices[0].numpy(), atol=1e-5)  # float32 header arrays
        np.testing.assert_allclose(joints, out.joints[0, :55].numpy(), atol=1e-5)


def test_bone_channels_reproduce_smplx_lbs(body):
    rng = np.random.default_rng(4)
    for pose, betas, transl in random_params(rng):
        rest = build_rig_rest(body, betas)
        pelvis = body.rest_joints(betas)[0] + transl
        quats, root_loc = pose_to_bone_channels(pose[None], pelvis[None], rest)
        verts, heads = emulate_armature(rest, quats[0], root_loc[0], body.lbs_weights)
        ref_v, ref_j = body.lbs(pose, betas, transl)
        np.testing.assert_allclose(verts, ref_v @ M.T, atol=1e-6)
        np.testing.assert_allclose(heads, ref_j @ M.T, atol=1e-9)


def test_rest_rig_is_grounded_limb_aligned_and_right_handed(body):
    rest = build_rig_rest(body, np.zeros(10))
    assert abs(rest.vertices[:, 2].min()) < 1e-6
    np.testing.assert_allclose(rest.heads[0, :2], 0, atol=1e-9)
    r = rest.rest_rot
    np.testing.assert_allclose(np.swapaxes(r, 1, 2) @ r, np.broadcast_to(np.eye(3), r.shape), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(r), 1.0, atol=1e-12)
    names = rest.names
    knee, ankle = names.index("left_knee"), names.index("left_ankle")
    direction = rest.heads[ankle] - rest.heads[knee]
    np.testing.assert_allclose(r[knee][:, 1], direction / np.linalg.norm(direction), atol=1e-12)
    assert np.all(np.linalg.norm(rest.tails - rest.heads, axis=1) >= 0.01 - 1e-12)


def test_reshape_keeps_orientations_and_still_matches_lbs(body):
    rng = np.random.default_rng(5)
    first = build_rig_rest(body, rng.normal(size=10))
    betas = rng.normal(size=10)
    rest = build_rig_rest(body, betas, offset=first.offset, rest_rot=first.rest_rot)
    np.testing.assert_array_equal(rest.rest_rot, first.rest_rot)
    pose, transl = rng.normal(0, 0.5, (55, 3)), rng.normal(size=3)
    quats, root_loc = pose_to_bone_channels(pose[None], (body.rest_joints(betas)[0] + transl)[None], rest)
    verts, _ = emulate_armature(rest, quats[0], root_loc[0], body.lbs_weights)
    np.testing.assert_allclose(verts, body.lbs(pose, betas, transl)[0] @ M.T, atol=1e-6)
