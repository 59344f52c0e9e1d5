"""Transport benchmark: what the wire adds per frame, and how that compares with inference.

    python scripts/bench_transport.py [--frames 200] [--video PATH] [--engine-frames 8] [--json OUT]

Measures on loopback TCP (tcp://127.0.0.1, ROUTER -> DEALER like the server):
1. per-frame *latency* of encode + send + recv + decode, one message in flight (median, p95), and
   pipelined *throughput* (MB/s, frames/s), for a typical frame (4 people, 10,000 points) and a
   dense frame (512x288 = 147,456 points);
2. the same through the real `Server` and `Human3RClient` (credits, .h3r writing, socket thread);
3. the tiny engine's per-frame inference time (parity-small checkpoint, synthetic SMPL-X model) on
   the first frames of a video, and the transport time of the very frame messages it produced,
   as a percentage (target: <= 5 %).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import zmq

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from blender_addon.core import protocol  # noqa: E402


def frame_message(n_people: int, n_points: int, seed: int = 0) -> dict:
    """A frame message with the engine's field layout (float32 SMPL-X, uint8 colours)."""
    rng = np.random.default_rng(seed)
    f4 = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    n = n_people
    return protocol.make_message(
        "frame", "bench", 1, index=0, time=0.0,
        camera={"cam_to_world": np.eye(4, dtype=np.float32), "K": np.eye(3, dtype=np.float32), "width": 1920,
                "height": 1080, "K_model": np.eye(3, dtype=np.float32)},
        people={"id": np.arange(n, dtype=np.int32), "score": np.ones(n, np.float32), "global_orient": f4(n, 3),
                "body_pose": f4(n, 21, 3), "left_hand_pose": f4(n, 15, 3), "right_hand_pose": f4(n, 15, 3),
                "jaw_pose": f4(n, 3), "leye_pose": f4(n, 3), "reye_pose": f4(n, 3), "betas": f4(n, 10),
                "expression": f4(n, 10), "transl": f4(n, 3), "head_xy": f4(n, 2)},
        points={"xyz": f4(n_points, 3), "rgb": rng.integers(0, 256, (n_points, 3), dtype=np.uint8),
                "conf": f4(n_points)})


class LoopbackPair:
    """ROUTER (server side) bound on 127.0.0.1 and a connected DEALER (client side)."""

    def __init__(self):
        self.ctx = zmq.Context()
        self.router = self.ctx.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.LINGER, 0)
        self.router.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self.router.bind("tcp://127.0.0.1:*")
        self.dealer = self.ctx.socket(zmq.DEALER)
        self.dealer.setsockopt(zmq.LINGER, 0)
        self.dealer.connect(self.router.getsockopt_string(zmq.LAST_ENDPOINT))
        self.dealer.send(b"hi")
        assert self.router.poll(5000)
        self.identity = self.router.recv_multipart()[0]

    def send_recv(self, msg: dict) -> float:
        """encode + send + recv + decode of one message; returns seconds."""
        t0 = time.perf_counter()
        self.router.send_multipart([self.identity, *protocol.encode(msg)], copy=False)
        out = protocol.decode(self.dealer.recv_multipart(copy=False))
        t1 = time.perf_counter()
        assert out["type"] == msg["type"]
        return t1 - t0

    def throughput(self, msg: dict, count: int) -> tuple[float, float]:
        """Pipelined: a sender thread encodes and sends `count` messages; returns (seconds, bytes)."""
        nbytes = protocol.total_bytes(protocol.encode(msg))

        def send():
            for _ in range(count):
                self.router.send_multipart([self.identity, *protocol.encode(msg)], copy=False)

        t0 = time.perf_counter()
        sender = threading.Thread(target=send)
        sender.start()
        for _ in range(count):
            protocol.decode(self.dealer.recv_multipart(copy=False))
        sender.join()
        return time.perf_counter() - t0, nbytes * count

    def close(self):
        self.router.close(0)
        self.dealer.close(0)
        self.ctx.term()


def bench_codec_and_socket(name: str, msg: dict, frames: int) -> dict:
    pair = LoopbackPair()
    try:
        for _ in range(5):
            pair.send_recv(msg)
        lat = sorted(pair.send_recv(msg) for _ in range(frames))
        seconds, nbytes = pair.throughput(msg, frames)
    finally:
        pair.close()
    size = protocol.total_bytes(protocol.encode(msg))
    return {"frame": name, "bytes_per_frame": size, "latency_ms_median": 1e3 * statistics.median(lat),
            "latency_ms_p95": 1e3 * lat[int(0.95 * (len(lat) - 1))], "throughput_MBps": nbytes / seconds / 1e6,
            "throughput_fps": frames / seconds}


def bench_through_server(name: str, msg: dict, frames: int, results_dir: Path) -> dict:
    """Frames/s and MB/s through Server + Human3RClient (credits, .h3r writing included)."""
    from backend.server.app import Server
    from backend.server.settings import ServerSettings
    from blender_addon.client import Human3RClient

    def runner(engine, video, options, job_id, cancel):
        yield protocol.make_message("header", job_id, 0, video={}, options={}, model={}, smplx={}, conventions={},
                                    body_model={})
        for i in range(frames):
            yield {**msg, "job": job_id, "seq": i + 1, "index": i}
        yield protocol.make_message("done", job_id, frames + 1, frames=frames, people=0)

    video = results_dir / "bench.mp4"
    video.write_bytes(b"\0" * 64)
    server = Server(ServerSettings(bind="tcp://127.0.0.1:0", media_roots=(results_dir,), results_dir=results_dir),
                    runner)
    endpoint = server.start()
    try:
        with Human3RClient(endpoint, credit_window=32) as client:
            client.connect()
            t0 = time.perf_counter()
            end = client.run_job(str(video), {}, timeout_s=300)
            seconds = time.perf_counter() - t0
        assert end["type"] == "done", end
    finally:
        server.stop()
    size = protocol.total_bytes(protocol.encode(msg))
    return {"frame": name, "server_fps": frames / seconds, "server_MBps": size * frames / seconds / 1e6,
            "server_ms_per_frame": 1e3 * seconds / frames}


def bench_engine(video: str | None, engine_frames: int, size: int, workdir: Path) -> dict:
    """Tiny engine per-frame time and the transport time of its own frame messages."""
    import torch

    from backend.engine.job import iter_job_messages
    from backend.engine.options import JobOptions
    from backend.engine.stream import Engine
    from tests.support.synthetic_smplx import write_synthetic_smplx

    video = video or str(Path("/work/shared/videos/tennis.mp4"))
    smplx = write_synthetic_smplx(workdir / "smplx" / "SMPLX_NEUTRAL.npz")
    engine = Engine.from_paths(REPO.parent / "shared" / "fixtures" / "parity-small" / "checkpoint.pth", smplx,
                               device="auto")
    options = JobOptions.from_dict({"end": engine_frames + 1, "size": size, "conf_threshold": 0.0,
                                  "remove_humans_from_points": False})
    stamps, frames = [], []
    t_prev = time.perf_counter()
    for msg in iter_job_messages(engine, video, options, "bench", None):
        if msg["type"] == "frame":
            now = time.perf_counter()
            stamps.append(now - t_prev)
            t_prev = now
            frames.append(msg)
        elif msg["type"] == "error":
            raise RuntimeError(msg["message"])
    per_frame = statistics.median(stamps[1:]) if len(stamps) > 1 else stamps[0]  # skip warm-up
    pair = LoopbackPair()
    try:
        for m in frames[:3]:
            pair.send_recv(m)
        transport = statistics.median(pair.send_recv(m) for m in frames for _ in range(5))
    finally:
        pair.close()
    points = int(np.median([len(m["points"]["xyz"]) for m in frames]))
    return {"device": str(engine.device), "torch_threads": torch.get_num_threads(), "size": size,
            "engine_ms_per_frame": 1e3 * per_frame, "engine_points_per_frame": points,
            "engine_frame_bytes": int(np.median([protocol.total_bytes(protocol.encode(m)) for m in frames])),
            "transport_ms_per_engine_frame": 1e3 * transport,
            "transport_pct_of_inference": 100.0 * transport / per_frame}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200, help="messages per measurement")
    parser.add_argument("--video", default=None, help="video for the engine part (default: shared tennis.mp4)")
    parser.add_argument("--engine-frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=512, help="engine input size for the tiny preset")
    parser.add_argument("--skip-engine", action="store_true")
    parser.add_argument("--json", default=None, help="also write the figures here")
    args = parser.parse_args(argv)

    results: dict = {"codec_socket": [], "server": []}
    cases = {"typical (4 people, 10k points)": frame_message(4, 10_000),
             "dense (4 people, 512x288 = 147,456 points)": frame_message(4, 512 * 288)}
    with tempfile.TemporaryDirectory() as tmp:
        for name, msg in cases.items():
            r = bench_codec_and_socket(name, msg, args.frames)
            results["codec_socket"].append(r)
            print(f"{name}: {r['bytes_per_frame'] / 1e6:.2f} MB/frame; latency median {r['latency_ms_median']:.3f} ms "
                  f"(p95 {r['latency_ms_p95']:.3f}); throughput {r['throughput_MBps']:.0f} MB/s = "
                  f"{r['throughput_fps']:.0f} frames/s")
            s = bench_through_server(name, msg, max(20, args.frames // 2), Path(tmp))
            results["server"].append(s)
            print(f"  through Server+Human3RClient (credits, .h3r written): {s['server_fps']:.0f} frames/s, "
                  f"{s['server_MBps']:.0f} MB/s, {s['server_ms_per_frame']:.3f} ms/frame")
        if not args.skip_engine:
            e = bench_engine(args.video, args.engine_frames, args.size, Path(tmp))
            results["engine"] = e
            typical = results["codec_socket"][0]["latency_ms_median"]
            dense = results["codec_socket"][1]["latency_ms_median"]
            e["typical_pct_of_inference"] = 100 * typical / e["engine_ms_per_frame"]
            e["dense_pct_of_inference"] = 100 * dense / e["engine_ms_per_frame"]
            print(f"tiny engine on {e['device']} ({e['torch_threads']} threads, size {e['size']}): "
                  f"{e['engine_ms_per_frame']:.1f} ms/frame, {e['engine_points_per_frame']} points, "
                  f"{e['engine_frame_bytes'] / 1e3:.0f} kB/frame")
            print(f"transport of its frames: {e['transport_ms_per_engine_frame']:.3f} ms/frame = "
                  f"{e['transport_pct_of_inference']:.2f} % of inference (target <= 5 %); a typical frame "
                  f"would be {e['typical_pct_of_inference']:.2f} %, a dense one {e['dense_pct_of_inference']:.2f} %")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
