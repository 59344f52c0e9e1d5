"""Typed per-stream state and per-view outputs of `Human3R.step`.

`StreamState` is everything the online loop carries from one view to the next; it is immutable
(`step` returns a new one), lives on the model's device, and holds only float32/int64 tensors.
`FrameOutputs` holds one view's predictions (batch 1, tensors on the model's device).
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields

import torch

from backend.model.tracker import TrackState


@dataclass(frozen=True)
class StreamState:
    """Recurrent state of one video stream.

    state: [1, S, C] current recurrent state (CUT3R "state tokens"), after gating and reset.
    mem: [1, slots, 2C] pose-retriever memory.
    init_state / init_mem: the values a reset restores (image independent).
    prev_reset: whether the previous view had reset=True (then this view uses the learned pose
        token and skips the TTT3R gate, like the first view).
    views_done: number of views processed so far (0 = next view is the first).
    track: person-tracker memory (never reset).
    """

    state: torch.Tensor
    mem: torch.Tensor
    init_state: torch.Tensor
    init_mem: torch.Tensor
    prev_reset: bool = False
    views_done: int = 0
    track: TrackState = field(default_factory=TrackState)

    @property
    def first_of_chunk(self) -> bool:
        """True if the next view starts a chunk (first view or right after a reset view)."""
        return self.views_done == 0 or self.prev_reset

    def to(self, device: torch.device | str) -> "StreamState":
        tr = self.track
        track = TrackState(
            None if tr.last_tokens is None else tr.last_tokens.to(device),
            None if tr.last_ids is None else tr.last_ids.to(device),
            tr.max_id,
        )
        return StreamState(self.state.to(device), self.mem.to(device), self.init_state.to(device),
                           self.init_mem.to(device), self.prev_reset, self.views_done, track)


@dataclass
class FrameOutputs:
    """Predictions for one view (names as in the reference output dict). H x W = model input size,
    R = mhmr_img_res, g = R / 14, n = detected people (0 possible: the per-person tensors are then
    empty with n = 0). Frames: camera (OpenCV axes) for *_self_view and smpl_transl, chunk world
    (first camera of the chunk) for pts3d_in_other_view and camera_pose."""

    pts3d_in_self_view: torch.Tensor  # [1, H, W, 3]
    conf_self: torch.Tensor  # [1, H, W] >= 1
    camera_pose: torch.Tensor  # [1, 7] (t, q_wxyz) camera-to-world
    pts3d_in_other_view: torch.Tensor | None  # [1, H, W, 3]; None when not asked (`want_cross`)
    conf: torch.Tensor | None  # [1, H, W] >= 1; None with pts3d_in_other_view
    msk: torch.Tensor  # [1, R, R, 1] human-mask probability on the padded square
    smpl_scores: torch.Tensor  # [1, g, g, 1] detection scores after NMS
    smpl_loc: torch.Tensor  # [1, n, 2] head (x, y) pixels in the padded square
    smpl_shape: torch.Tensor  # [1, n, 10]
    smpl_transl: torch.Tensor  # [1, n, 3] head joint, camera frame
    smpl_rotmat: torch.Tensor  # [1, n, 53, 3, 3] global orient, 21 body, 15+15 hands, jaw
    smpl_expression: torch.Tensor  # [1, n, 10]
    smpl_id: torch.Tensor | None  # [1, n] int64 track ids; None when the caller tracks (`track=False`)
    rgb: torch.Tensor | None = None  # [1, H, W, 3] in about [-1, 1]; only when asked
    # debug intermediates (names of the parity fixture's `debug/` entries)
    enc_tokens: torch.Tensor | None = None  # [1, N, enc_dim] CroCo encoder output
    mhmr_tokens: torch.Tensor | None = None  # [1, g*g, bb_dim] DINOv2 output
    smpl_query: torch.Tensor | None = None  # [1, n, dec_dim] fused human prompts
    state_in: torch.Tensor | None = None  # [1, S, dec_dim] state entering this view
    state_new: torch.Tensor | None = None  # [1, S, dec_dim] decoder's new state (before gating)
    pose_raw: torch.Tensor | None = None  # [1, 7] pose head output before decoding
    smpl_token: torch.Tensor | None = None  # [1, n, dec_dim] decoded human tokens (tracking)

    @property
    def n_humans(self) -> int:
        return int(self.smpl_loc.shape[1])

    def as_dict(self, debug: bool = False) -> dict[str, torch.Tensor]:
        """Name -> tensor for the non-None outputs (`debug` adds the intermediates)."""
        debug_names = {"enc_tokens", "mhmr_tokens", "smpl_query", "state_in", "state_new", "pose_raw", "smpl_token"}
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None or (f.name in debug_names and not debug):
                continue
            out[f.name] = value
        return out
