"""The clean-up stage on motion with a known answer (tests/motion/synthetic_motion.py): floor, smoothing,
contacts, foot lock, reprojection, and bad input. Noise: 2 cm on the root, 1.5 deg on every body joint,
1 % outlier frames at 5x; 30 fps; floor seen with a 20 deg pitch, 5 deg roll, 1.6 m offset."""
from __future__ import annotations

import numpy as np
import pytest

from blender_addon.core.motion.kinematics import foot_points, forward
from blender_addon.core.motion.refine import refine_job
from tests.motion import metrics as M
from tests.motion.synthetic_motion import make_scene, person_series, split


# seed 0 is the scene the stage was tuned on; seeds 1-4 are held out (other noise, other stance edges;
# the root's along/across-leg weights come from error measurements on seeds 2 and 3); scripts/refine_accuracy.py
# measures the same criteria on seeds 0-27, where the widest smoothing levels were chosen
SEEDS = [0, 1, 2, 3, 4]


@pytest.fixture(scope="module", params=SEEDS, ids=[f"seed{s}" for s in SEEDS])
def scene(request):
    return make_scene(seed=request.param)


@pytest.fixture(scope="module")
def refined(scene):
    return refine_job(*split(scene.messages))


def _truth_to_refined(scene, refined) -> np.ndarray:
    return np.array(refined.header["conventions"]["from_raw"]) @ scene.raw_from_truth


def _floor_error(scene, refined) -> tuple[float, float]:
    """(angle of the true floor normal from up in the refined world, deg; |height| of the true floor, m)."""
    ta = _truth_to_refined(scene, refined)
    n = ta[:3, :3] @ np.array([0.0, -1.0, 0.0])
    floor = scene.floor_points_T[np.abs(scene.floor_points_T[:, 1]) < 0.05][:500]
    heights = (floor @ ta[:3, :3].T + ta[:3, 3])[:, 1]
    return float(np.degrees(np.arccos(np.clip(-n[1], -1, 1)))), float(abs(np.mean(heights)))


@pytest.mark.parametrize("mode", ["points", "feet", "both"])
def test_floor_alignment_per_evidence(mode):
    sc = make_scene(seed=2, n_frames=180)
    r = refine_job(*split(sc.messages), options={"ground": mode, "foot_lock": False})
    g = r.header["refinement"]["ground"]
    assert g["applied"] and g["evidence"] == mode
    angle, height = _floor_error(sc, r)
    assert angle <= 1.0 and height <= 0.01, (angle, height)
    assert "refined" in r.header["conventions"]["world"]


def test_no_floor_evidence_leaves_world_unchanged():
    sc = make_scene(seed=3, n_frames=60, kinds=(), floor_points=False)
    header, frames, tracks, end = split(sc.messages)
    end["scene_points"]["xyz"] = end["scene_points"]["xyz"][:50]  # a few wall/outlier points only
    r = refine_job(header, frames, tracks, end)
    assert r.header["refinement"]["ground"]["evidence"] == "none"
    assert any("no floor evidence" in x for x in r.header["refinement"]["reasons"])
    assert np.array_equal(np.array(r.header["conventions"]["from_raw"]), np.eye(4))
    for a, b in zip(frames, r.frames):
        assert np.array_equal(a["camera"]["cam_to_world"], b["camera"]["cam_to_world"])


def test_smoothing_and_lock_against_truth(scene, refined):
    ta = _truth_to_refined(scene, refined)
    a = np.array(refined.header["conventions"]["from_raw"])
    header, frames, _, _ = split(scene.messages)
    pooled_pred, pooled_true = [], []
    for p in scene.people:
        rt, pt = forward(p.shape, p.local, p.root)
        truth_j = pt @ ta[:3, :3].T + ta[:3, 3]
        truth_f = foot_points(p.shape, rt, pt) @ ta[:3, :3].T + ta[:3, 3]
        loc, root = person_series(frames, p.pid, scene.body)
        ro, po = forward(p.shape, loc, root)
        raw_j = po @ a[:3, :3].T + a[:3, 3]
        raw_f = foot_points(p.shape, ro, po) @ a[:3, :3].T + a[:3, 3]
        loc, root = person_series(refined.frames, p.pid, scene.body)
        ro, po = forward(p.shape, loc, root)
        ref_f = foot_points(p.shape, ro, po)
        # jitter -80 %
        assert M.jitter(po, 30) <= 0.2 * M.jitter(raw_j, 30), p.kind
        # MPJPE better on average (on every frame: `test_mpjpe_not_worse_on_any_frame`)
        e_raw, e_ref = M.mpjpe_per_frame(raw_j, truth_j), M.mpjpe_per_frame(po, truth_j)
        assert e_ref.mean() < e_raw.mean()
        # skating during true contacts -80 %
        assert M.skating(ref_f, truth_f, p.contacts) <= 0.2 * M.skating(raw_f, truth_f, p.contacts), p.kind
        # penetration <= 5 mm
        assert M.penetration(ref_f) <= 0.005, p.kind
        con = np.array([f["people"]["contacts"][list(f["people"]["id"]).index(p.pid)] for f in refined.frames], bool)
        pooled_pred.append(con)
        pooled_true.append(p.contacts)
    assert M.f1(np.concatenate(pooled_pred), np.concatenate(pooled_true)) >= 0.9


# on a single frame the raw sample is itself a random draw, and one that lands within a centimetre or two of the
# truth can beat an estimate that does not know the truth: none does on these five scenes, while on seeds 0-27
# (scripts/refine_accuracy.py) the refined error is worse than the raw one on 4 of 26,880 person-frames and on the
# held-out seeds 28-55 on 11 (mostly the raw frame nearest the truth of its person's clip); never over any 3
# consecutive frames (`test_mpjpe_not_worse_over_any_three_frames`).


def _mpjpe_worse(scene, refined) -> dict[str, np.ndarray]:
    """Per person kind: refined minus raw MPJPE against the truth [T] (m), both in the refined world."""
    ta = _truth_to_refined(scene, refined)
    a = np.array(refined.header["conventions"]["from_raw"])
    frames = split(scene.messages)[1]
    out = {}
    for p in scene.people:
        _, pt = forward(p.shape, p.local, p.root)
        truth_j = pt @ ta[:3, :3].T + ta[:3, 3]
        _, po = forward(p.shape, *person_series(frames, p.pid, scene.body))
        raw_j = po @ a[:3, :3].T + a[:3, 3]
        _, po = forward(p.shape, *person_series(refined.frames, p.pid, scene.body))
        out[f"{p.kind}{p.pid}"] = M.mpjpe_per_frame(po, truth_j) - M.mpjpe_per_frame(raw_j, truth_j)
    return out


def test_mpjpe_not_worse_on_any_frame(scene, refined):
    worst = {k: (np.flatnonzero(w > 0).tolist(), float(w.max())) for k, w in _mpjpe_worse(scene, refined).items()
             if (w > 0).any()}
    assert not worst, worst


def test_mpjpe_not_worse_over_any_three_frames(scene, refined):
    """Local damage (a blurred landing, a dragged leg, a flight off its path) shows as a stretch of frames
    worse than the noisy input; over 3 frames (0.1 s) the raw error's own luck averages out."""
    for kind, worse in _mpjpe_worse(scene, refined).items():
        stretch = np.convolve(worse, np.ones(3) / 3, "valid")
        assert stretch.max() <= 0.0, (kind, int(stretch.argmax()), float(stretch.max()))


def test_skating_below_half_a_millimetre(scene, refined):
    """Every person on their own, over their true contacts: mean 3D sole-point step <= 0.5 mm/frame after
    locking."""
    ta = _truth_to_refined(scene, refined)
    for p in scene.people:
        rt, pt = forward(p.shape, p.local, p.root)
        truth_f = foot_points(p.shape, rt, pt) @ ta[:3, :3].T + ta[:3, 3]
        loc, root = person_series(refined.frames, p.pid, scene.body)
        ro, po = forward(p.shape, loc, root)
        ref_f = foot_points(p.shape, ro, po)
        skate = M.skating(ref_f, truth_f, p.contacts)
        assert skate <= 0.0005, (p.kind, skate)


def test_reprojection_unchanged(scene, refined):
    a = np.array(refined.header["conventions"]["from_raw"])
    _, frames, _, end = split(scene.messages)
    xyz = np.asarray(end["scene_points"]["xyz"], np.float64)[:2000]
    xyz_ref = np.asarray(refined.end["scene_points"]["xyz"], np.float64)[:2000]
    assert np.allclose(xyz @ a[:3, :3].T + a[:3, 3], xyz_ref, atol=1e-5)
    worst = 0.0
    for f_raw, f_ref in zip(frames[::10], refined.frames[::10]):
        k = np.asarray(f_raw["camera"]["K"], np.float64)
        uv = []
        for f, pts in ((f_raw, xyz), (f_ref, xyz_ref)):
            w2c = np.linalg.inv(np.asarray(f["camera"]["cam_to_world"], np.float64))
            c = pts @ w2c[:3, :3].T + w2c[:3, 3]
            front = c[:, 2] > 0.1
            uv.append((c @ k.T)[:, :2] / c[:, 2:3])
        worst = max(worst, float(np.abs(uv[0] - uv[1])[front].max()))
    assert worst <= 0.05, worst


def test_raw_messages_untouched(scene):
    before = [np.array(f["people"]["transl"]) for f in split(scene.messages)[1]]
    refine_job(*split(scene.messages))
    for b, f in zip(before, split(scene.messages)[1]):
        assert np.array_equal(b, f["people"]["transl"])


@pytest.mark.parametrize("case", ["no_people", "one_frame", "single_frame_person", "nan", "gaps"])
def test_bad_input_is_reported_not_raised(case):
    sc = make_scene(seed=4, n_frames=40, kinds=("walk", "stand"))
    header, frames, tracks, end = split(sc.messages)
    if case == "no_people":
        sc = make_scene(seed=4, n_frames=40, kinds=())
        header, frames, tracks, end = split(sc.messages)
    elif case == "one_frame":
        frames = frames[:1]
    elif case == "single_frame_person":
        for f in frames[1:]:
            f["people"] = {k: v[1:] for k, v in f["people"].items()}
    elif case == "nan":
        frames[5]["people"]["transl"][0] = np.nan
        frames[6]["people"]["body_pose"][1, 3] = np.inf
    elif case == "gaps":
        for f in frames[10:15]:
            f["people"] = {k: v[1:] for k, v in f["people"].items()}
    r = refine_job(header, frames, tracks, end)
    assert len(r.frames) == len(frames)
    reasons = " ".join(r.header["refinement"]["reasons"])
    expected = {"no_people": "no people", "one_frame": "fewer than 3", "single_frame_person": "fewer than 3",
                "nan": "NaN/inf", "gaps": "gaps"}[case]
    assert expected in reasons, reasons
    if case == "nan":
        assert np.isnan(r.frames[5]["people"]["transl"][0]).any()


def test_no_pop_at_lock_boundaries(scene, refined):
    """What locking changes on the legs moves per frame by less than the input noise does: at the knees,
    ankles and feet below the RMS frame-to-frame step of the noise at those joints."""
    unlocked = refine_job(*split(scene.messages), options={"foot_lock": False})
    a_raw = np.array(refined.header["conventions"]["from_raw"])
    ta = _truth_to_refined(scene, refined)
    raw_frames = split(scene.messages)[1]
    for p in scene.people:
        _, a = forward(p.shape, *person_series(refined.frames, p.pid, scene.body))
        _, b = forward(p.shape, *person_series(unlocked.frames, p.pid, scene.body))
        _, raw = forward(p.shape, *person_series(raw_frames, p.pid, scene.body))
        _, truth = forward(p.shape, p.local, p.root)
        noise = (raw @ a_raw[:3, :3].T + a_raw[:3, 3]) - (truth @ ta[:3, :3].T + ta[:3, 3])
        for joints in ([7, 8, 10, 11], [4, 5]):
            pop, bound = M.lock_pop(a, b, noise, joints)
            assert pop <= bound, (p.kind, joints, pop, bound)


def test_refined_world_keeps_the_first_camera_forward_and_above_the_origin(refined):
    c2w = np.asarray(refined.frames[0]["camera"]["cam_to_world"], np.float64)
    forward = c2w[:3, 2]
    assert abs(forward[0]) < 1e-5 and forward[2] > 0  # ground-projected forward along +z (Blender +Y)
    assert np.allclose(c2w[[0, 2], 3], 0.0, atol=1e-5) and c2w[1, 3] < -1.0  # above the origin, up = -y
    assert np.allclose(c2w[:3, :3] @ c2w[:3, :3].T, np.eye(3), atol=1e-5)


def test_camera_smoothing_only_on_request(scene, refined):
    smoothed = refine_job(*split(scene.messages), options={"smooth_camera": True})
    a = np.array(refined.header["conventions"]["from_raw"])
    # same floor (the smoothed first camera only moves the yaw/origin choice slightly)
    assert np.allclose(np.array(smoothed.header["conventions"]["from_raw"])[1, :3], a[1, :3], atol=2e-3)
    raw = split(scene.messages)[1]
    for f_raw, f_ref in zip(raw[::20], refined.frames[::20]):  # default: the camera only moves rigidly
        assert np.allclose(a @ np.asarray(f_raw["camera"]["cam_to_world"], np.float64),
                           f_ref["camera"]["cam_to_world"], atol=1e-5)
    diffs = [np.abs(np.asarray(s["camera"]["cam_to_world"]) - np.asarray(r["camera"]["cam_to_world"])).max()
             for s, r in zip(smoothed.frames, refined.frames)]
    assert max(diffs) > 1e-4 and smoothed.header["refinement"]["smooth"]["sigma_s"]["camera"] > 0
    for f in smoothed.frames[::20]:
        r = np.asarray(f["camera"]["cam_to_world"], np.float64)[:3, :3]
        assert np.allclose(r @ r.T, np.eye(3), atol=1e-5)


def test_truth_feet_are_planted(scene):
    """The generator's own check: during known contacts the truth sole points stay on the floor and still."""
    for p in scene.people:
        rot, pos = forward(p.shape, p.local, p.root)
        pts = foot_points(p.shape, rot, pos)
        assert np.abs(pts[..., 1][p.contacts]).max() < 0.005, p.kind
        both = p.contacts[1:] & p.contacts[:-1]
        assert np.linalg.norm(np.diff(pts, axis=0), axis=-1)[both].max() < 0.001, p.kind


def _mean_angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    """Mean angle (degrees) between rotation matrices a and b [..., 3, 3]."""
    cos = (np.trace(np.swapaxes(a, -1, -2) @ b, axis1=-2, axis2=-1) - 1) / 2
    return float(np.degrees(np.arccos(np.clip(cos, -1, 1))).mean())


def _joint_error_deg(scene, refined, joints) -> list[float]:
    """Per person, the mean angle (degrees) between refined and true local rotations of `joints` (local
    rotations do not depend on the world)."""
    return [_mean_angle_deg(person_series(refined.frames, p.pid, scene.body)[0][:, joints], p.local[:, joints])
            for p in scene.people]


def test_upper_body_widths_chosen_by_cross_validation_are_closer_to_the_truth(scene, refined, monkeypatch):
    """One width for the whole clip where leave-one-out cross-validation prefers it: every person's upper-body
    rotations are at least 10 % closer to the truth than with the adaptive widths alone (0.64-0.73 deg ->
    0.48-0.59 deg on seeds 0-4, 15-26 % closer)."""
    import blender_addon.core.motion.refine as refine_module
    upper = np.flatnonzero(refine_module.CROSS_VALIDATED_JOINTS)[1:]  # spine, neck, head, collars, arms (0: world)
    with_cv = _joint_error_deg(scene, refined, upper)
    monkeypatch.setattr(refine_module, "CROSS_VALIDATED_JOINTS", np.zeros_like(refine_module.CROSS_VALIDATED_JOINTS))
    adaptive_only = refine_job(*split(scene.messages))
    without = _joint_error_deg(scene, adaptive_only, upper)
    assert all(a <= 0.9 * b for a, b in zip(with_cv, without)), (with_cv, without)


def test_pelvis_orientation_cross_validated_except_for_someone_who_jumps(scene, refined, monkeypatch):
    """Walkers and the stander: the pelvis orientation with cross-validated widths is never farther from the
    truth than with the adaptive widths alone (the same where cross-validation keeps them) and at least 20 %
    closer on average (0.46-0.65 deg -> 0.25-0.42 deg where it chooses one width, seeds 0-4). The jumper keeps
    the adaptive widths (one width for the whole clip blurs the pitch at take-offs and landings): its pelvis
    orientation is the same either way."""
    import blender_addon.core.motion.refine as refine_module
    mask = refine_module.CROSS_VALIDATED_JOINTS.copy()
    mask[0] = False
    monkeypatch.setattr(refine_module, "CROSS_VALIDATED_JOINTS", mask)
    adaptive = refine_job(*split(scene.messages))
    ta = _truth_to_refined(scene, refined)
    others = []
    for p in scene.people:
        truth = ta[:3, :3] @ p.local[:, 0]
        errors = [_mean_angle_deg(person_series(r.frames, p.pid, scene.body)[0][:, 0], truth)
                  for r in (refined, adaptive)]
        if p.kind == "jump":
            assert abs(errors[0] - errors[1]) < 1e-3, errors  # same widths (the floors differ by a hair)
        else:
            assert errors[0] <= errors[1], (p.kind, errors)
            others.append(errors)
    assert np.mean(others, 0)[0] <= 0.8 * np.mean(others, 0)[1], others
