"""CUT3R's paired decoder: the recurrent state stream and the image stream, run in parallel.

Layer l of both streams reads the outputs of layer l-1 of both streams:

    S_l = dec_blocks_state[l-1](x=S_{l-1}, y=X_{l-1})   (state_dec_num_heads heads, e.g. 16 x 48)
    X_l = dec_blocks[l-1](x=X_{l-1}, y=S_{l-1})         (dec_num_heads heads, e.g. 12 x 64)

The image stream X is [pose token, image tokens (row-major), human prompts]; its RoPE positions
are [(-1, -1), grid, CUT3R patch of each head]. After the last layer both streams are normalised
(`dec_norm_state`, `dec_norm`). The modules live on `Human3R` (keys `dec_blocks.N`,
`dec_blocks_state.N`, `dec_norm`, `dec_norm_state`, `decoder_embed`, `decoder_embed_state`).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from backend.model.layers.blocks import DecoderBlock
from backend.model.layers.rope import make_rope_table


def build_decoder_blocks(dim: int, depth: int, num_heads: int, mlp_ratio: float) -> nn.ModuleList:
    return nn.ModuleList(DecoderBlock(dim, num_heads, mlp_ratio) for _ in range(depth))


def state_positions(state_size: int, device: torch.device | str | None = None) -> torch.Tensor:
    """'2d' state token positions [1, S, 2] int64: width = int(sqrt(S)) rounded up to even."""
    width = int(state_size**0.5)
    width = width + 1 if width % 2 == 1 else width
    idx = torch.arange(state_size, device=device)
    return torch.stack((idx // width, idx % width), dim=-1)[None]


@dataclass
class DecoderOutput:
    """Result of one paired-decoder pass.

    state_new: [1, S, C] normalised final state stream (the new-state candidate).
    hooks: decoder layers kept for the heads, layer index -> [1, 1 + N + n, C]; the last layer
        (index = depth) is normalised, the others are raw block outputs.
    state_logit_mean: [1, S] float32 mean of the state stream's cross-attention pre-softmax scaled
        logits over layers, heads and keys (the TTT3R gate statistic; only when asked), else None.
    """

    state_new: torch.Tensor
    hooks: dict[int, torch.Tensor]
    state_logit_mean: torch.Tensor | None


def run_paired_decoder(
    state_blocks: nn.ModuleList,
    image_blocks: nn.ModuleList,
    state_norm: nn.LayerNorm,
    image_norm: nn.LayerNorm,
    state: torch.Tensor,
    state_pos: torch.Tensor,
    image_stream: torch.Tensor,
    image_pos: torch.Tensor,
    *,
    state_heads: int,
    image_heads: int,
    rope_base: float,
    keep_layers: tuple[int, ...],
    gate_stat: str | None,
) -> DecoderOutput:
    """Run all decoder layers. state [1, S, C], image_stream [1, M, C] (already embedded).

    gate_stat: how the TTT3R gate statistic is computed (None: not at all): "logits" = explicit
    state cross-attention, reduced in the reference's order (parity, bit-identical); "key_mean" =
    fused attention plus q . mean(k) per layer (no logits materialised; equal up to rounding).
    """
    dim = state.shape[-1]
    hd_s, hd_i = dim // state_heads, dim // image_heads
    # one table per (positions, head dim) pair, shared by every layer
    rope_ss = make_rope_table(state_pos, hd_s, rope_base)
    rope_is = make_rope_table(image_pos, hd_s, rope_base)
    rope_ii = make_rope_table(image_pos, hd_i, rope_base)
    rope_si = make_rope_table(state_pos, hd_i, rope_base)

    s, x = state, image_stream
    hooks: dict[int, torch.Tensor] = {}
    stats: list[torch.Tensor] = []
    depth = len(state_blocks)
    for layer, (blk_s, blk_i) in enumerate(zip(state_blocks, image_blocks), start=1):
        s_next, stat = blk_s(s, x, rope_ss, rope_is, gate_stat=gate_stat)
        x_next, _ = blk_i(x, s, rope_ii, rope_si)
        s, x = s_next, x_next
        if stat is not None:
            stats.append(stat)
        if layer in keep_layers and layer != depth:
            hooks[layer] = x
    hooks[depth] = image_norm(x)
    if gate_stat == "logits":
        logit_mean = mean_state_logit(stats)
    elif gate_stat == "key_mean":
        logit_mean = torch.stack(stats).mean(dim=(0, 2))  # [L, 1, heads, S] -> [1, S]
    else:
        logit_mean = None
    return DecoderOutput(state_norm(s), hooks, logit_mean)


def mean_state_logit(logits: list[torch.Tensor]) -> torch.Tensor:
    """Per-layer logits [1, heads, S, K] -> their mean over layers, heads and keys [1, S], reduced in
    the reference's order (layers and heads innermost), which keeps it bit-identical."""
    stacked = torch.cat(logits, dim=0)  # [L, heads, S, K]
    layers, heads, S, K = stacked.shape
    return stacked.permute(2, 3, 0, 1).reshape(1, S, K, layers * heads).mean(dim=(-1, -2))


def ttt3r_gate(state_new: torch.Tensor, state_old: torch.Tensor, logit_mean: torch.Tensor) -> torch.Tensor:
    """TTT3R state update: a per-token mix of the decoder's new state and the previous one,
    gate = sigmoid(mean cross-attention logit of that state token) [1, S, 1]; states [1, S, C]."""
    gate = torch.sigmoid(logit_mean)[..., None]
    return state_new * gate + state_old * (1 - gate)
