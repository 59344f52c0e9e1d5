"""The `human3r` command line: the subcommand registry, the parser and `main`.

Every command module (`COMMANDS`: module path, one-line help) exposes `add_arguments(parser)` and
`run(args) -> int` (an exit status, see `backend.cli.common`) and keeps heavy imports (torch, the
model) inside `run`, so `human3r --help` and argument errors stay fast. Shared flags live in
`backend.cli.common`, the model option flags next to `JobOptions` (`backend.engine.options`).
"""
from __future__ import annotations

import argparse
import importlib
import sys

from backend.cli.common import EXIT_INTERRUPTED

# subcommand -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "infer": ("backend.cli.infer", "run a video (or image folder) to a .h3r result file"),
    "serve": ("backend.cli.serve", "start the ZeroMQ inference server"),
    "convert-checkpoint": ("backend.cli.convert",
                           "turn an official human3r.pth into safetensors + JSON without running pickled code"),
    "doctor": ("backend.cli.doctor", "check torch/device, checkpoint, SMPL-X file and port"),
    "download": ("backend.cli.download", "fetch the official checkpoint; explain the SMPL-X registration"),
    "keys": ("backend.cli.keys", "make a CurveZMQ key pair for binding beyond loopback"),
    "refine": ("backend.cli.refine", "clean up a result file: floor alignment, smoothing, foot lock"),
    "batch": ("backend.cli.batch", "run many clips on every GPU of a machine or a Ray cluster (needs the farm extra)"),
    "export": ("backend.cli.export", "SMPL-X files for other tools: AMASS-style .npz per person, camera JSON/NPZ"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="human3r", description="Human3R for Blender: video -> cameras, "
                                     "SMPL-X people and scene points")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(cmd)
        cmd.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args._module.run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
