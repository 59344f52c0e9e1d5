"""Benchmark live input: latency and drops at 30 fps for a model step of a fixed 200 ms and for the tiny model.

    python scripts/bench_live.py                       # udp, rtsp, rtmp x stub, tiny x both senders; 3 runs
    python scripts/bench_live.py --seconds 60 --transports udp --models stub --senders low-latency --runs 1

A sender process (`tests/support/live_sender.py`) streams generated 320x240 H.264 at 30 fps over
loopback; the receiver is `backend.video.live` (keep-latest) feeding `Engine.run` with the parity
fixture's tiny checkpoint and a synthetic SMPL-X body. Each frame carries its index painted into the
image, so every result is matched with the instant its frame was captured. Per model and transport:

- glass: capture in the sender -> result out of the engine (p50 / p95 / max, seconds);
- added: glass minus that frame's model step: what the live path adds (encode, transport, demux,
  keep-latest slot, preprocessing, post-processing). Target: p95 <= 50 ms over the model step;
- path: frame out of the decoder -> result, minus the model step (the part this code controls);
- p95 of its parts (ms): xport = capture -> frame out of the decoder (encode, mux, loopback, demux,
  decode); pre = decoder -> model step starts (waiting in the keep-latest slot: the newest frame is
  0-33 ms old at 30 fps when the model comes for it; then RGB conversion and preprocessing);
  post = model step -> result (post-processing);
- drops: share of decoded frames the model never saw (keep-latest; 1 - model rate / 30).
- slope: latency trend over the run (s/s); ~0 means bounded, a queue grows by ~0.8 s/s here.

Each case runs with two sender configurations (`live_sender.SENDER_SETTINGS`, printed first): FFmpeg's
muxer defaults, and the low-latency settings README asks of a user's sender (over UDP MPEG-TS the
defaults cost one frame interval: video PES packets without a length). Cases are interleaved, one
round of every case per run, and the summary gives the median over the runs of each figure.

The "stub" replaces only the network call (`tests/support/live_rig.FixedStep`); the tiny model runs
the real network. Needs no GPU; on a shared CPU the figures include waiting for the CPU: compare
runs made side by side, and read `load` (1-minute load average) printed with each row.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def run_one(engine, options, transport: str, seconds: float, step_s: float | None, settings: str) -> dict:
    from backend.video.live import LiveSource, LiveSpec
    from tests.support.live_rig import FixedStep, Loopback, Sender

    loop = Loopback.make(transport)
    rows = []  # (painted index, result wall time, decode->result s, decoded at, result at (perf_counter))
    with FixedStep(engine, options, step_s) as stub:
        sender = Sender(loop, seconds=seconds + 2.0, settings=settings)
        try:
            with LiveSource(LiveSpec("bench", loop.receive_url, reconnect_s=5.0, connect_s=60.0)) as source:
                results = engine.run(source, options)
                stop_at = time.monotonic() + seconds
                for _ in results:
                    now = time.perf_counter()
                    rows.append((stub.calls[-1][0], time.time(), now - source.taken_decoded_at,
                                 source.taken_decoded_at, now))
                    if time.monotonic() > stop_at:
                        break
                results.close()
                stats = source.stats
        finally:
            sender.stop()
    steps = np.array([b - a for a, b in stub.durations])[1:]
    glass = np.array([t - sender.captured_at(i) for i, t, *_ in rows])[1:]  # the first waited for the join
    path = np.array([r[2] for r in rows])[1:]
    t = np.array([r[1] for r in rows])[1:]
    n = min(len(steps), len(glass))
    added, path = glass[:n] - steps[:n], path[:n] - steps[:n]
    xport = glass - np.array([r[2] for r in rows])[1:]
    pre = np.array([a - r[3] for (a, _), r in zip(stub.durations[1:], rows[1:])])
    post = np.array([r[4] - b for (_, b), r in zip(stub.durations[1:], rows[1:])])
    return {
        "model": "stub" if step_s else "tiny", "transport": transport, "sender": settings, "frames": len(rows),
        "step_p50": float(np.median(steps)),
        "glass_p50": float(np.median(glass)), "glass_p95": float(np.percentile(glass, 95)),
        "glass_max": float(glass.max()),
        "added_p50": float(np.median(added)), "added_p95": float(np.percentile(added, 95)),
        "path_p50": float(np.median(path)), "path_p95": float(np.percentile(path, 95)),
        "xport_p95": float(np.percentile(xport, 95)), "pre_p95": float(np.percentile(pre, 95)),
        "post_p95": float(np.percentile(post, 95)),
        "drop_rate": stats.dropped / max(1, stats.decoded),
        "slope": float(np.polyfit(t - t[0], glass, 1)[0]) if len(t) > 2 else float("nan"),
        "load": os.getloadavg()[0],
    }


COLUMNS = ("frames", "step_p50", "glass_p50", "glass_p95", "glass_max", "added_p50", "added_p95", "path_p50",
           "path_p95", "xport_p95", "pre_p95", "post_p95", "drop_rate", "slope", "load")


def print_header() -> None:
    print(f"{'model':5} {'via':5} {'sender':14} {'frames':>6} {'step':>6} {'glass p50/p95/max (s)':>22} "
          f"{'added p50/p95':>14} {'path p50/p95':>13} {'xport/pre/post':>14} {'drops':>6} {'slope':>7} {'load':>5}")


def print_row(r: dict) -> None:
    print(f"{r['model']:5} {r['transport']:5} {r['sender']:14} {r['frames']:6.0f} {r['step_p50']:6.3f} "
          f"{r['glass_p50']:6.3f} / {r['glass_p95']:5.3f} / {r['glass_max']:5.3f} "
          f"{r['added_p50']:6.3f}/{r['added_p95']:6.3f} {r['path_p50']:6.3f}/{r['path_p95']:6.3f} "
          f"{r['xport_p95'] * 1e3:4.0f}/{r['pre_p95'] * 1e3:4.0f}/{r['post_p95'] * 1e3:4.0f} "
          f"{r['drop_rate']:6.1%} {r['slope']:7.4f} {r['load']:5.1f}", flush=True)


def medians(rows: list[dict]) -> list[dict]:
    """One row per (model, transport, sender): the median over the runs of every figure."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["model"], r["transport"], r["sender"]), []).append(r)
    return [{"model": m, "transport": t, "sender": s, "runs": len(g),
             **{c: float(np.median([r[c] for r in g])) for c in COLUMNS}} for (m, t, s), g in groups.items()]


def main(argv: list[str] | None = None) -> int:
    from tests.support.live_sender import SENDER_SETTINGS, describe

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=10.0, help="seconds streamed per case")
    p.add_argument("--runs", type=int, default=3, help="rounds of every case; the summary takes medians")
    p.add_argument("--transports", default="udp,rtsp,rtmp")
    p.add_argument("--models", default="stub,tiny")
    p.add_argument("--senders", default="ffmpeg-default,low-latency", help=f"of {', '.join(SENDER_SETTINGS)}")
    p.add_argument("--json", help="also write the rows (every run, then the medians) here")
    args = p.parse_args(argv)
    senders = args.senders.split(",")
    for name in senders:
        if name not in SENDER_SETTINGS:
            p.error(f"unknown sender settings {name!r}; choose from {', '.join(SENDER_SETTINGS)}")

    import tempfile

    from backend.engine.options import JobOptions
    from backend.engine.stream import Engine
    from tests.conftest import shared_path
    from tests.support.live_rig import SENDER_GOP, SENDER_SIZE
    from tests.support.synthetic_smplx import write_synthetic_smplx

    smplx = write_synthetic_smplx(Path(tempfile.mkdtemp()) / "smplx" / "SMPLX_NEUTRAL.npz", seed=0)
    engine = Engine.from_paths(shared_path() / "fixtures" / "parity-small" / "checkpoint.pth", smplx, device="cpu")
    engine.use_cpu_threads()
    options = JobOptions.from_dict({"size": 112, "reset_interval": 1_000_000, "conf_threshold": 0.0})
    print(f"input: {SENDER_SIZE[0]}x{SENDER_SIZE[1]} H.264 at 30 fps over loopback; {args.seconds:g} s per case, "
          f"{args.runs} run(s); senders:")
    for name in senders:
        print(f"  {describe(name, SENDER_GOP)}")
    rows = []
    print_header()
    for _ in range(args.runs):
        for model in args.models.split(","):
            for transport in args.transports.split(","):
                for sender in senders:
                    rows.append(run_one(engine, options, transport, args.seconds, 0.2 if model == "stub" else None,
                                        sender))
                    print_row(rows[-1])
    summary = medians(rows)
    print(f"\nmedians of {args.runs} run(s) (target: added p95 <= 0.050 s)")
    print_header()
    for r in summary:
        print_row(r)
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": rows, "medians": summary}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
