"""Someone who jumps, against the known truth: the crouch after a landing keeps its depth."""
from __future__ import annotations

import numpy as np
import pytest

from blender_addon.core.motion import options as o
from blender_addon.core.motion.kinematics import forward
from blender_addon.core.motion.refine import refine_job
from tests.motion.synthetic_motion import make_scene, person_series, split


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
