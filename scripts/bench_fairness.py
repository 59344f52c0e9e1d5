"""Fairness benchmark: how fast a cancel takes effect, and how long a client that never reads holds the device.

    python scripts/bench_fairness.py [--size 1024] [--repeats 3] [--busy-stall-timeout 30] [--json OUT]

Runs the real `Server` on loopback with the tiny engine (parity-small checkpoint, synthetic SMPL-X):
1. *cancel latency* at the costliest size the server allows (`--size`, the server's `max_size`):
   the time of one frame at that size, then, for each repeat, a job cancelled half a frame after its
   header, timed from `cancel` sent to `cancelled` received (median). Before cancel reached inside a
   frame, that wait was the rest of the frame;
2. *creditless release*: client A (its own CurveZMQ key) submits with no credits and never reads;
   client B (another key) submits next. Reported: B's wait from its submit to its job's header,
   i.e. how long A's job held the device (the server's `--busy-stall-timeout` plus the cancel).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import zmq

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from blender_addon.core import protocol  # noqa: E402


def _video(path: Path, frames: int, width: int = 320, height: int = 240) -> Path:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            img = np.zeros((height, width, 3), dtype=np.uint8)
            img[40:160, 10 + 8 * i:90 + 8 * i] = (250, 200, 40)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _wait(client, predicate, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for msg in client.poll(max_messages=50, timeout_ms=20):
            if predicate(msg):
                return msg
    raise TimeoutError("no matching message")


def _engine(workdir: Path):
    from backend.engine.stream import Engine
    from tests.support.synthetic_smplx import write_synthetic_smplx

    smplx = write_synthetic_smplx(workdir / "smplx" / "SMPLX_NEUTRAL.npz")
    checkpoint = REPO.parent / "shared" / "fixtures" / "parity-small" / "checkpoint.pth"
    return Engine.from_paths(checkpoint, smplx, device="cpu")


def cancel_latency(engine, workdir: Path, size: int, repeats: int) -> dict:
    from backend.engine.job import iter_job_messages
    from backend.engine.options import JobOptions
    from backend.server.app import Server
    from backend.server.settings import ServerSettings
    from blender_addon.client import Human3RClient

    video = _video(workdir / "clip.mp4", frames=6)
    settings = ServerSettings(bind="tcp://127.0.0.1:0", media_roots=(workdir,), results_dir=workdir / "results",
                              max_size=size, peer_timeout_s=600)
    server = Server(settings, iter_job_messages, engine, options_parser=JobOptions.from_dict)
    endpoint = server.start()
    client = Human3RClient(endpoint, timeout_s=600)
    options = {"size": size, "conf_threshold": 0.0, "max_points_per_frame": 300}
    try:
        client.connect()
        t0 = time.monotonic()
        end = client.run_job(str(video), {**options, "end": 2}, timeout_s=600)
        assert end["type"] == "done", end
        frame_s = (time.monotonic() - t0) / 2
        latencies = []
        for _ in range(repeats):
            client.submit(str(video), options)
            job = _wait(client, lambda m: m["type"] == "accepted", 60)["job"]
            _wait(client, lambda m: m.get("job") == job and m["type"] == "header", 600)
            time.sleep(frame_s / 2)
            sent = time.monotonic()
            client.cancel(job)
            end = _wait(client, lambda m: m.get("job") == job and m["type"] in ("cancelled", "done", "error"), 600)
            latencies.append(time.monotonic() - sent)
            assert end["type"] == "cancelled", end
    finally:
        client.close()
        server.stop()
    return {"size": size, "frame_s": frame_s, "cancel_latency_s": latencies,
            "cancel_latency_median_s": statistics.median(latencies)}


def creditless_release(workdir: Path, busy_stall_timeout: float) -> dict:
    from backend.server.app import Server
    from backend.server.settings import ServerSettings
    from blender_addon.client import Human3RClient

    # a job of 2,000 small frames (40 s if left alone); frames need credits, the hog grants none
    video = _video(workdir / "hog.mp4", frames=2)

    def runner(engine, path, options, job_id, cancel):
        yield protocol.make_message("header", job_id, 0, video={}, options={}, model={}, smplx={}, conventions={},
                                    body_model={})
        for i in range(2000):
            if cancel is not None and cancel.is_set():
                yield protocol.make_message("cancelled", job_id, i + 1, frames=i)
                return
            time.sleep(0.02)
            yield protocol.make_message("frame", job_id, i + 1, index=i, time=i / 10, camera={}, people={},
                                        points={})
        yield protocol.make_message("done", job_id, 2001, frames=2000, people=0)

    server_keys, alice, bob = zmq.curve_keypair(), zmq.curve_keypair(), zmq.curve_keypair()
    settings = ServerSettings(bind="tcp://127.0.0.1:0", media_roots=(workdir,), results_dir=workdir / "results2",
                              curve_secret_key=server_keys[1], curve_public_key=server_keys[0],
                              allowed_client_keys=frozenset({alice[0], bob[0]}), peer_timeout_s=600,
                              busy_stall_timeout_s=busy_stall_timeout)
    server = Server(settings, runner)
    endpoint = server.start()
    ctx = zmq.Context()
    hog = ctx.socket(zmq.DEALER)
    hog.setsockopt(zmq.LINGER, 0)
    hog.curve_serverkey, hog.curve_publickey, hog.curve_secretkey = server_keys[0], alice[0], alice[1]
    hog.connect(endpoint)
    good = Human3RClient(endpoint, curve_server_key=server_keys[0], curve_keys=bob, timeout_s=600)
    try:
        hog.send_multipart(protocol.encode(protocol.make_message("submit", video=str(video), options={}, credits=0)))
        time.sleep(0.5)
        good.connect()
        t0 = time.monotonic()
        good.submit(str(video), {})
        _wait(good, lambda m: m["type"] == "header", 10 * busy_stall_timeout + 60)
        waited = time.monotonic() - t0
    finally:
        good.close()
        hog.close(0)
        ctx.term()
        server.stop()
    return {"busy_stall_timeout_s": busy_stall_timeout, "waiting_client_got_the_device_after_s": waited,
            "default_stall_timeout_s": ServerSettings().stall_timeout_s}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024, help="the costliest size the server allows (max_size)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--busy-stall-timeout", type=float, default=30.0)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        engine = _engine(workdir)
        cancel = cancel_latency(engine, workdir, args.size, args.repeats)
        print(f"size {cancel['size']}: one frame takes {cancel['frame_s']:.2f} s; cancel took effect after "
              f"{cancel['cancel_latency_median_s']:.3f} s (median of {args.repeats}: "
              f"{', '.join(f'{v:.3f}' for v in cancel['cancel_latency_s'])})")
        release = creditless_release(workdir, args.busy_stall_timeout)
        print(f"creditless client: the waiting client got the device after "
              f"{release['waiting_client_got_the_device_after_s']:.1f} s (busy stall timeout "
              f"{args.busy_stall_timeout:g} s; without it {release['default_stall_timeout_s']:g} s)")
    if args.json:
        Path(args.json).write_text(json.dumps({"cancel": cancel, "creditless": release}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
