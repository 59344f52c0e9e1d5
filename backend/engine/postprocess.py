"""One kept frame's model outputs -> user-facing results, on the model's device.

Camera: the chunk-aligned c2w; the Weiszfeld focal at model resolution with pp = (w div 2, h div 2),
mapped to the original frame *exactly* through the preprocessing's resize and centre crop (per-axis
scale, crop offset) — the reference's rescale ignores the crop. Pixel convention of K: OpenCV, the
centre of pixel (col, row) is at (col, row).

People: standard SMPL-X parameters in the world frame (`people.smplx_parameters`), track ids,
detection scores, head positions in original pixels.

Points: world xyz from `pts3d_in_self_view` through the aligned c2w, confidence `conf_self`, colours of
the model input image; kept where conf > threshold (strict), optionally outside the dilated human
mask, on a `point_stride` pixel grid, evenly thinned to at most `max_points_per_frame`.

Two halves: `frame_tensors` computes, on the model's device and without waiting for it, every array
the host needs; `host_copy.copy_to_host` brings them over in one copy; `frame_results` finishes on
the host (numpy and small CPU tensors), so it can run on another thread while the model goes on.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

from backend.engine.geometry import estimate_focal_weiszfeld, transform_points, unpad_square_map
from backend.engine.host_copy import copy_to_host
from backend.engine.options import JobOptions
from backend.engine.people import smplx_parameters
from backend.smplx_model import BodyModel

HUMAN_MASK_THRESHOLD = 0.1  # the viewer's threshold on the mask probability
HUMAN_MASK_DILATION_AT_512 = 10  # pixels of dilation at a 512-px long side (scaled with the size)
PEOPLE_KEYS = ("global_orient", "body_pose", "left_hand_pose", "right_hand_pose", "jaw_pose", "leye_pose",
               "reye_pose", "betas", "expression", "transl")


@dataclass
class CameraResult:
    """cam_to_world [4, 4] f4 (OpenCV camera -> W), K [3, 3] f4 in original pixels, K_model [3, 3] f4 in
    model pixels, width/height of the original frame."""

    cam_to_world: np.ndarray
    K: np.ndarray
    K_model: np.ndarray
    width: int
    height: int


_PEOPLE_SHAPES = {"global_orient": (3,), "body_pose": (21, 3), "left_hand_pose": (15, 3), "right_hand_pose": (15, 3),
                  "jaw_pose": (3,), "leye_pose": (3,), "reye_pose": (3,), "betas": (10,), "expression": (10,),
                  "transl": (3,)}


def frame_tensors(out, c2w: torch.Tensor, body: BodyModel, options: JobOptions) -> dict[str, torch.Tensor]:
    """Everything the host reads of one kept frame, as device tensors (no host sync).

    Args:
        out: the model's `StepOutput` for the frame; c2w [4, 4] aligned camera-to-world.
    Returns:
        c2w [4, 4]; focal [1] (model pixels); tokens [1, n, D] (the tracker's input); scores [g*g] (the
        NMS'd score map); loc [n, 2] (head, padded-square px); the PEOPLE_KEYS arrays [n, ...]
        (world frame) when n > 0; pts [H, W, 3] camera frame and conf [H, W] when points are kept;
        human [H, W] (1.0 inside the thresholded human mask) when humans are removed from points.
    """
    pts = out.pts3d_in_self_view[0].float()
    c2w = c2w.float()
    tensors = {"c2w": c2w, "focal": estimate_focal_weiszfeld(pts[None])}
    if out.smpl_token is not None:
        tensors["tokens"] = out.smpl_token
    n = int(out.smpl_rotmat.shape[1]) if out.smpl_rotmat is not None else 0
    if n > 0:
        tensors["scores"] = out.smpl_scores.reshape(-1)
        tensors["loc"] = out.smpl_loc[0]
        tensors.update(smplx_parameters(body, out.smpl_rotmat[0].float(), out.smpl_shape[0].float(),
                                        out.smpl_expression[0].float(), out.smpl_transl[0].float(), c2w))
    if options.max_points_per_frame > 0:
        h, w = pts.shape[:2]
        tensors["pts"], tensors["conf"] = pts, out.conf_self[0]
        if options.remove_humans_from_points and out.msk is not None:
            tensors["human"] = human_mask(out.msk, h, w)
    return tensors


def human_mask(msk: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """bool [h, w]: the model image's pixels inside the human mask (msk [1, R, R, 1] probability on
    the padded square, thresholded as the viewer does)."""
    return (unpad_square_map(msk[..., 0].float(), h, w) > HUMAN_MASK_THRESHOLD)[0]


def frame_to_host(out, c2w: torch.Tensor, body: BodyModel, options: JobOptions) -> dict[str, np.ndarray]:
    """`frame_tensors` on the host, through one device -> host copy."""
    return copy_to_host(frame_tensors(out, c2w, body, options))


def frame_results(arrays: dict[str, np.ndarray], ids: np.ndarray, geometry, colors: np.ndarray,
                  options: JobOptions) -> tuple[CameraResult, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Camera, people and points of one frame from `frame_to_host`'s arrays (host only).

    ids: int [n] track ids (the tracker's answer for `arrays["tokens"]`); geometry: `FrameGeometry`;
    colors: uint8 [H, W, 3] RGB of the model input image (`PreparedFrame.colors`).
    """
    return (camera_result(arrays, geometry), people_result(arrays, ids, geometry, options.detection_threshold),
            points_result(arrays, colors, options))


def camera_result(arrays: dict[str, np.ndarray], geometry) -> CameraResult:
    """Camera of one frame from `arrays` c2w [4, 4] and focal [1] (model pixels; the model image is
    `geometry.model_size`, the size of the point map)."""
    w, h = geometry.model_size
    focal = float(arrays["focal"][0])
    ppx, ppy = w // 2, h // 2
    k_model = np.array([[focal, 0, ppx], [0, focal, ppy], [0, 0, 1]], np.float32)
    fx, fy, cx, cy = geometry.intrinsics_to_original(focal, focal, ppx, ppy, pixel_center=0.0)
    k = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], np.float32)
    width, height = geometry.orig_size
    return CameraResult(np.array(arrays["c2w"], np.float32), k, k_model, int(width), int(height))


def person_scores(score_map: np.ndarray, threshold: float, n: int) -> np.ndarray:
    """Detection score of each person [n] f4: the NMS'd score map (flat) at the cells >= threshold,
    in raster order (the model's detection order)."""
    picked = score_map[score_map >= np.float32(threshold)]  # compared in float32, as the model does
    if picked.size != n:  # should not happen; never crash on it
        picked = np.full((n,), np.nan, np.float32)
    return picked


def people_result(arrays: dict[str, np.ndarray], ids: np.ndarray, geometry,
                  detection_threshold: float) -> dict[str, np.ndarray]:
    """People of one frame as protocol arrays (see protocol.py `frame.people`), world frame."""
    n = len(ids)
    if n == 0:
        empty = {"id": np.zeros(0, "<i4"), "score": np.zeros(0, "<f4"), "head_xy": np.zeros((0, 2), "<f4")}
        return {**empty, **{k: np.zeros((0, *s), "<f4") for k, s in _PEOPLE_SHAPES.items()}}
    result = {k: np.ascontiguousarray(arrays[k], "<f4") for k in PEOPLE_KEYS}
    result["id"] = np.asarray(ids, "<i4")
    result["score"] = np.ascontiguousarray(person_scores(arrays["scores"], detection_threshold, n), "<f4")
    loc = arrays["loc"].astype(np.float64)  # square px, corner convention
    model_xy = geometry.mhmr_to_model_xy(loc, pixel_center=0.5)
    result["head_xy"] = (geometry.model_to_original_xy(model_xy, pixel_center=0.5) - 0.5).astype("<f4")
    return result


def point_selection(conf: np.ndarray, human: np.ndarray | None, options: JobOptions) -> torch.Tensor:
    """Flat pixel indices (long, row-major over [H, W]) of the points to keep for one frame.

    conf [H, W] f4; human [H, W] (non-zero inside the thresholded human mask) or None. The masks are
    small boolean images, built with numpy.
    """
    h, w = conf.shape
    if options.max_points_per_frame == 0:
        return torch.zeros(0, dtype=torch.long)
    keep = conf > options.conf_threshold
    if options.point_stride > 1:
        keep &= _stride_grid(h, w, options.point_stride)
    if human is not None:
        radius = max(1, round(HUMAN_MASK_DILATION_AT_512 * max(h, w) / 512))
        # square dilation: a slightly larger margin than the viewer's disk
        keep &= ~_dilate_square(human > 0, radius)
    index = torch.from_numpy(np.flatnonzero(keep))
    if index.numel() > options.max_points_per_frame:
        pick = torch.linspace(0, index.numel() - 1, options.max_points_per_frame)
        index = index[pick.round().long()]
    return index


@functools.lru_cache(maxsize=8)
def _stride_grid(h: int, w: int, stride: int) -> np.ndarray:
    """bool [h, w], True on every `stride`-th row and column from (0, 0) (read-only, cached)."""
    grid = np.zeros((h, w), bool)
    grid[::stride, ::stride] = True
    grid.flags.writeable = False
    return grid


def _dilate_square(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary dilation of bool [h, w] by a (2 radius + 1)^2 square (separable: rows, then columns)."""
    h, w = mask.shape
    padded = np.zeros((h + 2 * radius, w + 2 * radius), bool)
    padded[radius:radius + h, radius:radius + w] = mask
    rows = padded[:, 0:w].copy()
    for k in range(1, 2 * radius + 1):
        rows |= padded[:, k:k + w]
    out = rows[0:h].copy()
    for k in range(1, 2 * radius + 1):
        out |= rows[k:k + h]
    return out


def points_result(arrays: dict[str, np.ndarray], colors: np.ndarray, options: JobOptions) -> dict[str, np.ndarray]:
    """Subsampled world points of one frame: xyz [m, 3] f4, rgb [m, 3] u1, conf [m] f4.

    arrays: `frame_to_host`'s (pts, conf, human, c2w); colors: uint8 [H, W, 3] RGB of the model input image.
    """
    if "pts" not in arrays:
        return {"xyz": np.zeros((0, 3), "<f4"), "rgb": np.zeros((0, 3), np.uint8), "conf": np.zeros(0, "<f4")}
    conf = arrays["conf"]
    index_np = point_selection(conf, arrays.get("human"), options).numpy()
    pts = torch.from_numpy(np.ascontiguousarray(arrays["pts"].reshape(-1, 3)[index_np]))
    xyz = transform_points(torch.from_numpy(np.array(arrays["c2w"])), pts)
    return {
        "xyz": np.asarray(xyz.numpy(), "<f4"),
        "rgb": np.ascontiguousarray(colors.reshape(-1, 3)[index_np]),
        "conf": np.asarray(conf.reshape(-1)[index_np], "<f4"),
    }
