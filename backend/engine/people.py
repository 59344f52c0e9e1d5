"""From the model's per-person predictions to standard SMPL-X parameters.

The model predicts, per person, 53 local rotations (0 global orient, 1-21 body, 22-36 left hand,
37-51 right hand, 52 jaw), betas, expression and `t_head`: the **head joint** position in the camera
frame. The reference poses the body with zero global orient, rotates it about the pelvis, then
moves it so its head joint lands on `t_head`. A plain SMPL-X layer (which rotates about the shaped
pelvis rest joint j0 and then adds `transl`) reproduces that with

    R_w = R_c2w · R_g,    T_w = (R_c2w · t_head + t_c2w) − R_w · (h0 − j0) − j0

where h0 is the head joint of the posed body with zero global orient. All tensors float32 on the
model's device; rotations out are axis-angle (`geometry.rotmat_to_rotvec`).
"""
from __future__ import annotations

import functools

import torch

from backend.engine.geometry import rotmat_to_rotvec
from backend.smplx_model import BodyModel

# model (53) index for each standard SMPL-X (55) joint; -1 = not predicted (eyes, identity)
MODEL_TO_SMPLX: tuple[int, ...] = (
    (0,) + tuple(range(1, 22)) + (52, -1, -1) + tuple(range(22, 37)) + tuple(range(37, 52))
)


def to_smplx_order(rot53: torch.Tensor) -> torch.Tensor:
    """[n, 53, 3, 3] model-order local rotations -> [n, 55, 3, 3] SMPL-X order (eyes = identity)."""
    n = rot53.shape[0]
    eye = torch.eye(3, dtype=rot53.dtype, device=rot53.device).expand(n, 1, 3, 3)
    padded = torch.cat([rot53, eye], dim=1)  # index 53 = identity
    return padded[:, _smplx_index(rot53.device)]


@functools.lru_cache(maxsize=4)
def _smplx_index(device: torch.device) -> torch.Tensor:
    with torch.inference_mode(False):  # a normal tensor: usable in and out of inference mode
        return torch.tensor([i if i >= 0 else 53 for i in MODEL_TO_SMPLX], device=device)


def smplx_parameters(body: BodyModel, rot53: torch.Tensor, betas: torch.Tensor, expression: torch.Tensor,
                     t_head: torch.Tensor, c2w: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Standard SMPL-X parameters of n people, in the world frame (axis-angle, the layout of `BodyModel.forward`).

    Args:
        body: the loaded SMPL-X model (for the shaped pelvis and posed head joints).
        rot53: [n, 53, 3, 3] `smpl_rotmat` (local rotations, model order).
        betas, expression: [n, 10] `smpl_shape`, `smpl_expression`.
        t_head: [n, 3] `smpl_transl`, head joint in the camera frame.
        c2w: [4, 4] aligned camera-to-world; None gives camera-frame parameters.
    Returns:
        dict of float32 tensors: global_orient [n, 3], body_pose [n, 21, 3], left_hand_pose [n, 15, 3],
        right_hand_pose [n, 15, 3], jaw_pose [n, 3], leye_pose [n, 3], reye_pose [n, 3] (zeros),
        betas [n, 10], expression [n, 10], transl [n, 3] — SMPL-X rotating about the shaped pelvis.
    """
    rot55 = to_smplx_order(rot53)
    j0, h0 = body.pelvis_and_head(rot55, betas, expression)
    r_g = rot53[:, 0]
    if c2w is None:
        r_w, head = r_g, t_head
    else:
        r_c2w, t_c2w = c2w[:3, :3], c2w[:3, 3]
        r_w = r_c2w @ r_g
        head = t_head @ r_c2w.T + t_c2w
    transl = head - (r_w @ (h0 - j0)[..., None])[..., 0] - j0
    # one conversion for all: [n, 55, 3] = world global orient, then local joints 1..54
    rotvecs = rotmat_to_rotvec(torch.cat([r_w[:, None], rot55[:, 1:]], dim=1))
    local = rotvecs[:, 1:]
    return {
        "global_orient": rotvecs[:, 0],
        "body_pose": local[:, 0:21],
        "jaw_pose": local[:, 21],
        "leye_pose": local[:, 22],
        "reye_pose": local[:, 23],
        "left_hand_pose": local[:, 24:39],
        "right_hand_pose": local[:, 39:54],
        "betas": betas,
        "expression": expression,
        "transl": transl,
    }
