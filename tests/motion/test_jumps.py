"""Someone who jumps, against the known truth: the crouch after a landing keeps its depth, and the foot lock lets
go at a take-off instead of carrying the last ground frame's correction into the flight."""
from __future__ import annotations

import numpy as np
import pytest

from blender_addon.core.motion import options as o
from blender_addon.core.motion.kinematics import forward
from blender_addon.core.motion.refine import refine_job
from tests.motion import metrics as M
from tests.motion.synthetic_motion import make_scene, person_series, split

LEG_JOINTS = [4, 5, 7, 8, 10, 11]  # knees, ankles, feet


@pytest.fixture(scope="module")
def scenes():
    return [make_scene(seed=seed) for seed in range(4)]  # each with one jumper (a jump every 1.6 s)


def _jumper(scene, options=None):
    """(locked, free, raw, truth) joint positions [T, 22, 3] of the scene's jumper in the refined world, and its
    true contacts [T] (any sole point down)."""
    refined = refine_job(*split(scene.messages), options=options)
    free = refine_job(*split(scene.messages), options={**(options or {}), "foot_lock": False})
    a = np.array(refined.header["conventions"]["from_raw"])
    ta = a @ scene.raw_from_truth
    person = scene.people[3]
    assert person.kind == "jump"
    joints = [forward(person.shape, *person_series(msgs, person.pid, scene.body))[1]
              for msgs in (refined.frames, free.frames, split(scene.messages)[1])]
    joints[2] = joints[2] @ a[:3, :3].T + a[:3, 3]
    truth = forward(person.shape, person.local, person.root)[1] @ ta[:3, :3].T + ta[:3, 3]
    return (*joints, truth), person.contacts.any(1)


def _edges(contact: np.ndarray, landing: bool) -> list[int]:
    """First flight frames (take-offs) or first ground frames (landings) of the truth."""
    return [t for t in range(1, len(contact)) if contact[t] == landing and contact[t - 1] != landing]


def test_the_crouch_after_a_landing_keeps_its_depth(scenes, monkeypatch):
    """After a landing the knees bend by 30 deg and straighten again within 0.4 s. Filtered within the body's usual
    band, the bend came out flattened and late (the pelvis 9 mm too high at the bottom, then 9 mm too low on the
    rise); the narrower band for a jumper's hips and knees brings the pelvis height there closer to the truth."""

    def after_landing_rms() -> float:
        errors = []
        for scene in scenes:
            (locked, _, _, truth), contact = _jumper(scene)
            for b in _edges(contact, landing=True):
                if b + 12 <= len(contact):
                    errors.append(locked[b + 4:b + 12, 0, 1] - truth[b + 4:b + 12, 0, 1])  # the crouch and the rise
        return float(np.sqrt(np.mean(np.concatenate(errors) ** 2)))

    narrow = after_landing_rms()
    monkeypatch.setattr(o, "GAMMA_GROUND_PHASE_LEGS", o.GAMMA_BODY)
    usual = after_landing_rms()
    assert narrow < 0.9 * usual, (narrow, usual)  # 6.3 against 7.4 mm measured


def _flight_start(scene_list, options=None) -> tuple[np.ndarray, np.ndarray]:
    """Mean knee/ankle/foot error (m) over the first 3 flight frames of every take-off: (locked, free) [n]."""
    out = []
    for scene in scene_list:
        (locked, free, _, truth), contact = _jumper(scene, options)
        for b in _edges(contact, landing=False):
            out.append([np.linalg.norm(x[b:b + 3, LEG_JOINTS] - truth[b:b + 3, LEG_JOINTS], axis=-1).mean()
                        for x in (locked, free)])
    return tuple(np.array(out).T)


def _carry_over_whole_window(monkeypatch):
    """The blend after a take-off as for any other lift-off: the edge's correction faded over the whole window,
    the pull towards the anchors whatever the foot's speed."""
    monkeypatch.setattr(o, "TAKE_OFF_FADE_NOISE_STEPS", 0.0)
    monkeypatch.setattr(o, "TAKE_OFF_PULL_SPEED_MS", (1e9, 2e9))


def test_the_lock_lets_go_at_a_take_off(scenes, monkeypatch):
    """The first flight frames' free pose is filtered on its own and is the better guess there; what the lock
    held at the last ground frame is mostly that frame's own error. Let go within about a frame, the locked legs
    are no worse than the free ones at the start of any flight; carried over the whole blend window, they were
    up to 17 mm worse at one take-off and worse on average."""
    locked, free = _flight_start(scenes)
    assert locked.mean() <= free.mean() and (locked - free).max() < 0.005, (locked - free)
    _carry_over_whole_window(monkeypatch)
    locked, free = _flight_start(scenes)
    assert locked.mean() > free.mean() and (locked - free).max() > 0.01, (locked - free)


def test_no_pop_where_a_take_off_ended_a_large_correction(monkeypatch):
    """Seeds 78 and 108: a last ground frame whose free pose is off by 3-10 cm. The correction fades by no more
    than a step of the input's noise per frame, so what the lock changes stays below the noise's own step; carried
    over the whole window with the pull towards the anchors, it dipped back for a frame (up to 1.09x the
    noise)."""

    def pops(scene_list) -> list[float]:
        out = []
        for scene in scene_list:
            (locked, free, raw, truth), _ = _jumper(scene)
            out.append(max(pop / bound for pop, bound in
                           (M.lock_pop(locked, free, raw - truth, joints) for joints in ([7, 8, 10, 11], [4, 5]))))
        return out

    held_out = [make_scene(seed=seed) for seed in (78, 108)]
    assert max(pops(held_out)) <= 1.0
    _carry_over_whole_window(monkeypatch)
    assert max(pops(held_out)) > 1.05
