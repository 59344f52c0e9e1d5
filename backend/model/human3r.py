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

Per view (fact sheet §4): CroCo encoder and DINOv2 -> detection (3x3 NMS, threshold) -> human
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
from backend.model.decoder import build_decoder_blocks, run_paired_decoder, state_positions
from backend.model.dinov2 import DinoV2Backbone
from backend.model.encoder import ImageEncoderParts, encode_image
from backend.model.heads.downstream import DownstreamHead
from backend.model.heads.human import cut3r_patch_of, detect_people, head_locations, nms3x3, unpad_uv
from backend.model.layers.blocks import layer_norm
from backend.model.layers.rope import make_rope_table
from backend.model.pose_retriever import PoseRetriever
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
    ) -> tuple[FrameOutputs, StreamState]:
        """Process one view; returns (its outputs, the state for the next view). See module docstring."""
        self._check_inputs(img, img_mhmr)
        cfg = self.config
        dev = self.device
        img, img_mhmr = img.to(dev), img_mhmr.to(dev)
        H, W = img.shape[-2:]
        p, grid, bb_patch = cfg.patch_size, cfg.bb_token_res, cfg.backbone.patch_size
        head = self.downstream_head

        # encoders
        enc, pos = encode_image(self.patch_embed, self.enc_blocks, self.enc_norm, img, cfg.enc_num_heads, cfg.rope_base)
        mhmr = self.backbone(img_mhmr)  # [1, g*g, bd]

        # detection, head locations, human prompts
        scores = nms3x3(head.detection_scores(mhmr, grid)).permute(0, 2, 3, 1)  # [1, g, g, 1]
        msk = head.human_mask(mhmr, grid, bb_patch) if cfg.msk_head else None
        h_id, w_id = detect_people(scores, cfg.detection_threshold)
        tok_mhmr = mhmr.reshape(1, grid, grid, -1)[0, h_id, w_id]  # [n, bd]
        loc = head_locations(h_id, w_id, head.mlp_offset(tok_mhmr), bb_patch)  # [n, 2] square px
        rows, cols = cut3r_patch_of(unpad_uv(loc, cfg.mhmr_img_res, H, W), p)
        nh, nw = H // p, W // p
        tok_cut3r = enc.reshape(1, nh, nw, -1)[0, rows, cols]  # [n, ed]
        pos_humans = pos.reshape(1, nh, nw, 2)[:, rows, cols]  # [1, n, 2]
        prompts = head.mlp_fuse(torch.cat([tok_mhmr, tok_cut3r], dim=-1)[None])  # [1, n, dd]

        # pose token, decoder
        global_feat = enc.mean(dim=1, keepdim=True)
        first = state.first_of_chunk
        pose_feat = self.pose_token if first else self.pose_retriever.inquire(global_feat, state.mem)
        stream = torch.cat([pose_feat, self.decoder_embed(enc), prompts], dim=1)
        stream_pos = torch.cat([-torch.ones(1, 1, 2, dtype=pos.dtype, device=dev), pos, pos_humans], dim=1)
        L = cfg.dec_depth
        hook_layers = cfg.dpt_hooks[1:]
        # TTT3R: the state stream's cross-attention runs explicitly (returning its logits) on every
        # view, like the reference; the gate itself is skipped on the first view of a chunk
        gated = use_ttt3r and not first
        dec = run_paired_decoder(
            self.dec_blocks_state, self.dec_blocks, self.dec_norm_state, self.dec_norm,
            state.state, state_positions(cfg.state_size, dev), stream, stream_pos,
            state_heads=cfg.state_dec_num_heads, image_heads=cfg.dec_num_heads, rope_base=cfg.rope_base,
            keep_layers=hook_layers, want_state_logits=use_ttt3r,
        )
        final = dec.hooks[L]
        new_mem = self.pose_retriever.update(state.mem, global_feat, final[:, 0:1])

        # heads
        N = nh * nw
        hooks = [enc, dec.hooks[hook_layers[0]][:, 1:1 + N], dec.hooks[hook_layers[1]][:, 1:1 + N], final[:, :1 + N]]
        image_rope = make_rope_table(pos, cfg.dec_embed_dim // cfg.dec_num_heads, cfg.rope_base)
        scene = head.scene(hooks, (H, W), image_rope, want_rgb)
        human_tokens = final[:, 1 + N:]  # [1, n, dd]
        smpl, _ = head.smpl(torch.cat([human_tokens, tok_mhmr[None]], dim=-1))
        ids, track = assign_ids(state.track, human_tokens)

        # state update (TTT3R gate), memory update (never gated), reset
        if gated:
            logits = torch.cat(dec.state_logits, dim=0)  # [L, heads, S, K]
            Lh, nhd, S, K = logits.shape
            mean = logits.permute(2, 3, 0, 1).reshape(1, S, K, Lh * nhd).mean(dim=(-1, -2))  # [1, S]
            gate = torch.sigmoid(mean)[..., None]
            new_state = dec.state_new * gate + state.state * (1 - gate)
        else:
            new_state = dec.state_new
        mem = new_mem
        if reset:
            new_state, mem = state.init_state, state.init_mem
        next_state = StreamState(new_state, mem, state.init_state, state.init_mem, bool(reset),
                                 state.views_done + 1, track)

        out = FrameOutputs(
            pts3d_in_self_view=scene["pts3d_in_self_view"], conf_self=scene["conf_self"],
            camera_pose=scene["camera_pose"], pts3d_in_other_view=scene["pts3d_in_other_view"],
            conf=scene["conf"], msk=msk, smpl_scores=scores, smpl_loc=loc[None],
            smpl_shape=smpl["smpl_shape"], smpl_transl=smpl["smpl_transl"], smpl_rotmat=smpl["smpl_rotmat"],
            smpl_expression=smpl["smpl_expression"], smpl_id=ids, rgb=scene.get("rgb"),
            enc_tokens=enc, mhmr_tokens=mhmr, smpl_query=prompts, state_in=state.state,
            state_new=dec.state_new, pose_raw=scene["pose_raw"], smpl_token=human_tokens,
        )
        return out, next_state
