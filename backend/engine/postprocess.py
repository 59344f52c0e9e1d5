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
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch

from backend.engine.geometry import estimate_focal_weiszfeld, transform_points, unpad_square_map
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


def camera_result(c2w: torch.Tensor, pts_self: torch.Tensor, geometry) -> CameraResult:
    """Camera of one frame. c2w [4, 4] aligned; pts_self [H, W, 3]; geometry: `FrameGeometry`."""
    h, w = pts_self.shape[:2]
    focal = float(estimate_focal_weiszfeld(pts_self[None].float())[0])
    ppx, ppy = w // 2, h // 2
    k_model = np.array([[focal, 0, ppx], [0, focal, ppy], [0, 0, 1]], np.float32)
    fx, fy, cx, cy = geometry.intrinsics_to_original(focal, focal, ppx, ppy, pixel_center=0.0)
    k = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], np.float32)
    width, height = geometry.orig_size
    return CameraResult(c2w.float().cpu().numpy().astype(np.float32), k, k_model, int(width), int(height))


def person_scores(smpl_scores: torch.Tensor, threshold: float, n: int) -> torch.Tensor:
    """Detection score of each person [n]: the NMS'd score map [1, g, g, 1] at the cells >= threshold,
    in raster order (the model's detection order)."""
    flat = smpl_scores.reshape(-1)
    picked = flat[flat >= threshold]
    if picked.numel() != n:  # should not happen; never crash on it
        picked = torch.full((n,), float("nan"), device=flat.device)
    return picked


def people_result(out, c2w: torch.Tensor, body: BodyModel, geometry, detection_threshold: float) -> dict[str, np.ndarray]:
    """People of one frame as protocol arrays (see protocol.py `frame.people`), world frame."""
    n = int(out.smpl_rotmat.shape[1]) if out.smpl_rotmat is not None else 0
    if n == 0:
        empty = {"id": np.zeros(0, "<i4"), "score": np.zeros(0, "<f4"), "head_xy": np.zeros((0, 2), "<f4")}
        shapes = {"global_orient": (3,), "body_pose": (21, 3), "left_hand_pose": (15, 3), "right_hand_pose": (15, 3),
                  "jaw_pose": (3,), "leye_pose": (3,), "reye_pose": (3,), "betas": (10,), "expression": (10,),
                  "transl": (3,)}
        return {**empty, **{k: np.zeros((0, *s), "<f4") for k, s in shapes.items()}}
    params = smplx_parameters(body, out.smpl_rotmat[0].float(), out.smpl_shape[0].float(),
                              out.smpl_expression[0].float(), out.smpl_transl[0].float(), c2w.float())
    params["score"] = person_scores(out.smpl_scores, detection_threshold, n).float()
    params["loc"] = out.smpl_loc[0].float()
    arrays = _to_host(params, n)  # one device -> host copy for all of them
    result = {k: np.ascontiguousarray(arrays[k], "<f4") for k in PEOPLE_KEYS}
    result["id"] = np.asarray(out.smpl_id[0].cpu().numpy(), "<i4")
    result["score"] = np.ascontiguousarray(arrays["score"], "<f4")
    loc = arrays["loc"].astype(np.float64)  # square px, corner convention
    model_xy = geometry.mhmr_to_model_xy(loc, pixel_center=0.5)
    result["head_xy"] = (geometry.model_to_original_xy(model_xy, pixel_center=0.5) - 0.5).astype("<f4")
    return result


def _to_host(tensors: dict[str, torch.Tensor], n: int) -> dict[str, np.ndarray]:
    """float32 tensors [n, ...] -> numpy arrays of the same shapes, through a single host copy (each
    separate `.cpu().numpy()` costs several dispatched ops; a frame has a dozen of them)."""
    flat = torch.cat([t.reshape(n, -1) for t in tensors.values()], dim=1).cpu().numpy()
    arrays, start = {}, 0
    for key, t in tensors.items():
        width = math.prod(t.shape[1:])
        arrays[key] = flat[:, start:start + width].reshape(t.shape)
        start += width
    return arrays


def point_selection(conf: torch.Tensor, msk: torch.Tensor | None, options: JobOptions) -> torch.Tensor:
    """Flat pixel indices (long, row-major over [H, W]) of the points to keep for one frame.

    conf [H, W]; msk [1, R, R, 1] human mask probability (or None). The masks are small boolean
    images, built with numpy (comparisons and ORs: the same result as torch, a fraction of the cost).
    """
    h, w = conf.shape
    if options.max_points_per_frame == 0:
        return torch.zeros(0, dtype=torch.long, device=conf.device)
    keep = conf.cpu().numpy() > options.conf_threshold
    if options.point_stride > 1:
        keep &= _stride_grid(h, w, options.point_stride)
    if options.remove_humans_from_points and msk is not None:
        human = (unpad_square_map(msk[..., 0].float(), h, w) > HUMAN_MASK_THRESHOLD)[0].cpu().numpy()  # [h, w]
        radius = max(1, round(HUMAN_MASK_DILATION_AT_512 * max(h, w) / 512))
        # square dilation: a slightly larger margin than the viewer's disk
        keep &= ~_dilate_square(human, radius)
    index = torch.from_numpy(np.flatnonzero(keep)).to(conf.device)
    if index.numel() > options.max_points_per_frame:
        pick = torch.linspace(0, index.numel() - 1, options.max_points_per_frame, device=index.device)
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


def points_result(out, c2w: torch.Tensor, colors: np.ndarray, options: JobOptions) -> dict[str, np.ndarray]:
    """Subsampled world points of one frame: xyz [m, 3] f4, rgb [m, 3] u1, conf [m] f4.

    colors: uint8 [H, W, 3] RGB of the model input image (`PreparedFrame.colors`).
    """
    pts = out.pts3d_in_self_view[0].float()
    conf = out.conf_self[0].float()
    index = point_selection(conf, out.msk, options)
    xyz = transform_points(c2w.float(), pts.reshape(-1, 3)[index])
    index_np = index.cpu().numpy()
    return {
        "xyz": np.asarray(xyz.cpu().numpy(), "<f4"),
        "rgb": np.ascontiguousarray(colors.reshape(-1, 3)[index_np]),
        "conf": np.asarray(conf.reshape(-1)[index].cpu().numpy(), "<f4"),
    }
