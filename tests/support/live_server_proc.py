"""A server process for add-on live tests: the real `Server` with one live source 'cam' fed by a
`live_sender` process over UDP loopback, and the tiny engine's model step fixed at `--step` seconds
(`live_rig.FixedStep`). Prints "listening on ENDPOINT" when ready; stops when stdin closes.

    python -m tests.support.live_server_proc --checkpoint C --smplx S --results-dir D [--seconds 60]
"""
from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--smplx", required=True)
    p.add_argument("--results-dir", required=True)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--step", type=float, default=0.2)
    args = p.parse_args(argv)

    from backend.engine.job import iter_job_messages
    from backend.engine.options import JobOptions
    from backend.engine.stream import Engine
    from backend.server import live_sources
    from backend.server.app import Server
    from backend.server.settings import ServerSettings
    from backend.video.live import LiveSpec
    from tests.support.live_rig import FixedStep, Loopback, Sender

    engine = Engine.from_paths(args.checkpoint, args.smplx, device="cpu")
    options = JobOptions.from_dict({"size": 112, "reset_interval": 1_000_000})
    loop = Loopback.make("udp")
    specs = live_sources.table([LiveSpec("cam", loop.receive_url)])
    with FixedStep(engine, options, args.step):
        server = Server(ServerSettings(bind="tcp://127.0.0.1:0", results_dir=args.results_dir, heartbeat_s=0.5,
                                       live_sources=specs),
                        iter_job_messages, engine, options_parser=JobOptions.from_dict)
        endpoint = server.start()
        sender = Sender(loop, seconds=args.seconds)
        print(f"listening on {endpoint}", flush=True)
        try:
            sys.stdin.read()  # until the test closes our stdin (or kills us)
        finally:
            sender.stop()
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
