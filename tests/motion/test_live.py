"""The live (causal) clean-up on the known-truth scene: lag of the One Euro filters, jitter, the floor
estimated once and held, and a stream with bad frames."""
from __future__ import annotations

import numpy as np
import pytest

from blender_addon.core.motion.kinematics import forward
from blender_addon.core.motion.live import LiveRefiner, refine_stream
from tests.motion import metrics as M
from tests.motion.synthetic_motion import make_scene, person_series, split


@pytest.fixture(scope="module")
def scene():
    return make_scene(seed=5, n_frames=300, frame_points=True)


@pytest.fixture(scope="module")
def live_msgs(scene):
    return list(refine_stream(scene.messages, {"smooth": 1.0}))


def velocity_lag(signal: np.ndarray, reference: np.ndarray, max_lag: int = 6) -> float:
    """Lag in frames (sub-frame, parabolic peak) of `signal` behind `reference` [T, ...] by the
    cross-correlation of their frame-to-frame velocities."""
    a = np.diff(reference, axis=0).reshape(len(reference) - 1, -1)
    b = np.diff(signal, axis=0).reshape(len(signal) - 1, -1)
    a, b = a - a.mean(0), b - b.mean(0)
    corr = np.array([np.sum(a[: len(a) - k] * b[k:]) / (len(a) - k) for k in range(max_lag + 1)])
    k = int(np.argmax(corr))
    if 0 < k < max_lag:
        c0, c1, c2 = corr[k - 1], corr[k], corr[k + 1]
        return k + 0.5 * (c0 - c2) / (c0 - 2 * c1 + c2)
    return float(k)


def test_causal_filter_lag_at_most_one_frame():
    """The lag the live filter adds, measured on noise-free motion (output vs its own input), every person."""
    clean = make_scene(seed=5, n_frames=300, noisy=False)
    out = split(list(refine_stream(clean.messages, {"smooth": 1.0, "ground": "off"})))[1]
    raw = split(clean.messages)[1]
    for p in clean.people:
        _, filtered = forward(p.shape, *person_series(out, p.pid, clean.body))
        _, given = forward(p.shape, *person_series(raw, p.pid, clean.body))
        lag = velocity_lag(filtered, given)
        assert lag <= 1.0, (p.kind, lag)


def test_causal_filter_reduces_jitter(scene, live_msgs):
    raw_frames, live_frames = split(scene.messages)[1], split(live_msgs)[1]
    for p in scene.people:
        _, live = forward(p.shape, *person_series(live_frames, p.pid, scene.body))
        _, raw = forward(p.shape, *person_series(raw_frames, p.pid, scene.body))
        assert M.jitter(live, 30) < 0.65 * M.jitter(raw, 30), p.kind


def test_floor_found_once_and_held(scene, live_msgs):
    grounds = [m["ground"] for m in live_msgs if m["type"] == "frame" and "ground" in m]
    assert len(grounds) == 1
    g = grounds[0]
    assert g["frame"] >= 2 * 30 - 1  # not before two seconds of evidence
    ta = np.asarray(g["from_raw"]) @ scene.raw_from_truth
    n = ta[:3, :3] @ np.array([0.0, -1.0, 0.0])
    assert np.degrees(np.arccos(-n[1])) <= 1.0
    floor = scene.floor_points_T[np.abs(scene.floor_points_T[:, 1]) < 0.05][:500]
    assert abs(np.mean((floor @ ta[:3, :3].T + ta[:3, 3])[:, 1])) <= 0.01
    # the data themselves stay in the raw world
    raw_frames, live_frames = split(scene.messages)[1], split(live_msgs)[1]
    assert np.array_equal(raw_frames[100]["camera"]["cam_to_world"], live_frames[100]["camera"]["cam_to_world"])


def test_bad_frames_pass_through():
    sc = make_scene(seed=6, n_frames=30, kinds=("walk",))
    header, frames, _, _ = split(sc.messages)
    frames[3]["people"]["transl"][0] = np.nan
    frames[7]["people"] = {}
    live = LiveRefiner({"smooth": 1.0})
    live.header(header)
    out = [live.frame(f) for f in frames]
    assert np.isnan(out[3]["people"]["transl"][0]).any()
    assert out[7]["people"] == {}
    assert np.isfinite(out[10]["people"]["transl"]).all()
