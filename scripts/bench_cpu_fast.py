"""CPU: fast mode vs the reference-equivalent fp32 path, side by side, frames interleaved.

    python scripts/bench_cpu_fast.py                                # human3r-672-S, 3 frames each
    python scripts/bench_cpu_fast.py --preset human3r-896-L --frames 3 --json out.json

On a shared CPU the load changes from minute to minute, so the variants' frames alternate
(reference, fast, ...) and each variant's figure is its median; the ratio is also given per round
(median of the per-round ratios). Random weights (seeded, `bench_gpu.build_random`), the synthetic
512x288 frame with exactly `--people` people detected, TTT3R on, all cores (the thread policy of
`backend.engine.cpu_threads` for a real-size model). Variants:
- reference: fp32 eager, every head, the tracker on the model's device (as the reference runs);
- fast: our fast mode (`backend.model.precision.to_fast`), engine path (tracker on the host);
- fast-fp32-tail (with --ablation): fast mode with the decoder's MLPs and the camera-frame DPT head
  kept float32 (the fast mode before they were cast), to show what those casts are worth.
`--clock cpu` times each frame in CPU seconds of this process (`time.process_time`) instead of wall
seconds: on a machine shared with other work, a frame's wall time mostly measures the others (with
several threads, every parallel region waits for its slowest, pre-empted thread); with `--threads 1`
CPU time is the frame's own work. The load average before and after is printed: compare only
ratios from one run.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from backend.model.precision import FAST_BF16_MLPS, to_fast  # noqa: E402
from backend.model.tracker import assign_ids  # noqa: E402
from bench_gpu import build_random  # noqa: E402
from bench_model import calibrate_people, synthetic_frame  # noqa: E402


def frame_runner(model, variant: str, img, img_mhmr):
    """A callable that runs one frame of `variant` on `model` (its own stream state)."""
    state = model.init_stream()

    def one_frame():
        nonlocal state
        with torch.inference_mode():
            if variant == "reference":
                out, state = model._step(state, img, img_mhmr, reset=False, use_ttt3r=True, want_rgb=True,
                                         want_cross=True, track=True, detection_threshold=None)
            else:
                out, state = model.step(state, img, img_mhmr, reset=False, use_ttt3r=True, want_cross=False,
                                        track=False)
                out.smpl_id, track = assign_ids(state.track, out.smpl_token.float())
                state = type(state)(state.state, state.mem, state.init_state, state.init_mem, state.prev_reset,
                                    state.views_done, track)
        return out
    return one_frame


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="human3r-672-S")
    parser.add_argument("--frames", type=int, default=3, help="timed frames per variant (after one warm-up each)")
    parser.add_argument("--people", type=int, default=2)
    parser.add_argument("--size", default="512x288", help="WxH model input")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: every core)")
    parser.add_argument("--ablation", action="store_true", help="also time fast mode with fp32 decoder MLPs and DPT")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall", help="seconds of what (see above)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads or len(os.sched_getaffinity(0)))
    load_before = os.getloadavg()
    device = torch.device("cpu")
    reference = build_random(args.preset, device, args.seed)
    width, height = (int(v) for v in args.size.lower().split("x"))
    img, img_mhmr = synthetic_frame(width, height, reference.config.mhmr_img_res, args.seed)
    calibrate_people(reference, img_mhmr, args.people)
    models = {"reference": reference}
    with torch.inference_mode(False):
        models["fast"] = to_fast(copy.deepcopy(reference))
        if args.ablation:
            before = models["fast-fp32-tail"] = to_fast(copy.deepcopy(reference))
            for stack in FAST_BF16_MLPS:
                for block in before.get_submodule(stack):
                    block.mlp.float()
            before.downstream_head.dpt_self.float()
    runners = {name: frame_runner(m, name, img, img_mhmr) for name, m in models.items()}
    for run in runners.values():  # warm-up (allocator, oneDNN primitives)
        run()
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    times: dict[str, list[float]] = {name: [] for name in runners}
    people = {}
    for _ in range(args.frames):
        for name, run in runners.items():
            t = clock()
            out = run()
            times[name].append(clock() - t)
            people[name] = out.n_humans
    load_after = os.getloadavg()
    ref = times["reference"]
    result = {"preset": args.preset, "threads": torch.get_num_threads(), "frames": args.frames, "clock": args.clock,
              "loadavg_before": load_before, "loadavg_after": load_after, "people": people, "variants": {}}
    for name, ts in times.items():
        result["variants"][name] = {
            "s_median": statistics.median(ts), "s_all": ts,
            "speedup_vs_reference": statistics.median(ref) / statistics.median(ts),
            "speedup_per_round_median": statistics.median(r / t for r, t in zip(ref, ts))}
        v = result["variants"][name]
        print(f"{args.preset} {name:14s} median {v['s_median']:7.2f} {args.clock} s/frame  x{v['speedup_vs_reference']:.2f} "
              f"(per round x{v['speedup_per_round_median']:.2f})  frames {', '.join(f'{t:.2f}' for t in ts)}")
    print(f"threads {result['threads']}, load average before {load_before[0]:.2f}, after {load_after[0]:.2f} "
          f"(1 min), people {people}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
