"""GPU benchmark of the model step: the reference-equivalent path vs parity mode vs fast mode.

    python scripts/bench_gpu.py --json $OUT/bench_gpu.json                 # CUDA: 896-L and 672-S
    python scripts/bench_gpu.py --device cpu --presets tiny --frames 3 --warmup 1   # CPU smoke test

No network and no checkpoint: each preset is built with seeded random weights directly on the
device, and the detection bias is shifted so that exactly `--people` people are detected on the
synthetic 512x288 frame (the same frame every step, TTT3R on), so the work is comparable. Variants:
- reference: what the reference runs: fp32 eager with TF32 on (its CroCo code enables it), rgb and
  world-frame heads computed, the tracker on the device, and a `synchronize` after every frame;
- parity: our fp32 mode (TF32 off), engine path (no rgb/world-frame heads, tracker on the host);
- fast: our fast mode (`backend.model.precision`), engine path.
Per variant: FPS = 1000 / median ms per frame over `--frames` steady frames after `--warmup`
(each frame ends with a wait for its results, as the engine does), peak memory
(torch.cuda.max_memory_allocated; max RSS on CPU), host syncs per frame (`SyncAudit`, counted on
one frame) and per-stage device time with achieved TFLOP/s (FLOPs from torch's FlopCounterMode).
Then the fast-vs-parity errors on the last frame (`backend.parity.fidelity`). Everything is printed
and, with --json, written to a file.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import json
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from backend.config import preset  # noqa: E402
from backend.parity.fidelity import relative_error  # noqa: E402
from backend.model.heads.downstream import _identity_6d  # noqa: E402
from backend.model.human3r import Human3R  # noqa: E402
from backend.model.precision import _cuda_tf32, to_fast  # noqa: E402
from backend.model.sync_audit import SyncAudit  # noqa: E402
from backend.model.tracker import assign_ids  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_model import calibrate_people, synthetic_frame  # noqa: E402

VARIANTS = ("reference", "parity", "fast")
STAGES = ("encode", "dinov2", "detect", "decode", "pose_retriever", "scene_heads", "smpl_heads")
ERROR_OUTPUTS = ("pts3d_in_self_view", "conf_self", "camera_pose", "msk", "smpl_transl", "smpl_rotmat",
                 "smpl_shape", "state_new")


@torch.inference_mode(False)
def build_random(preset_name: str, device: torch.device, seed: int) -> Human3R:
    """The preset with seeded random weights made on the device (fan-in scaled), eval mode."""
    cfg = preset(preset_name)
    with torch.device("meta"):
        model = Human3R(cfg)
    model = model.to_empty(device=device)
    g = torch.Generator(device=device).manual_seed(seed)
    with torch.no_grad():
        for b in model.buffers():
            b.zero_()
        model.downstream_head.init_body_pose.copy_(_identity_6d(cfg.num_smpl_rotations))
        for name, p in model.named_parameters():
            if name.endswith("weight") and p.ndim >= 2:
                p.copy_(torch.randn(p.shape, generator=g, device=device) / p[0].numel() ** 0.5)
            elif ("norm" in name and name.endswith("weight")) or name.endswith("gamma"):
                p.fill_(1.0)
            else:
                p.copy_(torch.randn(p.shape, generator=g, device=device) * 0.02)
    return model.train(False)


class StageTimer:
    """Per-stage device time (CUDA events, no host wait inside a step; wall clock on a CPU) and
    FLOPs (counted once), by wrapping the model's stage methods on this instance."""

    def __init__(self, model: Human3R, device: torch.device) -> None:
        self.device = device
        self.pending: list[tuple[str, object, object]] = []
        self.ms: dict[str, list[float]] = {s: [] for s in STAGES}
        self.flops: dict[str, int] = {}
        self.count_flops = False
        targets = {"encode": (model, "encode"), "dinov2": (model.backbone, "forward"), "detect": (model, "detect"),
                   "decode": (model, "decode"), "scene_heads": (model, "scene_heads"),
                   "smpl_heads": (model.downstream_head, "smpl")}
        targets["pose_retriever"] = (model.pose_retriever, "inquire")
        targets["pose_retriever_update"] = (model.pose_retriever, "update")
        self.wrapped = []
        for stage, (obj, attr) in targets.items():
            setattr(obj, attr, self._wrap(stage.replace("_update", ""), getattr(obj, attr)))
            self.wrapped.append((obj, attr))

    def close(self) -> None:
        """Remove the wrappers (the instance attributes), leaving the model as it was."""
        for obj, attr in self.wrapped:
            delattr(obj, attr)
        self.wrapped.clear()

    def _wrap(self, stage: str, fn):
        @functools.wraps(fn)
        def timed(*args, **kwargs):
            flops = FlopCounterMode(display=False) if self.count_flops else contextlib.nullcontext()
            if self.device.type == "cuda":
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                with flops:
                    out = fn(*args, **kwargs)
                end.record()
                self.pending.append((stage, start, end))
            else:
                t = time.perf_counter()
                with flops:
                    out = fn(*args, **kwargs)
                self.pending.append((stage, t, time.perf_counter()))
            if self.count_flops:
                self.flops[stage] = self.flops.get(stage, 0) + flops.get_total_flops()
            return out
        return timed

    def collect(self) -> None:
        """Call after the frame's wait: moves this frame's stage times into `ms` (summed per stage)."""
        frame: dict[str, float] = {}
        for stage, a, b in self.pending:
            dt = a.elapsed_time(b) if self.device.type == "cuda" else (b - a) * 1000
            frame[stage] = frame.get(stage, 0.0) + dt
        for stage, dt in frame.items():
            self.ms[stage].append(dt)
        self.pending.clear()

    def summary(self) -> dict[str, dict[str, float]]:
        out = {}
        for stage in STAGES:
            if not self.ms[stage]:
                continue
            ms = statistics.median(self.ms[stage])
            gflop = self.flops.get(stage, 0) / 1e9
            out[stage] = {"ms": ms, "gflop": gflop, "tflops": gflop / ms if ms > 0 else 0.0}
        if "encode" in out and "dinov2" in out:  # encode includes DINOv2: report the CroCo part alone
            e, d = out["encode"], out["dinov2"]
            ms, gflop = e["ms"] - d["ms"], e["gflop"] - d["gflop"]
            out["croco_encoder"] = {"ms": ms, "gflop": gflop, "tflops": gflop / ms if ms > 0 else 0.0}
            del out["encode"]
        return out


def _wait(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_variant(model: Human3R, variant: str, img, img_mhmr, frames: int, warmup: int, modules: bool) -> dict:
    """Time one variant; returns its figures and its last frame's outputs."""
    dev = model.device
    reference = variant == "reference"
    state = model.init_stream()
    timer = StageTimer(model, dev) if modules else None
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)

    def one_frame():
        nonlocal state
        if reference:  # fp32 with TF32 on, every head, device tracker
            tf32 = _cuda_tf32(True, False) if dev.type == "cuda" else contextlib.nullcontext()
            with tf32, torch.inference_mode():
                out, state = model._step(state, img, img_mhmr, reset=False, use_ttt3r=True, want_rgb=True,
                                         want_cross=True, track=True, detection_threshold=None)
            _wait(dev)
        else:  # the engine's path: one count read in the step, the tracker on the host
            out, state = model.step(state, img, img_mhmr, reset=False, use_ttt3r=True, want_cross=False, track=False)
            out.smpl_id, track = assign_ids(state.track, out.smpl_token.float().cpu())
            state = type(state)(state.state, state.mem, state.init_state, state.init_mem, state.prev_reset,
                                state.views_done, track)
            _wait(dev)
        return out

    for _ in range(warmup):
        one_frame()
    audit = SyncAudit()
    host_tracker = assign_ids
    try:  # audited: the device work and its copies; the host tracker's own reads of host data are not syncs
        globals()["assign_ids"] = _unaudited(assign_ids, audit)
        with audit:
            one_frame()
    finally:
        globals()["assign_ids"] = host_tracker
    if timer:
        timer.pending.clear()
        timer.count_flops = True
        one_frame()
        timer.count_flops = False
        timer.pending.clear()
    times = []
    for _ in range(frames):
        t = time.perf_counter()
        out = one_frame()
        times.append((time.perf_counter() - t) * 1000)
        if timer:
            timer.collect()
    peak = (torch.cuda.max_memory_allocated(dev) / 2**20 if dev.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    ms = statistics.median(times)
    result = {"ms_median": ms, "fps": 1000 / ms, "ms_min": min(times), "frames": frames, "peak_mb": peak,
              "host_syncs_per_frame": audit.count(), "sync_sites": sorted({f"{k}@{s}" for k, _, s in audit.events}),
              "people": out.n_humans}
    if timer:
        result["stages"] = timer.summary()
        timer.close()
    return result, out


def _unaudited(fn, audit: SyncAudit):
    """fn run with the audit paused (for host-side work inside an audited frame)."""
    @functools.wraps(fn)
    def run(*args, **kwargs):
        audit.__exit__(None, None, None)
        try:
            return fn(*args, **kwargs)
        finally:
            audit.__enter__()
    return run


def bench_preset(name: str, device: torch.device, args) -> dict:
    t0 = time.perf_counter()
    model = build_random(name, device, args.seed)
    width, height = args.size
    img, img_mhmr = synthetic_frame(width, height, model.config.mhmr_img_res, args.seed)
    img, img_mhmr = img.to(device), img_mhmr.to(device)
    calibrate_people(model, img_mhmr, args.people)
    build_s = time.perf_counter() - t0
    report = {"build_s": build_s, "params_M": sum(p.numel() for p in model.parameters()) / 1e6, "variants": {}}
    outputs = {}
    for variant in sorted(args.variants, key=VARIANTS.index):  # fast last: the model is cast in place for it,
        if variant == "fast":                                       # so its peak memory is the fast model's alone
            with torch.inference_mode(False):
                to_fast(model)
            if device.type == "cuda":
                torch.cuda.empty_cache()
        res, outputs[variant] = run_variant(model, variant, img, img_mhmr, args.frames, args.warmup, args.modules)
        report["variants"][variant] = res
        print(f"  {name:14s} {variant:9s} {res['fps']:8.2f} FPS  {res['ms_median']:9.2f} ms  peak {res['peak_mb']:8.0f} MB"
              f"  syncs/frame {res['host_syncs_per_frame']}  people {res['people']}", flush=True)
    ref = report["variants"].get("reference")
    if ref:
        for variant, res in report["variants"].items():
            res["speedup_vs_reference"] = res["fps"] / ref["fps"]
    if "parity" in outputs and "fast" in outputs:
        a, b = outputs["parity"], outputs["fast"]
        report["fast_vs_parity"] = {k: relative_error(getattr(a, k).float().cpu(), getattr(b, k).float().cpu())
                                    for k in ERROR_OUTPUTS if getattr(a, k) is not None}
        report["fast_vs_parity"]["same_people"] = float(a.n_humans == b.n_humans
                                                        and a.smpl_id.tolist() == b.smpl_id.tolist())
    if args.modules:
        for variant, res in report["variants"].items():
            for stage, s in res.get("stages", {}).items():
                print(f"    {variant:9s} {stage:15s} {s['ms']:8.2f} ms {s['gflop']:9.1f} GFLOP {s['tflops']:7.2f} TFLOP/s")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", default="human3r-896-L,human3r-672-S")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--frames", type=int, default=40, help="steady frames timed per variant (median)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--size", default="512x288", help="WxH model input")
    parser.add_argument("--people", type=int, default=2, help="people detected per frame (forced)")
    parser.add_argument("--no-modules", dest="modules", action="store_false", help="skip per-stage times/FLOPs")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (CPU)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args(argv)
    args.variants = [v for v in args.variants.split(",") if v]
    bad = sorted(set(args.variants) - set(VARIANTS))
    if bad:
        parser.error(f"unknown variant(s) {', '.join(bad)}; choose from {', '.join(VARIANTS)}")
    args.size = tuple(int(v) for v in args.size.lower().split("x"))
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    info = {"device": str(device), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "host": platform.processor() or platform.machine(),
            "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "size": list(args.size), "people": args.people, "frames": args.frames, "warmup": args.warmup}
    print(json.dumps(info))
    started = time.perf_counter()
    results = {"info": info, "presets": {}}
    for name in [p for p in args.presets.split(",") if p]:
        results["presets"][name] = bench_preset(name, device, args)
        if device.type == "cuda":
            torch.cuda.empty_cache()
    results["wall_s"] = time.perf_counter() - started
    print(f"total {results['wall_s']:.1f} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
