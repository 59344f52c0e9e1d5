"""The model's two numeric modes, decided here and nowhere else.

- 'fp32' (parity): float32 weights and activations, the reference's op order (bit-identical to the
  reference on a CPU). On CUDA, TF32 is switched off for matmuls *and* cuDNN convolutions while a
  step runs (PyTorch's default lets convolutions run in TF32), so the mode is honest fp32 there too.
- 'fast': the image-side weights (CroCo encoder, DINOv2: 92 % of a frame's FLOPs at full size; the
  prompt/offset MLPs and `final_transform`) are cast to bfloat16 ONCE (`to_fast`), and each step
  runs under bf16 autocast, which then casts only activations (inside `torch.inference_mode()`
  autocast keeps no weight cache, so fp32 weights would be re-cast on every frame). Kept float32
  (`recurrent_region`): the recurrent part, i.e. the paired decoder's attention, norms and
  residual streams (state and image streams, whose pose token gives the camera and whose human
  tokens give the SMPL-X parameters), the pose retriever and its memory, the state and the TTT3R
  gate statistic (`q . mean(k)`); also LayerNorm/LayerScale parameters and hence the residual
  streams, the RoPE tables, and every head that runs under `full_precision` (DPT, camera pose,
  detection, mask, SMPL-X decoders). Only the decoder's MLPs (`FAST_BF16_MLPS`; half of its FLOPs,
  and the decoder is ~40 % of a 672-S frame) run in bf16, their input cast and their output
  returned as float32 into the fp32 residual stream. Measured on the parity fixture, a fully bf16
  decoder and pose memory moved the camera by 0.24-0.26 degrees (over the 0.2 degree budget); with
  bf16 MLPs only it moves 0.145 (fixture) and 0.18 (tennis.mp4, 12 frames).
  The fp16 rounding of the encoder's q/k is not emulated; the bf16 attention runs through SDPA's
  flash kernels on a GPU and in query blocks on a CPU (`layers.blocked_attention`); TF32 and cuDNN
  autotuning are on for the fp32 work.

The job-level names (`backend.engine.options.PRECISIONS`) are resolved here: 'auto' = 'fast' on
CUDA and 'fp32' elsewhere; 'bf16' is the former name of 'fast'.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import nn

PARITY = "fp32"
FAST = "fast"
MODES = (PARITY, FAST)
ALIASES = {"bf16": FAST}

# submodules of `Human3R` whose Linear/Conv weights are bfloat16 in fast mode
FAST_BF16_PARTS = ("patch_embed", "enc_blocks", "backbone", "downstream_head.mlp_fuse", "downstream_head.mlp_offset",
                   "downstream_head.final_transform", "downstream_head.dpt_self")


def resolve_precision(name: str | None, device: torch.device | str) -> str:
    """A job/CLI precision name ('auto', 'fp32', 'fast', 'bf16') -> a model mode in `MODES`."""
    name = ALIASES.get(name, name)
    if name in (None, "", "auto"):
        return FAST if torch.device(device).type == "cuda" else PARITY
    if name not in MODES:
        raise ValueError(f"precision must be one of auto, {', '.join(MODES)} (got {name!r})")
    return name


def preprocesses_on_device(mode: str, device: torch.device | str) -> bool:
    """Whether a job in `mode` on `device` preprocesses its frames on the device from uint8
    (`backend.video.preprocess.prepare_frame_on`) instead of on the host in the decoding process.

    Only fast mode on CUDA: there the device takes well under a millisecond per frame, while PIL on one
    CPU core takes ~30 ms for a 1080p frame and would cap the whole pipeline near 35 FPS. Parity mode
    keeps the reference-exact host path in any case (its inputs must be bit-identical), and so does a
    CPU model: the decoding process preprocesses in parallel there, while "device" work would take
    the model's own cores.
    """
    return mode == FAST and torch.device(device).type == "cuda"


# stacks of blocks whose MLP alone is bfloat16 in fast mode (the rest of the block stays float32)
FAST_BF16_MLPS = ("dec_blocks", "dec_blocks_state")


def to_fast(model: nn.Module) -> nn.Module:
    """Cast the model for fast mode in place (once, at load) and return it.

    Only `nn.Linear` / `nn.Conv2d` weights and biases under `FAST_BF16_PARTS` become bfloat16;
    everything else keeps its dtype. The encoder's fp16 q/k emulation is turned off.
    """
    for part in FAST_BF16_PARTS:
        module = model.get_submodule(part)
        for sub in module.modules():
            if isinstance(sub, (nn.Linear, nn.Conv2d)):
                sub.to(torch.bfloat16)
            if hasattr(sub, "fp16_qk"):
                sub.fp16_qk = False
    for stack in FAST_BF16_MLPS:
        for block in model.get_submodule(stack):
            block.mlp.to(torch.bfloat16)
    model.precision = FAST
    return model


def weight_dtypes(model: nn.Module) -> dict[torch.dtype, int]:
    """Parameter count per dtype (to check what `to_fast` did)."""
    counts: dict[torch.dtype, int] = {}
    for p in model.parameters():
        counts[p.dtype] = counts.get(p.dtype, 0) + p.numel()
    return counts


@contextlib.contextmanager
def _cuda_tf32(enabled: bool, benchmark: bool) -> Iterator[None]:
    matmul = torch.backends.cuda.matmul
    saved = (matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark)
    matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled
    torch.backends.cudnn.benchmark = benchmark
    try:
        yield
    finally:
        matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark = saved


def recurrent_region(device: torch.device) -> torch.autocast:
    """Context for the recurrent stages (decoder, pose retriever): float32 in every mode (autocast
    off; a no-op in parity mode, where autocast is off anyway)."""
    return torch.autocast(device.type, enabled=False)


@contextlib.contextmanager
def numerics(mode: str, device: torch.device) -> Iterator[None]:
    """Context of one model step in `mode`: autocast off and TF32 off (parity) or bf16 autocast
    with TF32 and cuDNN autotuning on (fast)."""
    fast = mode == FAST
    with contextlib.ExitStack() as stack:
        if device.type == "cuda":
            stack.enter_context(_cuda_tf32(enabled=fast, benchmark=fast))
        stack.enter_context(torch.autocast(device.type, dtype=torch.bfloat16, enabled=fast))
        yield
