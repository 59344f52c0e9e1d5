"""How many CPU threads the model gets, chosen by its per-frame cost.

A model that needs a fraction of a second or more per frame gets every core: the decoding process
needs ~10 ms of CPU per frame (30 ms for a 1080p frame with preprocessing), so sharing the cores
costs it a few percent, while keeping a core free for it would make the model up to 1.7x slower
(672-S on 2 cores: 15.4 s/frame with 1 thread, 8.9 s with 2). A small model (the tiny test
preset, ~ms per frame) leaves one core to the decoder, which would otherwise pre-empt it.
"""
from __future__ import annotations

BIG_MODEL_GFLOP = 50.0  # per frame; ~0.3 s on one core of a typical CPU
NOMINAL_TOKENS = (512 // 16) * (288 // 16)  # CroCo tokens of a 512x288 frame


def frame_gflop(config) -> float:
    """Estimated GFLOP of one frame's dense layers (encoders and paired decoder) at 512x288."""
    ed, dd, bd = config.enc_embed_dim, config.dec_embed_dim, config.backbone.embed_dim
    dino_tokens = (config.mhmr_img_res // config.backbone.patch_size) ** 2
    encoder = 2 * 12 * ed * ed * config.enc_depth * NOMINAL_TOKENS
    dino = 2 * 12 * bd * bd * config.backbone.depth * dino_tokens
    decoder = 2 * 16 * dd * dd * config.dec_depth * (NOMINAL_TOKENS + config.state_size)
    return (encoder + dino + decoder) / 1e9


def model_threads(config, cores: int) -> int:
    """Threads for the model on `cores` cores: all of them for a big model, else all but one."""
    if frame_gflop(config) >= BIG_MODEL_GFLOP:
        return max(1, cores)
    return max(1, cores - 1)
