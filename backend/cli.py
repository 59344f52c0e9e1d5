"""The `human3r` command line: one subcommand per job, each defined in its own area's module.

Every command module exposes `add_arguments(parser)` and `run(args) -> int` and keeps heavy imports
(torch, the model) inside `run`, so `human3r --help` and argument errors stay fast.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# subcommand -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "infer": ("backend.engine.infer_cli", "run a video (or image folder) to a .h3r result file"),
    "serve": ("backend.server.serve_cli", "start the ZeroMQ inference server"),
    "convert-checkpoint": ("backend.model.checkpoint_cli",
                           "turn an official human3r.pth into safetensors + JSON without running pickled code"),
    "doctor": ("backend.engine.doctor_cli", "check torch/device, checkpoint, SMPL-X file and port"),
    "download": ("backend.engine.download_cli", "fetch the official checkpoint; explain the SMPL-X registration"),
    "keys": ("backend.server.keys_cli", "make a CurveZMQ key pair for binding beyond loopback"),
    "batch": ("backend.batch_cmd", "run many clips on every GPU of a machine or a Ray cluster (needs the farm extra)"),
}


def add_model_file_arguments(parser: argparse.ArgumentParser) -> None:
    """--checkpoint, --smplx, --device and --threads, shared by the commands that run the model."""
    parser.add_argument("--checkpoint", default=None,
                        help="official human3r.pth or converted .safetensors (default: $HUMAN3R_CHECKPOINT or "
                             "~/.cache/human3r/human3r.pth)")
    parser.add_argument("--smplx", default=None,
                        help="SMPLX_NEUTRAL.npz or a folder holding it (default: $HUMAN3R_SMPLX or "
                             "~/.cache/human3r/smplx/SMPLX_NEUTRAL.npz)")
    parser.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:N, mps")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for a model on the CPU (default: all cores but one, which decodes the video)")


def model_file_argument_error(args: argparse.Namespace) -> str | None:
    """What is wrong with the arguments of `add_model_file_arguments` that can be told before loading
    anything, or None."""
    if args.threads is not None and args.threads < 1:
        return f"--threads must be >= 1, got {args.threads}"
    return None


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
        return 130


if __name__ == "__main__":
    sys.exit(main())
