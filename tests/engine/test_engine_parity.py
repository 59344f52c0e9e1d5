"""The whole engine (frame source -> preprocessing -> model schedule with reset/overlap -> online
alignment -> post-processing) reproduces the reference's `prepare_output` on the fixture's frames."""
from __future__ import annotations

import contextlib

import numpy as np
import PIL.Image
import pytest
import torch

from backend.engine.options import JobOptions
from backend.engine.stream import Engine
from backend.parity.model import RUNS, fixture_arithmetic, reference_encoder
from backend.video.reader import open_source

PEOPLE_PARAMS = ("global_orient", "body_pose", "left_hand_pose", "right_hand_pose", "jaw_pose", "leye_pose",
                 "reye_pose", "betas", "expression", "transl")


def rel_err(ours, ref) -> float:
    return float(np.abs(np.asarray(ours, np.float64) - ref).max() / np.abs(ref).max())


@pytest.fixture(scope="module")
def fixture_engine(parity_fixture_dir):
    """The fixture's checkpoint with the fixture's own (synthetic) SMPL-X file, as the reference ran."""
    return Engine.from_paths(parity_fixture_dir / "checkpoint.pth", parity_fixture_dir / "SMPLX_NEUTRAL.npz", "cpu")


@pytest.fixture(scope="module")
def reference_ttt3r(parity_fixture_dir):
    return np.load(parity_fixture_dir / RUNS["ttt3r"][0])


@pytest.mark.parametrize("encoder", ["ours", "reference"])
@pytest.mark.parametrize("mode", ["ttt3r", "plain"])
def test_engine_reproduces_postprocessed(mode, encoder, fixture_engine, parity_fixture_dir, reference_ttt3r, tmp_path):
    """encoder 'ours': the whole chain, where this CPU's float32 arithmetic is the fixture machine's;
    'reference': from the reference's encoder tokens, on any CPU (`backend.parity.model`)."""
    inputs = np.load(parity_fixture_dir / "inputs.npz")
    ref = np.load(parity_fixture_dir / "postprocessed.npz")
    engine = fixture_engine
    arrays = {k: inputs[k] for k in ("img", "img_mhmr")}
    if encoder == "ours":
        arithmetic = fixture_arithmetic(engine.model, arrays, reference_ttt3r)
        if not arithmetic.same:
            pytest.skip(arithmetic.describe())
    for i, rgb in enumerate(inputs["frames_rgb_uint8"]):  # the reference read the frames from PNG files
        PIL.Image.fromarray(rgb).save(tmp_path / f"{i:03d}.png")
    options = JobOptions(size=112, reset_interval=5, ttt3r=mode == "ttt3r", conf_threshold=0.0, point_stride=1,
                         max_points_per_frame=10**6, remove_humans_from_points=False)
    with contextlib.ExitStack() as stack:
        if encoder == "reference":
            stack.enter_context(reference_encoder(engine.model, arrays, reference_ttt3r))
        with open_source(tmp_path) as source:
            results = list(engine.run(source, options))
    assert [r.index for r in results] == list(range(7))
    assert [r.reset for r in results] == list(ref[f"{mode}/reset_mask"])
    tol = 5e-5
    c2w = np.stack([r.camera.cam_to_world for r in results])
    assert rel_err(c2w, ref[f"{mode}/cam2world"]) <= tol
    assert rel_err([r.camera.K_model for r in results], ref[f"{mode}/intrinsics"]) <= tol
    pts = np.stack([r.points["xyz"] for r in results])  # every pixel kept, row-major
    assert rel_err(pts, ref[f"{mode}/pts3d_world"].reshape(7, -1, 3)) <= tol
    assert [len(r.people["id"]) for r in results] == list(ref[f"{mode}/n_humans"])
    assert np.array_equal(np.concatenate([r.people["id"] for r in results]), ref[f"{mode}/smpl_id"])
    params = {k: torch.from_numpy(np.concatenate([r.people[k] for r in results])) for k in PEOPLE_PARAMS}
    verts, joints = engine.body.forward(params)
    assert rel_err(joints.numpy(), ref[f"{mode}/smpl_joints_world"]) <= tol
    if f"{mode}/smpl_verts_world" in ref.files:
        assert rel_err(verts.numpy(), ref[f"{mode}/smpl_verts_world"]) <= tol
    # intrinsics in original pixels: the 250x180 frames were resized to 112x81 and cropped to 112x80
    k = results[0].camera.K
    f = ref[f"{mode}/focal"][0]
    assert np.allclose([k[0, 0], k[1, 1]], [f * 250 / 112, f * 180 / 81], rtol=1e-6)
    assert np.allclose([k[0, 2], k[1, 2]], [(56 + 0.5) * 250 / 112 - 0.5, (40 + 0.5) * 180 / 81 - 0.5], rtol=1e-6)
