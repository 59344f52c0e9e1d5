"""CUT3R's pose retriever (`LocalMemory`, keys `pose_retriever.*`): a 256-slot memory of
(image feature, pose token) pairs, read to predict the next frame's pose token and written after
every frame. Blocks are decoder blocks of width 2C (C = dec_embed_dim) without RoPE.
"""
from __future__ import annotations

import torch
from torch import nn

from backend.model.decoder import build_decoder_blocks


class PoseRetriever(nn.Module):
    """Args: enc_dim (global image feature width), dec_dim C, size (memory slots), heads, depth."""

    def __init__(self, enc_dim: int, dec_dim: int, size: int, num_heads: int, depth: int, mlp_ratio: float) -> None:
        super().__init__()
        self.dec_dim = dec_dim
        self.proj_q = nn.Linear(enc_dim, dec_dim)
        self.masked_token = nn.Parameter(torch.zeros(1, 1, dec_dim))
        self.mem = nn.Parameter(torch.zeros(1, size, 2 * dec_dim))
        self.write_blocks = build_decoder_blocks(2 * dec_dim, depth, num_heads, mlp_ratio)
        self.read_blocks = build_decoder_blocks(2 * dec_dim, depth, num_heads, mlp_ratio)

    def inquire(self, global_feat: torch.Tensor, mem: torch.Tensor) -> torch.Tensor:
        """Predict a pose token: global_feat [B, 1, enc_dim], mem [B, size, 2C] -> [B, 1, C]."""
        x = self.proj_q(global_feat)
        x = torch.cat((x, self.masked_token.expand(x.shape[0], -1, -1)), dim=-1)
        for blk in self.read_blocks:
            x, _ = blk(x, mem)
        return x[..., -self.dec_dim:]

    def update(self, mem: torch.Tensor, global_feat: torch.Tensor, pose_token: torch.Tensor) -> torch.Tensor:
        """Write (global_feat [B, 1, enc_dim], decoded pose token [B, 1, C]) -> new mem [B, size, 2C]."""
        feat = torch.cat((self.proj_q(global_feat), pose_token), dim=-1)
        for blk in self.write_blocks:
            mem, _ = blk(mem, feat)
        return mem
