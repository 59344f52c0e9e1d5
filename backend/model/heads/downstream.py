"""`downstream_head`: every per-frame head of Human3R in one module (reference key layout).

Submodules (state-dict prefix `downstream_head.`): `dpt_self` (points + confidence, camera frame),
`final_transform` (2 pose-conditioned blocks) + `dpt_cross` (points + confidence, chunk world
frame), `dpt_rgb`, `pose_head`, Multi-HMR's `mlp_classif` / `mlp_offset` (detection, head offset),
`mlp_msk` (human mask), `mlp_fuse` (human prompt), the SMPL-X decoders `deccam`, `decpose`,
`decshape`, `decexpression`, and the persistent init buffers `init_body_pose`, `init_betas`,
`init_betas_kid`, `init_cam`, `init_expression` (the last three partly unused, kept for loading).
"""
from __future__ import annotations

import torch
from torch import nn

from backend.model.heads.activations import exp_confidence, exp_points, rgb_from_logits, score_sigmoid
from backend.model.heads.camera import PoseHead, decode_pose
from backend.model.heads.dpt import DPTHead
from backend.model.heads.human import decode_smpl, mask_from_logits
from backend.model.layers.blocks import ConditionModulationBlock
from backend.model.layers.mlp import RegressionMLP, SMPLDecoder
from backend.model.layers.rope import RopeTable


def full_precision(like: torch.Tensor) -> torch.autocast:
    """Context that disables autocast on `like`'s device: the reference runs every head (detection,
    mask, pose, SMPL-X, DPT) in float32 even inside a mixed-precision region."""
    return torch.autocast(device_type=like.device.type, enabled=False)


def lower_precision_of(module: nn.Module, like: torch.Tensor) -> torch.autocast:
    """Context that runs `module` in its weights' dtype: bf16 autocast where `to_fast` cast them to
    bfloat16, else nothing (float32 weights: parity mode, exact)."""
    low = next(module.parameters()).dtype == torch.bfloat16
    return torch.autocast(device_type=like.device.type, dtype=torch.bfloat16, enabled=low)


def _identity_6d(num_rot: int) -> torch.Tensor:
    """[1, num_rot*6] identity rotations in the row-major 3x2 layout (1, 0, 0, 1, 0, 0)."""
    return torch.eye(3)[:, :2].reshape(1, 6).repeat(1, num_rot)


class DownstreamHead(nn.Module):
    def __init__(self, cfg) -> None:
        super().__init__()
        ed, dd, bd = cfg.enc_embed_dim, cfg.dec_embed_dim, cfg.backbone.embed_dim
        self.num_rot = cfg.num_smpl_rotations
        # buffers first: they are loaded from the checkpoint (defaults: identity pose, mean 0)
        self.register_buffer("init_body_pose", _identity_6d(cfg.num_smpl_rotations))
        self.register_buffer("init_betas", torch.zeros(1, cfg.num_betas))
        self.register_buffer("init_betas_kid", torch.zeros(1, cfg.num_betas + 1))
        self.register_buffer("init_cam", torch.zeros(1, 3))
        self.register_buffer("init_expression", torch.zeros(1, cfg.num_expression))

        dpt = cfg.dpt
        token_dims = (ed, dd, dd, dd)
        dpt_args = dict(layer_dims=dpt.layer_dims, feature_dim=dpt.feature_dim, last_dim=dpt.last_dim,
                        patch_size=cfg.patch_size)
        self.dpt_self = DPTHead(token_dims, num_channels=4, **dpt_args)
        self.final_transform = nn.ModuleList(
            ConditionModulationBlock(dd, cfg.dec_num_heads, cfg.mlp_ratio) for _ in range(2)
        )
        self.dpt_cross = DPTHead(token_dims, num_channels=4, **dpt_args)
        if cfg.rgb_head:
            self.dpt_rgb = DPTHead(token_dims, num_channels=3, **dpt_args)
        self.pose_head = PoseHead(dd)
        self.mlp_classif = RegressionMLP(bd, bd, 1)
        self.mlp_offset = RegressionMLP(bd, bd, 2)
        if cfg.msk_head:
            self.mlp_msk = SMPLDecoder(bd, cfg.mask_patch_outputs, mlp_ratio=1)
        self.mlp_fuse = SMPLDecoder(ed + bd, dd, mlp_ratio=4)
        self.deccam = SMPLDecoder(dd, 3, mlp_ratio=4)
        self.decpose = SMPLDecoder(dd + bd, cfg.num_smpl_rotations * 6, mlp_ratio=4)
        self.decshape = SMPLDecoder(dd + bd, cfg.num_betas, mlp_ratio=4)
        self.decexpression = SMPLDecoder(dd + bd, cfg.num_expression, mlp_ratio=4)
        self.dec_dim = dd

    # --- human branch -------------------------------------------------------------------------
    def detection_scores(self, mhmr_tokens: torch.Tensor, grid: int) -> torch.Tensor:
        """mhmr_tokens [1, g*g, bd] -> detection probability map [1, 1, g, g] (before NMS)."""
        with full_precision(mhmr_tokens):
            s = score_sigmoid(self.mlp_classif(mhmr_tokens.float()))  # [1, g*g, 1]
        return s.transpose(1, 2).reshape(s.shape[0], 1, grid, grid)

    def human_mask(self, mhmr_tokens: torch.Tensor, grid: int, patch: int) -> torch.Tensor:
        """mhmr_tokens [1, g*g, bd] -> mask probability [1, g*patch, g*patch, 1] in the padded square."""
        with full_precision(mhmr_tokens):
            return mask_from_logits(score_sigmoid(self.mlp_msk(mhmr_tokens.float())), grid, patch)

    def smpl(self, smpl_input: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """smpl_input [1, n, dd + bd] = [decoded human token || DINOv2 head token].

        Returns (SMPL-X outputs, see `decode_smpl`; raw cam [1, n, 3]).
        """
        with full_precision(smpl_input):
            z = smpl_input.float()
            pose6d = self.decpose(z) + self.init_body_pose
            betas = self.decshape(z) + self.init_betas
            cam = self.deccam(z[..., : self.dec_dim])
            expression = self.decexpression(z) + self.init_expression
            return decode_smpl(pose6d, betas, cam, expression, self.num_rot), cam

    # --- scene branch -------------------------------------------------------------------------
    def scene(self, hooks: list[torch.Tensor], image_size: tuple[int, int], image_rope: RopeTable,
              want_rgb: bool, want_cross: bool = True) -> dict[str, torch.Tensor]:
        """Dense maps and camera pose from the decoder.

        hooks: [enc tokens [1, N, ed], layer d/2 [1, N, dd], layer 3d/4 [1, N, dd],
            final normed [1, 1 + N, dd] (pose token first)]; image_rope: RoPE table of the image
            grid for the final_transform heads.
        Returns pts3d_in_self_view / pts3d_in_other_view [1, H, W, 3], conf_self / conf [1, H, W],
        camera_pose [1, 7], pose_raw [1, 7], rgb [1, H, W, 3] (only if want_rgb and the head exists).
        Without `want_cross` the world-frame maps (`final_transform` + `dpt_cross`) are not computed
        and pts3d_in_other_view / conf are absent.
        """
        pose_token = hooks[3][:, 0]
        tokens = hooks[3][:, 1:]
        with full_precision(tokens):
            pose_raw = self.pose_head(pose_token.float())
        out: dict[str, torch.Tensor] = {}
        with full_precision(tokens):
            low = [h.float() for h in hooks[:3]]
            self_hooks = low + [tokens.float()]
            with lower_precision_of(self.dpt_self, tokens):  # bf16 in fast mode; the activations below in fp32
                fmap = self.dpt_self(self_hooks, image_size).float().permute(0, 2, 3, 1)
            out["pts3d_in_self_view"] = exp_points(fmap[..., 0:3])
            out["conf_self"] = exp_confidence(fmap[..., 3])
            if want_rgb and hasattr(self, "dpt_rgb"):
                out["rgb"] = rgb_from_logits(self.dpt_rgb(self_hooks, image_size).permute(0, 2, 3, 1))
            out["camera_pose"] = decode_pose(pose_raw)
            out["pose_raw"] = pose_raw
        if want_cross:
            cross = tokens
            for blk in self.final_transform:
                cross = blk(cross, pose_token, image_rope)
            with full_precision(tokens):
                fmap = self.dpt_cross(low + [cross.float()], image_size).permute(0, 2, 3, 1)
                out["pts3d_in_other_view"] = exp_points(fmap[..., 0:3])
                out["conf"] = exp_confidence(fmap[..., 3])
        return out
