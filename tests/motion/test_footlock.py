"""Foot lock building blocks on legs built in the test: a free foot gives way short of a straight leg and is
not lengthened much in one go; a held leg may be as straight as the observed knee has it; a planted foot says
where the pelvis is along its leg."""
from __future__ import annotations

import numpy as np

from blender_addon.core.motion import options as o
from blender_addon.core.motion.footlock import two_bone_ik, within_reach
from blender_addon.core.motion.kinematics import LEGS, BodyShape, forward, leg_extension
from blender_addon.core.motion.refine import refine_job
from blender_addon.core.rotations import axis_angle_to_matrix
from tests.motion.synthetic_motion import make_scene, person_series, split

THIGH, SHIN = 0.42, 0.40


def _legs(n: int, bend: float = 0.6) -> np.ndarray:
    """Joint positions [n, 22, 3] (m) with both legs hanging from hips at x = +/-0.1, knees bent by `bend`
    radians forward (+z), y down; only the hip, knee and ankle rows are used."""
    pos = np.zeros((n, 22, 3))
    for side, (hip, knee, ankle) in zip((1.0, -1.0), LEGS):
        pos[:, hip] = [0.1 * side, 0.0, 0.0]
        pos[:, knee] = pos[:, hip] + THIGH * np.array([0.0, np.cos(bend / 2), np.sin(bend / 2)])
        pos[:, ankle] = pos[:, knee] + SHIN * np.array([0.0, np.cos(bend / 2), -np.sin(bend / 2)])
    return pos


def test_a_free_foot_is_aimed_no_farther_than_the_margin():
    pos = _legs(3)
    hip, knee, ankle = LEGS[0]
    down = np.array([0.0, 0.2, 0.0])  # 20 cm further down: out of reach for this leg
    corr = np.zeros((3, 2, 3))
    corr[:, 0] = down
    corr[2, 0] = [0.0, 0.01, 0.0]  # a small pull that stays in reach
    free = np.array([[True, True], [False, True], [True, True]])
    out = within_reach(pos, corr, free, 0.99)
    reach = np.linalg.norm(pos[0, ankle] + out[0, 0] - pos[0, hip])
    assert abs(reach - 0.99 * (THIGH + SHIN)) < 1e-9  # shortened to exactly the margin
    assert np.allclose(np.cross(out[0, 0], down), 0.0) and out[0, 0] @ down > 0  # in the same direction
    assert np.array_equal(out[1, 0], down)  # a held foot: the pelvis moves instead, the target stays
    assert np.array_equal(out[2, 0], corr[2, 0])  # in reach: unchanged
    assert np.array_equal(out[:, 1], corr[:, 1])  # no correction: nothing to change


def test_a_leg_already_straighter_than_the_margin_is_not_pulled_farther():
    pos = _legs(2, bend=0.05)  # 99.99 % of the leg's length
    hip, _, ankle = LEGS[0]
    a = pos[0, ankle] - pos[0, hip]
    corr = np.zeros((2, 2, 3))
    corr[0, 0] = 0.03 * a / np.linalg.norm(a)  # away from the hip: dropped
    corr[1, 0] = -0.03 * a / np.linalg.norm(a)  # towards it: kept
    out = within_reach(pos, corr, np.ones((2, 2), bool), 0.99)
    assert np.array_equal(out[0, 0], np.zeros(3))
    assert np.array_equal(out[1, 0], corr[1, 0])


def test_a_free_foot_lengthens_its_leg_by_at_most_the_extend_share():
    """Legs bent 0.6 rad (95.5 % of their length): a free foot pulled 3 cm further along its leg (in reach) is
    aimed 2.5 % of the leg further, not 3 cm; a 1 cm pull stays as asked, and so does a held foot's 3 cm."""
    pos = _legs(3)
    hip, _, ankle = LEGS[0]
    a = pos[0, ankle] - pos[0, hip]
    along = a / np.linalg.norm(a)
    corr = np.zeros((3, 2, 3))
    corr[:, 0] = 0.03 * along
    corr[1, 0] = 0.01 * along
    free = np.array([[True, True], [True, True], [False, True]])
    assert np.array_equal(within_reach(pos, corr, free, 0.999), corr)  # within the margin: nothing to limit
    out = within_reach(pos, corr, free, 0.999, 0.025)
    lengthened = np.linalg.norm(a + out[0, 0]) - np.linalg.norm(a)
    assert abs(lengthened - 0.025 * (THIGH + SHIN)) < 1e-9
    assert np.allclose(np.cross(out[0, 0], along), 0.0)
    assert np.array_equal(out[1, 0], corr[1, 0]) and np.array_equal(out[2, 0], corr[2, 0])


def test_the_knee_does_not_swing_when_a_blend_asks_for_a_straight_leg():
    """A blend window's pull grows then fades over 7 frames and, at its peak, asks for a leg 0.1 % short
    of straight: the IK swings the knee by 6 cm in one frame. Aimed no farther than 99 % of the leg, the
    leg never straightens past that and the knee's largest step is about half."""
    n = 7
    pos = _legs(n)
    hip, knee, ankle = LEGS[0]
    a = pos[0, ankle] - pos[0, hip]
    full = (0.999 * (THIGH + SHIN) - np.linalg.norm(a)) * a / np.linalg.norm(a)  # pull to 99.9 % along the leg
    corr = np.zeros((n, 2, 3))
    corr[:, 0] = np.array([0.0, 0.2, 0.6, 1.0, 0.6, 0.2, 0.0])[:, None] * full
    free = np.ones((n, 2), bool)

    def knee_path(c):
        thigh, _, _ = two_bone_ik(pos[:, hip], pos[:, knee], pos[:, ankle], pos[:, ankle] + c[:, 0])
        return pos[:, hip] + np.einsum("nab,nb->na", thigh, pos[:, knee] - pos[:, hip])

    raw_step = np.linalg.norm(np.diff(knee_path(corr), axis=0), axis=-1).max()
    limited = within_reach(pos, corr, free, 0.99)
    extension = np.linalg.norm(pos[:, ankle] + limited[:, 0] - pos[:, hip], axis=-1) / (THIGH + SHIN)
    step = np.linalg.norm(np.diff(knee_path(limited), axis=0), axis=-1).max()
    assert raw_step > 0.05  # the case is real: 5+ cm of knee swing in one frame without the margin
    assert extension.max() <= 0.99 + 1e-9
    assert step < 0.6 * raw_step


def test_leg_extension_is_the_hip_ankle_distance_of_forward_kinematics():
    """For random poses of a shaped body (hips, pelvis and knees all turned), the extension read from the knees'
    local rotations alone equals the hip-ankle distance that forward kinematics gives, over thigh + shin."""
    scene = make_scene(kinds=("walk",), n_frames=3, seed=1)
    shape: BodyShape = scene.people[0].shape
    rng = np.random.default_rng(0)
    local = axis_angle_to_matrix(rng.normal(0.0, 0.8, (50, 22, 3)))
    _, pos = forward(shape, local, rng.normal(0.0, 1.0, (50, 3)))
    bones = [np.linalg.norm(shape.rest[knee] - shape.rest[hip]) + np.linalg.norm(shape.rest[ankle] - shape.rest[knee])
             for hip, knee, ankle in LEGS]
    want = np.stack([np.linalg.norm(pos[:, ankle] - pos[:, hip], axis=-1) / length
                     for (hip, _, ankle), length in zip(LEGS, bones)], 1)
    got = leg_extension(shape, local[:, [knee for _, knee, _ in LEGS]])
    assert np.allclose(got, want, atol=1e-12)
    assert want.min() < 0.9 < 0.99 < want.max()  # bent and nearly straight legs both checked


def test_a_walkers_straight_legs_do_not_pull_the_pelvis_down(monkeypatch):
    """Without noise, a walker's legs reach 98-99 % of their length at heel strike and toe-off. Held there, the
    pelvis stays within 2 mm of the truth; with the fixed 98 % reach (the rule before the observed knee was
    read) it was pulled down by over 4 mm in double support."""
    scene = make_scene(kinds=("walk",), seed=3, noise_m=0.0, noise_deg=0.0, outlier_rate=0.0)
    person = scene.people[0]
    double_support = person.contacts[:, [0, 2]].all(1)

    def pelvis_drop() -> np.ndarray:
        refined = refine_job(*split(scene.messages))
        ta = np.array(refined.header["conventions"]["from_raw"]) @ scene.raw_from_truth
        _, root = person_series(refined.frames, person.pid, scene.body)
        return (root - (person.root @ ta[:3, :3].T + ta[:3, 3]))[double_support, 1]  # y down: > 0 is too low

    drop = pelvis_drop()
    assert np.abs(drop).max() < 0.002 and abs(drop.mean()) < 0.001
    monkeypatch.setattr(o, "LOCK_REACH_OBSERVED_MAX", o.LOCK_REACH_MARGIN)
    assert pelvis_drop().max() > 0.004


def test_a_walkers_pelvis_height_in_single_support_follows_the_planted_foot(monkeypatch):
    """The smoother flattens a walker's 1 cm gait bob, so its pelvis is millimetres off in step with the gait; a
    planted foot and the known bone lengths say where the pelvis is along the leg. Taken in full, the pelvis
    height in single support comes closer to the truth than at the inverse-variance weight of the smoothed
    root's noise (0.8), and much closer than without the feet's word."""
    scenes = [make_scene(seed=seed) for seed in range(3)]  # two walkers each, with a stander and a jumper

    def single_support_rms() -> np.ndarray:
        """Vertical pelvis error rms (m) over each walker's single-support frames."""
        out = []
        for scene in scenes:
            refined = refine_job(*split(scene.messages))
            ta = np.array(refined.header["conventions"]["from_raw"]) @ scene.raw_from_truth
            for person in scene.people[:2]:
                _, got = forward(person.shape, *person_series(refined.frames, person.pid, scene.body))
                _, truth = forward(person.shape, person.local, person.root)
                error = got[:, 0, 1] - (truth[:, 0] @ ta[:3, :3].T + ta[:3, 3])[:, 1]
                single = person.contacts[:, [0, 2]].sum(1) == 1
                out.append(np.sqrt(np.mean(error[single] ** 2)))
        return np.array(out)

    full = single_support_rms()
    assert o.ROOT_FROM_FEET_ALONG_LEG == 1.0 and full.max() < 0.006
    monkeypatch.setattr(o, "ROOT_FROM_FEET_ALONG_LEG", 0.8)
    assert full.mean() < 0.95 * single_support_rms().mean()  # 4.3 against 4.7 mm measured
    monkeypatch.setattr(o, "ROOT_FROM_FEET_ALONG_LEG", 0.0)
    assert single_support_rms().mean() > 1.4 * full.mean()
