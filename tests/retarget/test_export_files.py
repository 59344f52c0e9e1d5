"""`human3r export`: AMASS-style .npz per person reproduces the rig's mesh through the `smplx` package;
camera files project like the result's K·[R|t]; bad paths fail cleanly."""
from __future__ import annotations

import json

import numpy as np
import pytest

from backend.cli import main
from blender_addon.core.body_model import BodyModel
from blender_addon.core.coords import M
from tests.support.synthetic_job import make_job, write_job


@pytest.fixture(scope="module")
def job():
    return make_job(n_frames=12, people=((1, 0, 12), (2, 3, 9)))


def test_amass_npz_through_smplx_matches_the_rig_mesh(tmp_path, job, synthetic_smplx_no_correctives_path):
    smplx = pytest.importorskip("smplx")
    torch = pytest.importorskip("torch")
    path = write_job(tmp_path / "clip.h3r", job)
    assert main(["export", str(path), "--format", "amass", "-o", str(tmp_path / "out")]) == 0
    files = sorted((tmp_path / "out").glob("*.npz"))
    assert [f.name for f in files] == ["clip_person1.npz", "clip_person2.npz"]
    data = np.load(files[1])
    assert data["poses"].shape == (6, 165) and float(data["mocap_frame_rate"]) == pytest.approx(30000 / 1001)
    np.testing.assert_array_equal(data["frame_index"], np.arange(3, 9))
    model = smplx.create(str(synthetic_smplx_no_correctives_path), model_type="smplx", gender="neutral",
                         use_pca=False, flat_hand_mean=True, num_betas=10, num_expression_coeffs=10, use_face_contour=False)
    t = lambda a: torch.as_tensor(np.asarray(a, np.float32))  # noqa: E731
    n = len(data["trans"])
    out = model(betas=t(np.repeat(data["betas"][None], n, 0)), global_orient=t(data["root_orient"]),
                body_pose=t(data["pose_body"]), jaw_pose=t(data["pose_jaw"]), leye_pose=t(data["pose_eye"][:, :3]),
                reye_pose=t(data["pose_eye"][:, 3:]), left_hand_pose=t(data["pose_hand"][:, :45]),
                right_hand_pose=t(data["pose_hand"][:, 45:]), transl=t(data["trans"]),
                expression=torch.zeros(n, 10), return_verts=True)
    verts = out.vertices.detach().numpy()
    # the rig: track betas for the shape, pelvis at J_0(β_frame) + transl (W), shown in Z-up world M·W
    body = BodyModel.from_header(job[0])
    track = next(m for m in job if m["type"] == "track" and m["id"] == 2)
    rows = [(m["people"], list(m["people"]["id"]).index(2)) for m in job if m["type"] == "frame" and 2 in list(m["people"]["id"])]
    for k, (people, r) in enumerate(rows):
        pose = body.full_pose(people, slice(r, r + 1))[0]
        b_frame = np.asarray(people["betas"][r], np.float64)
        j0f = body.rest_joints(b_frame)[0]
        j0t = body.rest_joints(np.asarray(track["betas"], np.float64))[0]
        v, _ = body.lbs(pose, np.asarray(track["betas"], np.float64), np.asarray(people["transl"][r]) + j0f - j0t)
        err = np.abs(verts[k] - v @ M.T).max()
        assert err <= 1e-3, err


def test_camera_export_projects_like_the_result(tmp_path, job):
    path = write_job(tmp_path / "clip.h3r", job)
    assert main(["export", str(path), "--format", "camera", "-o", str(tmp_path)]) == 0
    cam = json.loads((tmp_path / "clip_camera.json").read_text())
    npz = np.load(tmp_path / "clip_camera.npz")
    assert len(cam["frames"]) == 12 and cam["width"] == 640
    rng = np.random.default_rng(0)
    for f, msg in zip(cam["frames"], [m for m in job if m["type"] == "frame"]):
        K = np.asarray(msg["camera"]["K"], np.float64)
        c2w = np.asarray(msg["camera"]["cam_to_world"], np.float64)
        p_w = (c2w @ np.append(rng.normal(0, 1, 2).tolist() + [5.0], 1.0))[:3]  # a point in front of the camera
        ref = K @ (np.linalg.inv(c2w) @ np.append(p_w, 1))[:3]
        x = np.asarray(f["world_to_camera"]) @ np.append(M @ p_w, 1)
        got = np.asarray(f["K"]) @ x[:3]
        np.testing.assert_allclose(got[:2] / got[2], ref[:2] / ref[2], atol=1e-6)
    np.testing.assert_allclose(npz["world_to_camera"][0], cam["frames"][0]["world_to_camera"])


def test_unwritable_folder_and_bad_input_fail_cleanly(tmp_path, job, capsys):
    path = write_job(tmp_path / "clip.h3r", job)
    blocked = tmp_path / "file"
    blocked.write_text("x")
    assert main(["export", str(path), "--format", "amass", "-o", str(blocked / "sub")]) == 2
    assert "cannot write" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "missing.h3r"), "--format", "camera", "-o", str(tmp_path)]) == 2
    assert "cannot read" in capsys.readouterr().err
