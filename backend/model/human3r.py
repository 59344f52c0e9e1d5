"""Human3R online inference (float32 PyTorch reimplementation of `forward_recurrent_lighter`).

Streaming API (what the engine uses)::

    model = Human3R(config).train(False)      # inference mode of the layers; then load weights (backend.model.checkpoint)
    state = model.init_stream()               # StreamState for a new video
    for spec in view_schedule(num_frames, reset_interval):
        img, img_mhmr = frames[spec.frame_index]          # preprocessed tensors, see below
        out, state = model.step(state, img, img_mhmr, reset=spec.reset, use_ttt3r=True)
        if not spec.is_overlap:                # overlap views only re-seed the next chunk
            consume(spec.frame_index, out)     # FrameOutputs (backend.model.state)

Inputs of `step` (one view, batch 1):
- img: [1, 3, H, W] float32 in [-1, 1] (CUT3R resolution, H and W multiples of 16, e.g. 288x512).
- img_mhmr: [1, 3, R, R] float32 in [-1, 1], R = config.mhmr_img_res: `img` resized by
  min(R/H, R/W) (bilinear, size floored) and centre-padded with -1 (the video helper builds it).

Per view: CroCo encoder and DINOv2 -> detection (3x3 NMS, threshold) -> human
prompts (`mlp_fuse`) -> pose token (learned on the first view of a chunk, else read from the pose
memory) -> paired decoder -> pose memory write -> heads -> tracking -> state update (TTT3R gate
unless first of chunk) -> reset to the initial state/memory if `reset`.

Chunks: `reset=True` ends a chunk after the view is processed. The reference then processes the
same frame again as the first view of the next chunk (the "overlap view") and drops its outputs;
`view_schedule` produces that order. Camera poses are relative to the first camera of the chunk;
aligning chunks is post-processing (engine).

Module attribute names reproduce the official checkpoint keys (`enc_blocks.0.attn.qkv.weight`,
`backbone.encoder.blocks.0.ls1.gamma`, `downstream_head.dpt_self.scratch.layer_rn.0.weight`, ...).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from backend.config import ModelConfig
from backend.model.decoder import DecoderOutput, build_decoder_blocks, run_paired_decoder, state_positions, ttt3r_gate
from backend.model.dinov2 import DinoV2Backbone
from backend.model.encoder import ImageEncoderParts, encode_image
from backend.model.heads.downstream import DownstreamHead
from backend.model.heads.human import HumanPrompts, human_prompts, nms3x3
from backend.model.layers.blocks import layer_norm
from backend.model.layers.rope import make_rope_table
from backend.model.pose_retriever import PoseRetriever
from backend.model.precision import PARITY, numerics, recurrent_region
from backend.model.state import FrameOutputs, StreamState
from backend.model.tracker import assign_ids


@dataclass(frozen=True)
class ViewSpec:
    """One entry of the reference's view order: which frame, its reset flag, and whether it is the
    overlap duplicate (processed to re-seed the next chunk; its outputs are discarded)."""

    frame_index: int
    reset: bool
    is_overlap: bool


def view_schedule(num_frames: int, reset_interval: int | None) -> list[ViewSpec]:
    """Frame i gets reset = ((i + 1) % reset_interval == 0) and is followed by an overlap copy with
    reset=False. reset_interval None or <= 0 means never reset."""
    views: list[ViewSpec] = []
    for i in range(num_frames):
        reset = bool(reset_interval and reset_interval > 0 and (i + 1) % reset_interval == 0)
        views.append(ViewSpec(i, reset, False))
        if reset:
            views.append(ViewSpec(i, False, True))
    return views


class Human3R(nn.Module):
    """The whole network. `Human3R(config)`; parameters are randomly initialised until loaded."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        cfg = config
        if cfg.dec_depth < 2:
            raise ValueError(f"dec_depth must be >= 2 (DPT hooks), got {cfg.dec_depth}")
        self.config = cfg
        ed, dd, bd = cfg.enc_embed_dim, cfg.dec_embed_dim, cfg.backbone.embed_dim
        # free tokens (only pose_token is used online; the others are training padding)
        self.pose_token = nn.Parameter(torch.zeros(1, 1, dd))
        self.masked_img_token = nn.Parameter(torch.zeros(1, ed))
        self.masked_ray_map_token = nn.Parameter(torch.zeros(1, ed))
        self.masked_smpl_token = nn.Parameter(torch.zeros(1, ed))
        self.mhmr_masked_smpl_token = nn.Parameter(torch.zeros(1, bd))
        self.mhmr_masked_img_token = nn.Parameter(torch.zeros(1, bd))
        # CroCo image encoder (+ unused ray-map encoder)
        enc = ImageEncoderParts.build(cfg)
        ray = ImageEncoderParts.build_ray_map(cfg)
        self.patch_embed = enc["patch_embed"]
        self.patch_embed_ray_map = ray["patch_embed_ray_map"]
        self.enc_blocks = enc["enc_blocks"]
        self.enc_norm = enc["enc_norm"]
        # image stream of the decoder
        self.decoder_embed = nn.Linear(ed, dd)
        self.dec_blocks = build_decoder_blocks(dd, cfg.dec_depth, cfg.dec_num_heads, cfg.mlp_ratio)
        self.dec_norm = layer_norm(dd)
        self.enc_blocks_ray_map = ray["enc_blocks_ray_map"]
        self.enc_norm_ray_map = ray["enc_norm_ray_map"]
        self.pose_retriever = PoseRetriever(ed, dd, cfg.local_mem_size, cfg.dec_num_heads, cfg.local_mem_depth,
                                            cfg.mlp_ratio)
        # recurrent state stream
        self.register_tokens = nn.Embedding(cfg.state_size, ed)
        self.backbone = DinoV2Backbone(cfg.backbone)
        self.decoder_embed_state = nn.Linear(ed, dd)
        self.dec_blocks_state = build_decoder_blocks(dd, cfg.dec_depth, cfg.state_dec_num_heads, cfg.mlp_ratio)
        self.dec_norm_state = layer_norm(dd)
        self.downstream_head = DownstreamHead(cfg)
        self.precision = PARITY  # numeric mode, see backend.model.precision (to_fast switches it)

    @property
    def device(self) -> torch.device:
        return self.pose_token.device

    # ------------------------------------------------------------------------------------------
    @torch.inference_mode()
    def init_stream(self) -> StreamState:
        """Fresh state for a new video: S0 = decoder_embed_state(register tokens), M0 = memory table."""
        state = self.decoder_embed_state(self.register_tokens.weight[None])
        mem = self.pose_retriever.mem.detach().clone()
        return StreamState(state=state, mem=mem, init_state=state, init_mem=mem)

    def _check_inputs(self, img: torch.Tensor, img_mhmr: torch.Tensor) -> None:
        p, r = self.config.patch_size, self.config.mhmr_img_res
        for name, t in (("img", img), ("img_mhmr", img_mhmr)):
            if not isinstance(t, torch.Tensor):
                raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
            if t.dtype != torch.float32:
                raise ValueError(f"{name} must be float32 in [-1, 1], got dtype {t.dtype}")
            if t.ndim != 4 or t.shape[0] != 1 or t.shape[1] != 3:
                raise ValueError(f"{name} must have shape [1, 3, H, W] (one RGB view), got {list(t.shape)}")
        h, w = img.shape[-2:]
        if h < p or w < p or h % p or w % p:
            raise ValueError(f"img height and width must be positive multiples of {p}, got {h}x{w}")
        if tuple(img_mhmr.shape[-2:]) != (r, r):
            raise ValueError(f"img_mhmr must be [1, 3, {r}, {r}] (mhmr_img_res), got {list(img_mhmr.shape)}")

    # --- the stages of one view ------------------------------------------------------------------
    def encode(self, img: torch.Tensor, img_mhmr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Both image encoders: CroCo tokens [1, N, ed] and their grid positions [1, N, 2] int64 from
        img [1, 3, H, W]; DINOv2 tokens [1, g*g, bd] from img_mhmr [1, 3, R, R]."""
        cfg = self.config
        enc, pos = encode_image(self.patch_embed, self.enc_blocks, self.enc_norm, img, cfg.enc_num_heads, cfg.rope_base)
        return enc, pos, self.backbone(img_mhmr)

    def detect(self, mhmr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Detection scores after 3x3 NMS [1, g, g, 1] and the human mask [1, R, R, 1] (None without
        a mask head) from the DINOv2 tokens."""
        cfg, head = self.config, self.downstream_head
        scores = nms3x3(head.detection_scores(mhmr, cfg.bb_token_res)).permute(0, 2, 3, 1)
        msk = head.human_mask(mhmr, cfg.bb_token_res, cfg.backbone.patch_size) if cfg.msk_head else None
        return scores, msk

    def pose_feature(self, state: StreamState, global_feat: torch.Tensor) -> torch.Tensor:
        """The decoder's pose token [1, 1, dd]: learned on the first view of a chunk, else read from the
        pose memory with the mean CroCo token global_feat [1, 1, ed]."""
        if state.first_of_chunk:
            return self.pose_token
        return self.pose_retriever.inquire(global_feat, state.mem)

    def decode(self, state: StreamState, enc: torch.Tensor, pos: torch.Tensor, pose_feat: torch.Tensor,
               people: HumanPrompts, want_gate: bool) -> DecoderOutput:
        """Paired decoder over the state and the stream [pose token, image tokens, human prompts].
        The TTT3R gate statistic comes from explicit logits in parity mode (bit-identical to the
        reference) and from q . mean(k) with fused attention in fast mode."""
        cfg = self.config
        stream = torch.cat([pose_feat, self.decoder_embed(enc), people.prompts], dim=1)
        pose_pos = torch.full((1, 1, 2), -1, dtype=pos.dtype, device=pos.device)
        stream_pos = torch.cat([pose_pos, pos, people.positions], dim=1)
        return run_paired_decoder(
            self.dec_blocks_state, self.dec_blocks, self.dec_norm_state, self.dec_norm,
            state.state, state_positions(cfg.state_size, pos.device), stream, stream_pos,
            state_heads=cfg.state_dec_num_heads, image_heads=cfg.dec_num_heads, rope_base=cfg.rope_base,
            keep_layers=cfg.dpt_hooks[1:],
            gate_stat=None if not want_gate else ("logits" if self.precision == PARITY else "key_mean"),
        )

    def scene_heads(self, enc: torch.Tensor, pos: torch.Tensor, dec: DecoderOutput, image_size: tuple[int, int],
                    want_rgb: bool, want_cross: bool) -> dict[str, torch.Tensor]:
        """Dense maps and camera pose (`DownstreamHead.scene`) from the encoder and decoder hooks."""
        cfg = self.config
        hook_layers = cfg.dpt_hooks[1:]
        N = enc.shape[1]
        final = dec.hooks[cfg.dec_depth]
        hooks = [enc, dec.hooks[hook_layers[0]][:, 1:1 + N], dec.hooks[hook_layers[1]][:, 1:1 + N], final[:, :1 + N]]
        image_rope = make_rope_table(pos, cfg.dec_embed_dim // cfg.dec_num_heads, cfg.rope_base)
        return self.downstream_head.scene(hooks, image_size, image_rope, want_rgb, want_cross)

    @staticmethod
    def next_state(state: StreamState, dec: DecoderOutput, new_mem: torch.Tensor, track, *, gated: bool,
                   reset: bool) -> StreamState:
        """The state for the next view: TTT3R-gated (or plain) state update, the new pose memory
        (never gated), both back to their initial values after a reset view."""
        new_state = ttt3r_gate(dec.state_new, state.state, dec.state_logit_mean) if gated else dec.state_new
        mem = new_mem
        if reset:
            new_state, mem = state.init_state, state.init_mem
        return StreamState(new_state, mem, state.init_state, state.init_mem, bool(reset), state.views_done + 1, track)

    @torch.inference_mode()
    def step(
        self,
        state: StreamState,
        img: torch.Tensor,
        img_mhmr: torch.Tensor,
        *,
        reset: bool,
        use_ttt3r: bool = True,
        want_rgb: bool = False,
        want_cross: bool = True,
        track: bool = True,
        detection_threshold: float | None = None,
    ) -> tuple[FrameOutputs, StreamState]:
        """Process one view; returns (its outputs, the state for the next view). See module docstring.

        want_rgb / want_cross: compute the rgb map / the world-frame maps (pts3d_in_other_view, conf).
        track: assign track ids here (`smpl_id`, `state.track`); False leaves that to the caller
            (`smpl_id` None, tracker untouched), e.g. on the host after the frame's one device->host copy.
        detection_threshold: person score threshold (>=); None = `config.detection_threshold`.
        Runs in the model's numeric mode (`self.precision`, see backend.model.precision).
        """
        with numerics(self.precision, self.device):
            return self._step(state, img, img_mhmr, reset=reset, use_ttt3r=use_ttt3r, want_rgb=want_rgb,
                              want_cross=want_cross, track=track, detection_threshold=detection_threshold)

    def _step(self, state: StreamState, img: torch.Tensor, img_mhmr: torch.Tensor, *, reset: bool, use_ttt3r: bool,
              want_rgb: bool, want_cross: bool, track: bool,
              detection_threshold: float | None) -> tuple[FrameOutputs, StreamState]:
        self._check_inputs(img, img_mhmr)
        cfg = self.config
        threshold = cfg.detection_threshold if detection_threshold is None else float(detection_threshold)
        img, img_mhmr = img.to(self.device), img_mhmr.to(self.device)
        H, W = img.shape[-2:]

        enc, pos, mhmr = self.encode(img, img_mhmr)
        scores, msk = self.detect(mhmr)
        head = self.downstream_head
        people = human_prompts(scores, mhmr, enc, pos, head.mlp_offset, head.mlp_fuse, threshold=threshold,
                               patch=cfg.patch_size, bb_patch=cfg.backbone.patch_size,
                               square_res=cfg.mhmr_img_res, image_size=(H, W))
        global_feat = enc.mean(dim=1, keepdim=True)
        with recurrent_region(self.device):
            pose_feat = self.pose_feature(state, global_feat)
            # TTT3R: the gate statistic is computed on every view, like the reference; the gate
            # itself is skipped on the first view of a chunk
            dec = self.decode(state, enc, pos, pose_feat, people, want_gate=use_ttt3r)
            final = dec.hooks[cfg.dec_depth]
            new_mem = self.pose_retriever.update(state.mem, global_feat, final[:, 0:1])
        scene = self.scene_heads(enc, pos, dec, (H, W), want_rgb, want_cross)
        human_tokens = final[:, 1 + enc.shape[1]:]  # [1, n, dd]
        smpl, _ = head.smpl(torch.cat([human_tokens, people.mhmr_tokens[None]], dim=-1))
        ids, tracks = assign_ids(state.track, human_tokens) if track else (None, state.track)
        gated = use_ttt3r and not state.first_of_chunk
        next_state = self.next_state(state, dec, new_mem, tracks, gated=gated, reset=reset)

        out = FrameOutputs(
            pts3d_in_self_view=scene["pts3d_in_self_view"], conf_self=scene["conf_self"],
            camera_pose=scene["camera_pose"], pts3d_in_other_view=scene.get("pts3d_in_other_view"),
            conf=scene.get("conf"), msk=msk, smpl_scores=scores, smpl_loc=people.loc[None],
            smpl_shape=smpl["smpl_shape"], smpl_transl=smpl["smpl_transl"], smpl_rotmat=smpl["smpl_rotmat"],
            smpl_expression=smpl["smpl_expression"], smpl_id=ids, rgb=scene.get("rgb"),
            enc_tokens=enc, mhmr_tokens=mhmr, smpl_query=people.prompts, state_in=state.state,
            state_new=dec.state_new, pose_raw=scene["pose_raw"], smpl_token=human_tokens,
        )
        return out, next_state
