"""Pinhole intrinsics -> Blender camera settings, and video frame rates -> Blender fps.

Blender's camera is defined by a view plane at unit distance: the *sensor-fit* dimension spans
sensor_size/lens plane units, the other one follows the render aspect (resolution x pixel aspect),
and shift_x/shift_y move the plane in units of the sensor-fit dimension. For a pinhole camera
u = fx·X/Z + cx, v = fy·Y/Z + cy (pixels of the original W x H frame) the plane spans W/fx by H/fy,
so with S the fit dimension's span (W/fx for HORIZONTAL, H/fy for VERTICAL):

    lens    = sensor_size / S                       (mm; sensor_size = 36 mm on the fit axis)
    shift_x = (W/2 - cx') / fx / S                 shift_y = (cy' - H/2) / fy / S
    (cx', cy' = the principal point measured from the frame's top-left edge, see below)
    pixel aspect x : y = fy : fx                   (non-square pixels when fx != fy)

Landscape and square frames use HORIZONTAL fit, portrait frames VERTICAL, so the fit axis is the long
side (what AUTO would pick) but stays explicit and fixed for the whole clip.

Pixel convention: K follows OpenCV's (the engine's header says so): the centre of pixel (col, row) is
at (col, row), so the image spans [-0.5, W - 0.5]. Blender's frame spans [0, W] with pixel centres at
col + 0.5, hence the principal point in Blender's terms is (cx + 0.5, cy + 0.5) (`PIXEL_CENTRE`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

SENSOR_SIZE_MM = 36.0
PIXEL_CENTRE = 0.5  # OpenCV pixel (col, row) has its centre at Blender frame coordinate (col + 0.5, row + 0.5)


@dataclass(frozen=True)
class CameraFit:
    """Static camera/render settings for a W x H video (sensor fit is fixed per clip)."""

    width: int
    height: int
    sensor_fit: str  # 'HORIZONTAL' | 'VERTICAL'
    sensor_width: float  # mm (the sensor size on the fit axis; Blender reads the matching property)
    sensor_height: float  # mm
    pixel_aspect_x: float  # render.pixel_aspect_x (>= 1)
    pixel_aspect_y: float  # render.pixel_aspect_y (>= 1)


def camera_fit(width: int, height: int, fx: float = 1.0, fy: float = 1.0) -> CameraFit:
    """Sensor fit and pixel aspect for a frame of `width` x `height` pixels and focal lengths fx, fy (pixels).

    Pixel aspect (x : y) = fy : fx, normalised so the smaller of the two is 1 (Blender's minimum).
    """
    fit = "HORIZONTAL" if width >= height else "VERTICAL"
    ratio = float(fy) / float(fx)
    ax, ay = (ratio, 1.0) if ratio >= 1.0 else (1.0, 1.0 / ratio)
    return CameraFit(int(width), int(height), fit, SENSOR_SIZE_MM, SENSOR_SIZE_MM, ax, ay)


def lens_and_shift(K: np.ndarray, fit: CameraFit, pixel_centre: float = PIXEL_CENTRE) -> np.ndarray:
    """Per-frame intrinsics -> Blender lens and shifts.

    Args:
        K: [..., 3, 3] pinhole matrices in pixels of the original frame (fx=K[0,0], fy=K[1,1],
           cx=K[0,2], cy=K[1,2]; skew ignored), OpenCV pixel convention.
        fit: the clip's `CameraFit` (frame size and sensor fit).
        pixel_centre: where pixel (0, 0)'s centre lies in a frame spanning [0, W] (0.5 for OpenCV's
            convention, 0 for K that already measures from the frame's edge).
    Returns:
        [..., 3] float64: (lens in mm, shift_x, shift_y) in Blender's units.
    """
    K = np.asarray(K, dtype=np.float64)
    fx, fy = K[..., 0, 0], K[..., 1, 1]
    cx, cy = K[..., 0, 2] + pixel_centre, K[..., 1, 2] + pixel_centre
    w, h = float(fit.width), float(fit.height)
    if fit.sensor_fit == "HORIZONTAL":
        span, sensor = w / fx, fit.sensor_width
    else:
        span, sensor = h / fy, fit.sensor_height
    lens = sensor / span
    shift_x = (w / 2.0 - cx) / fx / span
    shift_y = (cy - h / 2.0) / fy / span
    return np.stack([lens, shift_x, shift_y], axis=-1)


def project_points(K: np.ndarray, cam_to_world: np.ndarray, xyz_world: np.ndarray) -> np.ndarray:
    """Reference projection of W points [N, 3] with OpenCV K [3, 3] and cam_to_world [4, 4] -> pixels [N, 2]
    (OpenCV convention: pixel (col, row) centred at (col, row))."""
    c2w = np.asarray(cam_to_world, dtype=np.float64)
    w2c = np.linalg.inv(c2w)
    pc = np.asarray(xyz_world, dtype=np.float64) @ w2c[:3, :3].T + w2c[:3, 3]
    uvw = pc @ np.asarray(K, dtype=np.float64).T
    return uvw[:, :2] / uvw[:, 2:3]


def scene_fps(fps: float | None, fraction: tuple[int, int] | list[int] | None = None) -> tuple[int, float]:
    """Video frame rate -> Blender (render.fps, render.fps_base) with fps / fps_base == the video rate.

    `fraction` (numerator, denominator), when given, is exact (e.g. 30000/1001). Otherwise NTSC rates
    (k·1000/1001 within 0.005) snap to (k, 1.001), near-integers to (k, 1.0), and anything else goes
    through a rational approximation (denominator <= 1001) with fps = ceil(rate) so fps_base >= 1.
    Examples: 29.97 -> (30, 1.001), 23.976 -> (24, 1.001), 25 -> (25, 1.0), 12.5 -> (13, 1.04).
    Missing or non-positive rates give (24, 1.0), Blender's default.
    """
    rate: Fraction | None = None
    if fraction is not None and len(fraction) == 2 and fraction[0] and fraction[1]:
        num, den = int(fraction[0]), int(fraction[1])
        if num > 0 and den > 0:
            rate = Fraction(num, den)
    if rate is None:
        if fps is None or not math.isfinite(fps) or fps <= 0:
            return 24, 1.0
        k = round(fps * 1.001)
        if k >= 1 and abs(fps - k / 1.001) < 0.005 and abs(fps - round(fps)) > 0.005:
            return int(k), 1.001
        if abs(fps - round(fps)) < 0.005:
            return max(1, int(round(fps))), 1.0
        rate = Fraction(fps).limit_denominator(1001)
    if rate.denominator == 1:
        return int(rate.numerator), 1.0
    base_fps = math.ceil(rate)
    return int(base_fps), float(Fraction(base_fps) / rate)
