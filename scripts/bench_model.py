"""Benchmark Human3R's streaming step: frames/s and peak memory.

    python scripts/bench_model.py                              # tiny preset, CPU, 20 frames
    python scripts/bench_model.py --preset human3r-896-L --frames 2 --size 512x288
    python scripts/bench_model.py --preset human3r-896-L --device cuda --dtype bf16 --frames 20

Weights are random (seeded); the detection head's bias is shifted so that exactly `--people`
people are detected on the benchmark frame, which keeps the decoder/tracker load realistic. The
same synthetic frame is fed every step (TTT3R on, rgb head off, like the engine). Peak memory is
the process's max RSS on CPU and torch.cuda.max_memory_allocated on GPU. The first step is
reported separately (allocator/cudnn warm-up).
"""
from __future__ import annotations

import argparse
import contextlib
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from backend.config import preset  # noqa: E402
from backend.model.heads.downstream import _identity_6d  # noqa: E402
from backend.model.heads.human import nms3x3  # noqa: E402
from backend.model.human3r import Human3R  # noqa: E402

DEFAULT_SIZE = {"tiny": (112, 80)}


def synthetic_frame(width: int, height: int, square: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A smooth random image [1, 3, H, W] in [-1, 1] and its padded square [1, 3, R, R]."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(1, 3, max(height // 16, 2), max(width // 16, 2), generator=g) * 2 - 1
    img = F.interpolate(low, size=(height, width), mode="bicubic", align_corners=False).clamp(-1, 1)
    scale = min(square / height, square / width)
    nh, nw = int(height * scale), int(width * scale)
    small = F.interpolate(img, size=(nh, nw), mode="bilinear", align_corners=False)
    top, left = (square - nh) // 2, (square - nw) // 2
    pad = F.pad(small, (left, square - nw - left, top, square - nh - top), value=-1.0)
    return img.contiguous(), pad.contiguous()


def randomise(model: Human3R, seed: int) -> None:
    """Seeded small random values for every parameter (keeps activations in a sane range); default buffers."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, b in model.named_buffers():
            b.zero_()
        model.downstream_head.init_body_pose.copy_(_identity_6d(model.config.num_smpl_rotations))
        for name, p in model.named_parameters():
            if name.endswith("weight") and p.ndim >= 2:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=g) / fan_in**0.5)
            elif "norm" in name and name.endswith("weight") or name.endswith("gamma"):
                p.fill_(1.0)
            else:
                p.copy_(torch.randn(p.shape, generator=g) * 0.02)


@torch.inference_mode()
def calibrate_people(model: Human3R, img_mhmr: torch.Tensor, people: int) -> None:
    """Shift the detection logit bias so exactly `people` NMS peaks reach the threshold on img_mhmr."""
    head = model.downstream_head
    cfg = model.config
    tokens = model.backbone(img_mhmr)
    logits = head.mlp_classif(tokens).reshape(1, 1, cfg.bb_token_res, cfg.bb_token_res)
    peaks = nms3x3(torch.sigmoid(logits)) > 0
    values = torch.sort(logits[peaks], descending=True).values
    k = min(people, values.numel())
    upper = values[k - 1] if k > 0 else values[0] + 1
    lower = values[k] if k < values.numel() else upper - 1
    target = torch.logit(torch.tensor(cfg.detection_threshold))
    head.mlp_classif[2].bias.add_(target - (upper + lower) / 2)


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def bench(preset_name: str, device: str, dtype: str, frames: int, size: tuple[int, int] | None, people: int,
          seed: int) -> dict:
    cfg = preset(preset_name)
    dev = torch.device(device)
    width, height = size or DEFAULT_SIZE.get(preset_name, (512, 288))
    t0 = time.perf_counter()
    with torch.device("meta"):  # skip the default init: every tensor is overwritten below
        model = Human3R(cfg)
    model = model.to_empty(device="cpu")
    randomise(model, seed)
    model = model.to(dev).train(False)
    build_s = time.perf_counter() - t0
    img, img_mhmr = synthetic_frame(width, height, cfg.mhmr_img_res, seed)
    img, img_mhmr = img.to(dev), img_mhmr.to(dev)
    calibrate_people(model, img_mhmr, people)
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.cuda.reset_peak_memory_stats(dev)
    autocast = (torch.autocast(device_type=dev.type, dtype=torch.bfloat16) if dtype == "bf16"
                else contextlib.nullcontext())
    state = model.init_stream()
    times, detected = [], []
    with autocast:
        for _ in range(frames):
            t = time.perf_counter()
            out, state = model.step(state, img, img_mhmr, reset=False, use_ttt3r=True)
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            times.append(time.perf_counter() - t)
            detected.append(out.n_humans)
    steady = times[1:] or times
    return {
        "preset": preset_name, "device": str(dev), "dtype": dtype, "size": f"{width}x{height}",
        "params_M": sum(p.numel() for p in model.parameters()) / 1e6, "build_s": build_s,
        "first_s": times[0], "step_s": sum(steady) / len(steady), "fps": len(steady) / sum(steady),
        "peak_mb": peak_memory_mb(dev), "people": max(detected), "frames": frames,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="tiny", help="tiny | human3r-896-L | human3r-672-S")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32", help="bf16 = autocast (GPUs)")
    parser.add_argument("--frames", type=int, default=None, help="steps to time (default 20 tiny, 3 otherwise)")
    parser.add_argument("--size", default=None, help="WxH model input (default 112x80 tiny, 512x288 otherwise)")
    parser.add_argument("--people", type=int, default=2, help="people detected per frame")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (CPU)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    size = tuple(int(v) for v in args.size.lower().split("x")) if args.size else None
    frames = args.frames or (20 if args.preset == "tiny" else 3)
    r = bench(args.preset, args.device, args.dtype, frames, size, args.people, args.seed)
    cols = ["preset", "device", "dtype", "size", "params_M", "frames", "people", "build_s", "first_s", "step_s",
            "fps", "peak_mb"]
    fmt = {"params_M": "{:.1f}", "build_s": "{:.2f}", "first_s": "{:.3f}", "step_s": "{:.3f}", "fps": "{:.2f}",
           "peak_mb": "{:.0f}"}
    cells = [fmt.get(c, "{}").format(r[c]) for c in cols]
    widths = [max(len(c), len(v)) for c, v in zip(cols, cells)]
    print("  ".join(c.rjust(w) for c, w in zip(cols, widths)))
    print("  ".join(v.rjust(w) for v, w in zip(cells, widths)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
