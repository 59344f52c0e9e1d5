"""Clean-up options: the one definition used by `human3r refine`, infer/serve jobs and the add-on panel.

A plain map (JSON/msgpack/panel) goes through `CleanupOptions.from_dict`, the single validation point;
its `ValueError` names the bad option.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

GROUND_MODES = ("both", "points", "feet", "off")

# Offline filter widths at strength 1 (seconds). Body rotations and the root translation: the adaptive
# local quadratic fit picks, per frame, the widest of these levels the data allow (confidence intervals
# at GAMMA standard deviations of the clip's own noise); hands/face and the camera: one Gaussian. The widest
# body levels (0.5 and 1 s) serve what holds still or moves evenly (a spine, a walker's heading): on 28
# generated scenes they cut the mean MPJPE from 9.8 to 9.5 mm; where the motion turns, the narrower fits
# disagree with them and they are not chosen.
SIGMA_BODY_LEVELS_S = (0.04, 0.06, 0.09, 0.13, 0.2, 0.3, 0.5, 1.0)
SIGMA_ROOT_LEVELS_S = (0.03, 0.045, 0.07, 0.1, 0.15, 0.22, 0.33, 0.5, 0.75)
# Contacts are found on the same filters capped at these widths: the widest fits that a still foot allows
# also let a lifting foot's first frames leak into its last still ones (and so end a contact early)
CONTACT_SIGMA_MAX_BODY_S = 0.2
CONTACT_SIGMA_MAX_ROOT_S = 0.15
GAMMA_BODY = 1.0
# Someone who jumps: hip and knee rotations of each ground phase (between flights, `refine._piecewise_body`) keep a
# wider fit only within half the usual band. A crouch or a landing bends the knee by 30 deg in 0.2-0.4 s, and at
# GAMMA_BODY the fits let through a bias of 1.5-2 deg (the bend flattened at the bottom, late on the rise: the
# pelvis 9 mm too high, then 9 mm too low, after every landing, averaged over 56 jumpers). Within
# PHASE_EDGE_KEEP_S of a take-off or landing the phase's fits are one-sided and noisy, so GAMMA_BODY holds there,
# ramping to this over as long again. On 112 generated jumpers their mean MPJPE fell by 0.21-0.24 mm on every set
# of 28 (the pelvis height 4-11 frames after a landing: 6.3 against 7.4 mm rms on the test scenes); the feet keep GAMMA_BODY
# (at 0.5 their rotation noise made the held toes slide: jumper skating 0.15 -> 0.43 mm/frame).
GAMMA_GROUND_PHASE_LEGS = 0.5
PHASE_EDGE_KEEP_S = 0.067
GAMMA_ROOT = 0.9
# Once the floor is known, the root's horizontal axes are filtered again on their own (refine step 2b): level
# ground travel (a walk's pace, a stance) is smooth over seconds while the vertical carries the step's bob,
# crouches and jumps. These wider levels and the larger gamma (narrower fits must disagree more before one
# is chosen: at 0.9 noise alone picked narrow widths often, 5.1 mm rms per axis for walkers where a fixed
# 0.75 s fit gives 3.3) took the horizontal root error from 5.4 to 3.3 mm rms for walkers and from 6.8 to
# 2.8 mm for jumpers on 28 generated scenes; a stander's 0.3 Hz sway keeps narrower fits.
# Per axis, one of these widths for the whole segment replaces the adaptive choice where leave-one-out
# cross-validation prefers it (a stander's sway: 6.5 -> 5.4 mm rms on 8 scenes; walkers 3.1 -> 2.8 mm).
SIGMA_ROOT_HORIZONTAL_LEVELS_S = SIGMA_ROOT_LEVELS_S + (1.1, 1.6)
GAMMA_ROOT_HORIZONTAL = 1.5
# Robust smoothing (Huber pseudo-observations): samples farther from the fit than this many times the clip's
# noise level count as if they were at that distance (root per axis, body rotations per joint)
ROOT_CLIP = 2.0
BODY_CLIP = 2.0
SIGMA_HANDS_S = 0.1
SIGMA_CAMERA_S = 0.1
OUTLIER_THRESHOLD = 3.0  # a frame this many times the clip's median deviation from its neighbours is an outlier
# Live One Euro at strength 1: min cutoff (Hz, divided by strength) and speed gains (s/m, s/rad).
ONE_EURO_MIN_CUTOFF_HZ = 5.0  # keeps the lag at rest <= 1 frame at 30 fps (1/(2*pi*5 Hz) = 0.8 frame)
ONE_EURO_BETA_POS = 6.0
ONE_EURO_BETA_ROT = 1.5
# Contact detection and foot lock (metres, metres/second, seconds).
CONTACT_HEIGHT_M = 0.04
CONTACT_ENTER_MS = 0.30
CONTACT_LEAVE_MS = 0.50  # below this (before it dipped under the enter speed) to start a contact ...
CONTACT_END_MS = 0.55  # ... and above this to end one (see contacts.detect_contacts)
CONTACT_MIN_RUN_S = 0.1
CONTACT_SMOOTH_S = 0.05
CONTACT_SPEED_SPAN_S = 0.067
CONTACT_FILL_GAP_S = 0.07
# a gap up to this long between a contact and the clip's start or end is filled where the foot is low all
# along (the clip does not show the foot coming down or lifting off there)
CONTACT_EDGE_FILL_S = 0.1
LOCK_BLEND_S = 0.13
FLIGHT_JOIN_S = 0.23  # ground frames each side of a flight fitted with it (push / landing cubics joined C1)
# and handed over to the smoothed root
LOCK_LAND_MAX_H = 0.04  # a run's first frames with the final pose's foot higher than this: not pulled down yet
LOCK_BLEND_TO_ANCHOR = 0.85  # share of the blend window's correction aimed at the anchors (the rest: the edge's offset)
LOCK_BLEND_NEAR_M = 0.04  # a blended foot this near its anchors gets the whole pull towards them; none beyond
LOCK_BLEND_FAR_M = 0.08  # this (a foot really swinging away or coming down: its free pose is the better guess)
LOCK_PULL_DOWN_MAX_H = 0.04  # a blended foot higher than this is taking off: not pulled down to its anchor
# After a take-off (a flight follows, `footlock.flight_runs`) the free pose of the first flight frames is the better
# guess, filtered on its own; what the lock carries over from the last ground frame is mostly that frame's own error
# (the ground phase's one-sided end fit: up to 10 cm at the foot). So there the carried correction fades by at most
# one RMS step of the input's noise per frame (the pelvis samples' per-axis noise level x sqrt(6): a step no larger
# than the noise makes, so no pop), usually within one frame, instead of over the whole blend window; and the pull
# towards the anchors (for a take-off found a frame early) fades out for a free foot moving faster than
# TAKE_OFF_PULL_SPEED_MS (a foot still planted is slow; one leaving the floor rises at 1-2 m/s). On 112 generated
# jumpers no lock step is above the noise any more (3 were, up to 1.09x: a foot held 7 cm off its free pose in
# flight), their mean MPJPE fell by a further 0.06-0.09 mm, and one take-off found two frames early now slides
# (0.54 mm/frame; 0.49 before); at 1.5-3 m/s two lock steps above the noise came back.
TAKE_OFF_FADE_NOISE_STEPS = 1.0
TAKE_OFF_PULL_SPEED_MS = (1.0, 2.0)
LOCK_DILATE_S = 0.067  # lock this long beyond each detected contact (smoothing blurs the stance edges) ...
LOCK_DILATE_MAX_H = 0.02  # ... only where the foot is this low (a foot landing from a jump stays free) ...
LOCK_DILATE_MAX_MS = 0.6  # ... and, after a contact, this slow (a foot already swinging stays free)
# ... and, before one, this slow: a foot still swinging in or falling from a jump was held at its anchor up to
# 7 cm away, and the IK swung the knee by up to 10 cm in one frame. On 56 generated scenes 7 of the 8 people
# with a pop above the noise (up to 1.09x) lost it and no other criterion changed; at 1.25 m/s a walker's
# touch-down skated, at 2 m/s (about a jump's landing speed) the landings' pops came back.
LOCK_DILATE_BEFORE_MAX_MS = 1.5
# Weight of a planted foot's evidence on the root against the smoothed root. Along the leg the bone lengths
# are known, so the foot-derived pelvis is off by the knee bend's error only (2-7 mm rms on the synthetic
# scenes), the smoothed root by 6-13 mm, and much of that is a bias no variance weighs: the filter flattens
# a walker's 1 cm gait bob (its pelvis +-7 mm off in step with the gait). Taken in full (1.0, not the
# inverse-variance 0.8), the mean MPJPE fell by 0.15-0.2 mm on every seed set and the frames worse than the
# raw ones from 36 to 33 of 107,520. Across the leg it is off by the leg direction's error times the leg's
# length (12-19 mm), against 3-5 mm of the horizontally refiltered root.
ROOT_FROM_FEET_ALONG_LEG = 1.0
ROOT_FROM_FEET_ACROSS_LEG = 0.15
# Reach, as a share of the leg's length (thigh + shin): a held foot's target farther than this (or than the observed
# knee has the leg, up to LOCK_REACH_OBSERVED_MAX) moves the pelvis
# towards it; a foot in a blend window (free) is aimed no farther than the free margin (or than it already
# is) instead: near full extension the IK's knee swings by centimetres in a frame (up to 8 cm measured at a
# toe-off). On 56 generated scenes the free margin took away 3 of the 7 walkers' knee pops (the largest,
# 1.17x the noise) and changed no other criterion.
LOCK_REACH_MARGIN = 0.98
LOCK_FREE_REACH_MARGIN = 0.99
# A free foot's target also lengthens its leg by at most this share of the leg beyond its free pose: at a jumper's
# first flight frame the blend after the take-off pulled the foot down towards its anchor and straightened the
# leg by 3.6 % in one frame (the knee moved 5 cm, 1.002x the noise). On 56 generated scenes that pop went away
# and no other criterion changed; at 0.015 a walker's touch-down lost its pull and the knee popped (1.16x).
LOCK_FREE_EXTEND_MAX = 0.025
# A held leg that the observed (unsmoothed) knee shows straighter than LOCK_REACH_MARGIN may be that straight, up to
# this, before the pelvis moves: walkers' legs reach 98.3-99.4 % at heel strike and toe-off, and at the fixed
# 0.98 the pelvis was pulled down by up to 2 cm there. Near a straight knee the hip-ankle distance hardly
# depends on the knee angle's noise (0.6 % of the leg rms on the synthetic scenes, unbiased). On 56 generated
# scenes the mean MPJPE fell by 0.12 mm and no criterion changed; 0.99 and 0.998 gave the same.
LOCK_REACH_OBSERVED_MAX = 0.995

@dataclass(frozen=True)
class CleanupOptions:
    """What the clean-up does.

    Attributes:
        ground: floor evidence: 'both' (scene points and foot contacts), 'points', 'feet', or 'off'
            (keep the model's world).
        smooth: smoothing strength, 0 = off, 1 = default (scales the filter widths), at most 4.
        foot_lock: detect foot contacts and lock feet during them (two-bone leg IK with blend
            windows) and push feet out of the floor.
        smooth_camera: also smooth the camera path (off: the per-frame camera is what lines up with
            the footage; smoothing it changes the match-move).
    """

    ground: str = "both"
    smooth: float = 1.0
    foot_lock: bool = True
    smooth_camera: bool = False

    def __post_init__(self) -> None:
        if self.ground not in GROUND_MODES:
            raise ValueError(f"cleanup option 'ground' must be one of {', '.join(GROUND_MODES)} (got {self.ground!r})")
        if (not isinstance(self.smooth, (int, float)) or isinstance(self.smooth, bool) or self.smooth != self.smooth
                or not 0.0 <= self.smooth <= 4.0):
            raise ValueError(f"cleanup option 'smooth' must be a number in [0, 4] (got {self.smooth!r})")
        for name in ("foot_lock", "smooth_camera"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"cleanup option '{name}' must be true or false (got {getattr(self, name)!r})")

    @property
    def active(self) -> bool:
        return self.ground != "off" or self.smooth > 0 or self.foot_lock

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "CleanupOptions":
        """Validate a plain map; missing keys take the defaults. Raises ValueError naming the option."""
        if isinstance(data, CleanupOptions):
            return data
        if data is not None and not isinstance(data, dict):
            raise ValueError(f"cleanup options must be a map (got {type(data).__name__})")
        data = dict(data or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown cleanup option(s): {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        if isinstance(data.get("smooth"), int) and not isinstance(data.get("smooth"), bool):
            data["smooth"] = float(data["smooth"])
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
