"""Contact detection at the clip's ends, on sole tracks with a known answer."""
import numpy as np

from blender_addon.core.motion.contacts import detect_contacts

FPS = 30.0
# a foot slowing down to a stop (m/s per frame): its contact speed reads 0.62, 0.60, 0.54 then 0.47 m/s, so a
# contact starts on the fourth frame, as at a clip that opens on a planted foot (its smoothed pose was measured
# sliding at 0.63, 0.58, 0.50, 0.43 m/s there)
SLOWING = np.array([0.75, 0.7, 0.65, 0.6, 0.55, 0.45, 0.3, 0.2, 0.1])
STILL_H = 0.005  # m, a foot on the floor


def _soles(speed: np.ndarray, height: np.ndarray) -> np.ndarray:
    """Four sole points [T, 4, 3] (refined world, y down) moving forward at speed [T] (m/s), at height [T] (m)."""
    pts = np.zeros((len(speed), 4, 3))
    pts[..., 0] = (np.cumsum(speed) / FPS)[:, None]
    pts[..., 1] = -height[:, None]
    return pts


def _slowing_then_still(extra: np.ndarray = np.zeros(0)) -> np.ndarray:
    return np.concatenate([extra, SLOWING, np.zeros(60)])


def test_the_clips_first_frames_are_not_a_touch_down_when_the_foot_is_low():
    speed = _slowing_then_still()
    con = detect_contacts(_soles(speed, np.full(len(speed), STILL_H)), FPS)
    assert con[3:].all()
    assert con[:3].all()  # the clip does not show this foot coming down: the contact began before it


def test_nor_its_last_frames_a_lift_off():
    speed = _slowing_then_still()[::-1]
    con = detect_contacts(_soles(speed, np.full(len(speed), STILL_H)), FPS)
    assert con.all()


def test_a_foot_still_in_the_air_at_the_first_frames_is_not_in_contact_there():
    speed = _slowing_then_still()
    height = np.full(len(speed), STILL_H)
    height[:3] = [0.07, 0.045, 0.02]  # coming down: the first frame is above the contact height
    con = detect_contacts(_soles(speed, height), FPS)
    assert not con[:3].any() and con[3:].all()


def test_a_longer_slide_at_the_start_and_a_short_one_inside_the_clip_stay_free():
    speed = _slowing_then_still(np.array([0.85, 0.8]))  # two frames more: a contact from frame 5
    con = detect_contacts(_soles(speed, np.full(len(speed), STILL_H)), FPS)
    assert not con[:5].any() and con[5:].all()
    # the same foot between two still stretches: three free frames, which only the clip's ends would fill
    speed = np.concatenate([np.zeros(40), SLOWING[1:][::-1], SLOWING[2:], np.zeros(40)])
    con = detect_contacts(_soles(speed, np.full(len(speed), STILL_H)), FPS)
    free = np.flatnonzero(~con[:, 0])
    assert len(free) == 3 and con[:40].all() and con[55:].all()
