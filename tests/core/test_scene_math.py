"""Blender-independent scene math: frames, rotations, camera intrinsics, fps, keyframe layout, clouds."""
from __future__ import annotations

import numpy as np
import pytest

from blender_addon.core import camera, coords, keyframes, pointcloud, rotations


def random_rotations(rng, n):
    return rotations.axis_angle_to_matrix(rng.normal(0, 1.5, (n, 3)))


# ------------------------------------------------------------------------------------------- frames
def test_world_points_map_x_z_minus_y():
    p = np.array([[1.0, 2.0, 3.0]])
    np.testing.assert_array_equal(coords.world_points_to_blender(p), [[1.0, 3.0, -2.0]])
    np.testing.assert_allclose(p @ coords.M.T, [[1.0, 3.0, -2.0]])
    # SMPL canonical up (+y) is Blender up, its front (+z) is Blender -y
    np.testing.assert_allclose(coords.C @ [0, 1, 0], [0, 0, 1])
    np.testing.assert_allclose(coords.C @ [0, 0, 1], [0, -1, 0])


def test_identity_opencv_camera_looks_along_blender_plus_y_with_z_up():
    mw = coords.camera_matrix_world(np.eye(4))
    view = mw[:3, :3] @ [0, 0, -1]  # Blender cameras look down their local -z
    up = mw[:3, :3] @ [0, 1, 0]
    np.testing.assert_allclose(view, [0, 1, 0], atol=1e-12)  # W's +z (forward) is Blender +y
    np.testing.assert_allclose(up, [0, 0, 1], atol=1e-12)  # W's -y (image up) is Blender +z
    assert np.isclose(np.linalg.det(mw[:3, :3]), 1.0)


def test_camera_matrix_keeps_centre_and_direction():
    rng = np.random.default_rng(0)
    c2w = np.eye(4)
    c2w[:3, :3] = random_rotations(rng, 1)[0]
    c2w[:3, 3] = rng.normal(size=3)
    mw = coords.camera_matrix_world(c2w)
    np.testing.assert_allclose(mw[:3, 3], coords.M @ c2w[:3, 3])
    np.testing.assert_allclose(mw[:3, :3] @ [0, 0, -1], coords.M @ c2w[:3, :3] @ [0, 0, 1], atol=1e-12)


# ---------------------------------------------------------------------------------------- rotations
def test_axis_angle_matches_known_rotations_and_tiny_angles():
    r = rotations.axis_angle_to_matrix(np.array([0.0, 0.0, np.pi / 2]))
    np.testing.assert_allclose(r @ [1, 0, 0], [0, 1, 0], atol=1e-12)
    tiny = rotations.axis_angle_to_matrix(np.array([1e-10, 0, 0]))
    np.testing.assert_allclose(tiny, np.eye(3), atol=1e-9)


def test_quaternion_round_trip_including_half_turns():
    rng = np.random.default_rng(1)
    mats = np.concatenate([random_rotations(rng, 500),
                           rotations.axis_angle_to_matrix(np.pi * np.eye(3)),  # 180° about each axis
                           rotations.axis_angle_to_matrix(np.array([[np.pi, 1e-9, 0.0]]))])
    q = rotations.matrix_to_quaternion(mats)
    np.testing.assert_allclose(np.linalg.norm(q, axis=-1), 1.0, atol=1e-12)
    np.testing.assert_allclose(rotations.quaternion_to_matrix(q), mats, atol=1e-9)


def test_quaternion_continuity_across_a_180_degree_flip():
    angles = np.linspace(0, 2.5 * np.pi, 60)  # passes 180° where matrix_to_quaternion flips sign
    q = rotations.matrix_to_quaternion(rotations.axis_angle_to_matrix(angles[:, None] * [0, 0, 1.0]))
    assert np.any(np.sum(q[1:] * q[:-1], -1) < 0)
    c = rotations.quaternion_continuity(q)
    assert np.all(np.sum(c[1:] * c[:-1], -1) > 0)
    np.testing.assert_allclose(rotations.quaternion_to_matrix(c), rotations.quaternion_to_matrix(q), atol=1e-12)
    # continuing a stream: the next batch starts in the hemisphere of the last keyed quaternion
    first, second = rotations.quaternion_continuity(q[:30]), rotations.quaternion_continuity(q[30:], c[29])
    np.testing.assert_allclose(np.concatenate([first, second]), c, atol=1e-12)


# ------------------------------------------------------------------------------------------- camera
@pytest.mark.parametrize("w,h,fx,fy,cx,cy", [(1920, 1080, 1500, 1500, 960, 540), (1080, 1920, 1400, 1400, 500, 1000),
                                             (640, 480, 500, 560, 300, 260), (480, 640, 700, 600, 250, 330)])
def test_lens_and_shift_follow_the_fit_axis(w, h, fx, fy, cx, cy):
    fit = camera.camera_fit(w, h, fx, fy)
    lens, sx, sy = camera.lens_and_shift(np.array([[fx, 0, cx - 0.5], [0, fy, cy - 0.5], [0, 0, 1.0]]), fit)
    if w >= h:
        assert fit.sensor_fit == "HORIZONTAL"
        assert np.isclose(lens, fx * 36.0 / w)
        assert np.isclose(sx, (w / 2 - cx) / w)
    else:
        assert fit.sensor_fit == "VERTICAL"
        assert np.isclose(lens, fy * 36.0 / h)
        assert np.isclose(sy, (cy - h / 2) / h)
    assert np.isclose(fit.pixel_aspect_x / fit.pixel_aspect_y, fy / fx)
    assert min(fit.pixel_aspect_x, fit.pixel_aspect_y) == 1.0


@pytest.mark.parametrize("fps,fraction,expected", [
    (29.97002997, None, (30, 1.001)), (29.97, None, (30, 1.001)), (23.976, None, (24, 1.001)),
    (59.94, None, (60, 1.001)), (25.0, None, (25, 1.0)), (30.0, [30, 1], (30, 1.0)),
    (None, [30000, 1001], (30, 1.001)), (12.5, None, (13, 1.04)), (None, None, (24, 1.0)), (0.0, None, (24, 1.0)),
    (29.827092092209053, [14040000, 470713], (30, 1.0057970)),  # a variable-rate phone clip (tennis.mp4)
])
def test_scene_fps(fps, fraction, expected):
    got = camera.scene_fps(fps, fraction)
    assert got[0] == expected[0] and np.isclose(got[1], expected[1], rtol=1e-6)
    if fps:
        assert np.isclose(got[0] / got[1], fps, rtol=2e-4)


# ----------------------------------------------------------------------------------------- keyframes
def test_interleaved_keys_are_float32_frame_value_pairs():
    keys = keyframes.channel_keys("location", np.array([1, 2, 5]), np.array([[0.1, 0.2, 0.3], [1, 2, 3], [4, 5, 6.0]]))
    assert [k.index for k in keys] == [0, 1, 2]
    assert keys[1].co.dtype == np.float32
    np.testing.assert_allclose(keys[1].co, [1, 0.2, 2, 2, 5, 5])
    assert keyframes.bone_path('a"b', "scale") == 'pose.bones["a\\"b"].scale'


def test_changes_only_keeps_transitions():
    f, v = keyframes.changes_only(np.arange(6), np.array([1, 1, 0, 0, 1, 1.0]), previous=1.0)
    np.testing.assert_array_equal(f, [2, 4])
    np.testing.assert_array_equal(v, [0, 1])


# ------------------------------------------------------------------------------------------- clouds
def test_cloud_from_world_converts_and_budgets():
    xyz = np.arange(30, dtype=np.float32).reshape(10, 3)
    rgb = np.full((10, 3), 255, np.uint8)
    c = pointcloud.cloud_from_world(xyz, rgb, max_points=4, frame=np.arange(10))
    assert c.count == 4 and c.frame.tolist() == [0, 3, 6, 9]
    np.testing.assert_allclose(c.co[:3], [0, 2, -1])
    np.testing.assert_allclose(c.color[:4], [1, 1, 1, 1])
    acc = pointcloud.FrameCloudAccumulator()
    acc.add(5, {"xyz": xyz[:2], "rgb": rgb[:2]})
    acc.add(6, {"xyz": np.zeros((0, 3), np.float32)})
    acc.add(7, {"xyz": xyz[2:3], "rgb": rgb[2:3]})
    assert acc.cloud().frame.tolist() == [5, 5, 7]
