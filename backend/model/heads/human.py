"""Human branch helpers: detection on the DINOv2 token grid, head location, mapping to the CUT3R
patch grid, 6D rotations, SMPL-X parameter decoding and the mask head's pixel shuffle.

Coordinate conventions: the DINOv2 grid is g x g tokens of 14 px over the R x R padded square
(R = mhmr_img_res). Head locations `smpl_loc` are (x, y) pixels in that square. The CUT3R image is
H x W; `unpad_uv` maps square pixels back to it (the square is the centre-padded max(H, W) image
scaled by R / max(H, W)).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from backend.model.heads.activations import exp_points


def nms3x3(scores: torch.Tensor) -> torch.Tensor:
    """Keep local maxima of scores [B, 1, g, g] (3x3 window); ties all survive; others set to 0."""
    hmax = F.max_pool2d(scores, (3, 3), stride=1, padding=1)
    return scores * (hmax == scores).float()


def detect_people(scores_nms: torch.Tensor, threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Cells of scores_nms [1, g, g, 1] with score >= threshold, in raster order.

    Returns (row ids [n], column ids [n]) int64 (n may be 0).
    """
    _, h_id, w_id = torch.where(scores_nms[..., 0] >= threshold)
    return h_id, w_id


def head_locations(h_id: torch.Tensor, w_id: torch.Tensor, offset: torch.Tensor, patch: int) -> torch.Tensor:
    """Head (x, y) in square pixels [n, 2] float32 = (cell + 0.5 + offset) * patch; offset [n, 2] is (x, y)."""
    loc = torch.stack([w_id, h_id]).permute(1, 0)
    return (loc + 0.5 + offset) * patch


def unpad_uv(uv: torch.Tensor, square_res: int, height: int, width: int) -> torch.Tensor:
    """Square pixels uv [..., 2] (x, y) -> CUT3R image pixels, clamped to [0, W-1] x [0, H-1]."""
    m = max(height, width)
    # host constants (no host->device copy): the scale is rounded to float32 like the reference's
    # int32 tensor / int, and both products/differences then round exactly as with tensor operands
    scale = float(np.float32(m) / np.float32(square_res))
    scaled = uv * scale
    x = scaled[..., 0] - float((m - width) // 2)
    y = scaled[..., 1] - float((m - height) // 2)
    return torch.stack((x.clamp(0, width - 1), y.clamp(0, height - 1)), dim=-1)


def cut3r_patch_of(uv: torch.Tensor, patch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """CUT3R pixel (x, y) [n, 2] -> (row ids, column ids) [n] int64 of the containing 16-px patch."""
    cell = (uv // patch).int()
    return cell[:, 1].long(), cell[:, 0].long()


@dataclass
class HumanPrompts:
    """The detected people of one view and their decoder prompts (n people, raster order).

    rows, cols: [n] int64 DINOv2 cells of the heads; mhmr_tokens: [n, bd] DINOv2 tokens there;
    loc: [n, 2] head (x, y) in square pixels; positions: [1, n, 2] int64 CUT3R grid (y, x) of each
    head (its RoPE position in the decoder); prompts: [1, n, dd] fused prompts (`mlp_fuse`).
    """

    rows: torch.Tensor
    cols: torch.Tensor
    mhmr_tokens: torch.Tensor
    loc: torch.Tensor
    positions: torch.Tensor
    prompts: torch.Tensor

    @property
    def count(self) -> int:
        return int(self.rows.shape[0])


def human_prompts(
    scores_nms: torch.Tensor,
    mhmr_tokens: torch.Tensor,
    enc_tokens: torch.Tensor,
    enc_pos: torch.Tensor,
    mlp_offset: Callable[[torch.Tensor], torch.Tensor],
    mlp_fuse: Callable[[torch.Tensor], torch.Tensor],
    *,
    threshold: float,
    patch: int,
    bb_patch: int,
    square_res: int,
    image_size: tuple[int, int],
) -> HumanPrompts:
    """Detect people on the NMS'd score map and build one decoder prompt per person.

    scores_nms [1, g, g, 1]; mhmr_tokens [1, g*g, bd] (DINOv2); enc_tokens [1, N, ed] and enc_pos
    [1, N, 2] (CroCo encoder, row-major H/patch x W/patch grid); image_size = (H, W) of the CUT3R
    image. Each head's prompt fuses its DINOv2 token with the CroCo token of the 16-px patch that
    contains the head (mapped from the padded square back to the image). Reading the person count
    (`detect_people`) is the step's one host synchronisation.
    """
    H, W = image_size
    g = scores_nms.shape[1]
    rows, cols = detect_people(scores_nms, threshold)
    tok_mhmr = mhmr_tokens.reshape(1, g, g, -1)[0, rows, cols]  # [n, bd]
    loc = head_locations(rows, cols, mlp_offset(tok_mhmr), bb_patch)  # [n, 2] square px
    prow, pcol = cut3r_patch_of(unpad_uv(loc, square_res, H, W), patch)
    nh, nw = H // patch, W // patch
    tok_cut3r = enc_tokens.reshape(1, nh, nw, -1)[0, prow, pcol]  # [n, ed]
    positions = enc_pos.reshape(1, nh, nw, 2)[:, prow, pcol]  # [1, n, 2]
    prompts = mlp_fuse(torch.cat([tok_mhmr, tok_cut3r], dim=-1)[None])  # [1, n, dd]
    return HumanPrompts(rows, cols, tok_mhmr, loc, positions, prompts)


def rot6d_to_rotmat(x: torch.Tensor) -> torch.Tensor:
    """6D [..., 6] read as a row-major 3x2 matrix -> rotation [..., 3, 3] (Gram-Schmidt on columns, eps 1e-6)."""
    m = x.reshape(*x.shape[:-1], 3, 2)
    a, b = m[..., 0], m[..., 1]
    a = a / torch.clamp_min(torch.norm(a, dim=-1, keepdim=True), 1e-6)
    b = b - torch.sum(a * b, dim=-1, keepdim=True) * a
    b = b / torch.clamp_min(torch.norm(b, dim=-1, keepdim=True), 1e-6)
    c = torch.cross(a, b, dim=-1)
    return torch.stack((a, b, c), dim=-1)


def mask_from_logits(mask_logits: torch.Tensor, grid: int, patch: int) -> torch.Tensor:
    """Mask head output [B, g*g, patch^2] probabilities -> [B, g*patch, g*patch, 1] (pixel shuffle)."""
    B = mask_logits.shape[0]
    m = mask_logits.transpose(1, 2).reshape(B, patch * patch, grid, grid)
    return F.pixel_shuffle(m, patch).permute(0, 2, 3, 1)


def decode_smpl(pose6d: torch.Tensor, betas: torch.Tensor, cam: torch.Tensor, expression: torch.Tensor,
                num_rot: int) -> dict[str, torch.Tensor]:
    """SMPL-X head outputs for n people (all [1, n, .]) -> named parameters.

    Returns smpl_rotmat [1, n, num_rot, 3, 3], smpl_transl [1, n, 3] (head joint, camera frame,
    exp rule), smpl_shape [1, n, 10], smpl_expression [1, n, 10].
    """
    rotmat = rot6d_to_rotmat(pose6d.reshape(*pose6d.shape[:-1], num_rot, 6))
    return {
        "smpl_shape": betas,
        "smpl_transl": exp_points(cam),
        "smpl_rotmat": rotmat,
        "smpl_expression": expression,
    }
