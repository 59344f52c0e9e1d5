"""SMPL-X file lookup, the synthetic model's layout, joint helpers and the camera->world conversion."""
from __future__ import annotations

import zipfile

import numpy as np
import pytest
import torch

from backend.engine.geometry import rotvec_to_rotmat
from backend.engine.people import MODEL_TO_SMPLX, smplx_parameters, to_smplx_order
from backend.model_files import SMPLX_ENV as ENV_VAR
from backend.model_files import SMPLX_REGISTRATION_URL as REGISTRATION_URL
from backend.smplx_model import BodyModel, SmplxNotFoundError, resolve_smplx_path


@pytest.fixture(scope="module")
def body(synthetic_smplx_path):
    return BodyModel.load(synthetic_smplx_path)


def npz_layout(path) -> dict[str, tuple]:
    """{key: (shape, dtype)} of an .npz, read from the member headers only (no decompression of data)."""
    layout = {}
    with zipfile.ZipFile(path) as zf:
        for name in zf.namelist():
            with zf.open(name) as f:
                version = np.lib.format.read_magic(f)
                shape, _, dtype = np.lib.format._read_array_header(f, version)
            layout[name.removesuffix(".npy")] = (shape, dtype)
    return layout


def test_synthetic_model_has_the_real_layout(synthetic_smplx_path, parity_fixture_dir):
    real_layout = npz_layout(parity_fixture_dir / "SMPLX_NEUTRAL.npz")  # same layout as SMPL-X v1.1
    assert npz_layout(synthetic_smplx_path) == real_layout
    ours = np.load(synthetic_smplx_path)
    assert np.array_equal(ours["kintree_table"], np.load(parity_fixture_dir / "SMPLX_NEUTRAL.npz")["kintree_table"])
    assert np.allclose(ours["weights"].sum(1), 1) and np.allclose(ours["J_regressor"].sum(1), 1)


def test_path_resolution(tmp_path, synthetic_smplx_path, monkeypatch):
    folder = synthetic_smplx_path.parent  # .../smplx/SMPLX_NEUTRAL.npz
    assert resolve_smplx_path(synthetic_smplx_path) == synthetic_smplx_path.resolve()
    assert resolve_smplx_path(folder) == synthetic_smplx_path.resolve()
    assert resolve_smplx_path(folder.parent) == synthetic_smplx_path.resolve()  # folder with smplx/ inside
    monkeypatch.setenv(ENV_VAR, str(folder))
    assert resolve_smplx_path(None) == synthetic_smplx_path.resolve()
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "nope"))
    with pytest.raises(SmplxNotFoundError) as err:
        resolve_smplx_path(None)
    assert REGISTRATION_URL in str(err.value) and "SMPLX_NEUTRAL.npz" in str(err.value)
    with pytest.raises(SmplxNotFoundError):
        resolve_smplx_path(tmp_path)  # empty folder


def _random_people(n: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    rot53 = rotvec_to_rotmat(torch.randn(n, 53, 3, generator=g) * 0.4)
    betas = torch.randn(n, 10, generator=g)
    expr = torch.randn(n, 10, generator=g)
    t_head = torch.randn(n, 3, generator=g) + torch.tensor([0.0, 0.0, 5.0])
    return rot53, betas, expr, t_head


def test_pelvis_and_head_match_the_layer(body):
    rot53, betas, expr, t_head = _random_people(4)
    params = smplx_parameters(body, rot53, betas, expr, t_head)
    params = {**params, "global_orient": torch.zeros(4, 3), "transl": torch.zeros(4, 3)}
    _, joints = body.forward(params)
    j0, h0 = body.pelvis_and_head(to_smplx_order(rot53), betas, expr)
    assert torch.allclose(j0, joints[:, 0], atol=1e-5)
    assert torch.allclose(h0, joints[:, 15], atol=1e-5)


def test_world_parameters_reproduce_the_reference_construction(body):
    """The reference's world placement: v_world = R_c2w (R_g (v0 - h0) + t_head) + t_c2w with v0, h0 of the zero-orient body."""
    n = 3
    rot53, betas, expr, t_head = _random_people(n, 1)
    c2w = torch.eye(4)
    c2w[:3, :3] = rotvec_to_rotmat(torch.tensor([0.3, -1.2, 0.5]))
    c2w[:3, 3] = torch.tensor([1.0, -2.0, 0.5])
    world = smplx_parameters(body, rot53, betas, expr, t_head, c2w)
    verts_w, joints_w = body.forward(world)
    zero = {**world, "global_orient": torch.zeros(n, 3), "transl": torch.zeros(n, 3)}
    v0, j_zero = body.forward(zero)
    r_g = rot53[:, 0]
    cam = (v0 - j_zero[:, 15:16]) @ r_g.transpose(1, 2) + t_head[:, None]
    expected = cam @ c2w[:3, :3].T + c2w[:3, 3]
    assert torch.allclose(verts_w, expected, atol=2e-5)
    # head joint lands on the predicted head position
    assert torch.allclose(joints_w[:, 15], t_head @ c2w[:3, :3].T + c2w[:3, 3], atol=2e-5)
    assert world["body_pose"].shape == (n, 21, 3) and world["left_hand_pose"].shape == (n, 15, 3)
    assert torch.equal(world["leye_pose"], torch.zeros(n, 3))


def test_joint_reordering():
    assert len(MODEL_TO_SMPLX) == 55
    assert MODEL_TO_SMPLX[22] == 52 and MODEL_TO_SMPLX[23] == MODEL_TO_SMPLX[24] == -1
    assert MODEL_TO_SMPLX[25] == 22 and MODEL_TO_SMPLX[40] == 37 and MODEL_TO_SMPLX[54] == 51


def test_header_arrays(body):
    arrays = body.header_arrays()
    assert arrays["faces"].dtype == np.dtype("<i4") and arrays["faces"].shape == (20908, 3)
    assert arrays["parents"][0] == -1 and arrays["parents"].shape == (55,)
    assert arrays["shapedirs"].shape == (10475, 3, 10) and arrays["exprdirs"].shape == (10475, 3, 10)
    assert arrays["J_regressor"].shape == (55, 10475) and arrays["lbs_weights"].shape == (10475, 55)
    settings = body.header_settings()
    assert settings["flat_hand_mean"] is True and len(settings["joint_names"]) == 55
