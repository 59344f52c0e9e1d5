"""`human3r convert-checkpoint IN.pth -o OUT`: an official checkpoint -> OUT.safetensors + OUT.json, without
running pickled code (`backend.model.checkpoint.convert`)."""
from __future__ import annotations

import argparse
import sys

from backend.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the subcommand's arguments: ``input``, ``-o/--output``, ``--force``."""
    parser.add_argument("input", help="checkpoint to convert (human3r.pth; .safetensors/.json are accepted too)")
    parser.add_argument("-o", "--output", required=True,
                        help="output name: OUT.safetensors is used as given, otherwise '.safetensors' is appended; "
                             "the JSON config is written beside it with the same stem")
    parser.add_argument("--force", action="store_true", help="overwrite existing output files")
    parser.add_argument("--strict-checkpoint", action="store_true",
                        help="refuse a checkpoint holding keys the model does not use (default: leave them out, warn)")


def _preset_name(config_dict: dict) -> str | None:
    from backend.config import PRESETS, ModelConfig

    config = ModelConfig.from_dict(config_dict)
    return next((name for name, preset in PRESETS.items() if preset == config), None)


def run(args: argparse.Namespace) -> int:
    """Convert `args.input` to `args.output`; prints a summary. Returns 0 on success, 1 on a checkpoint error
    (`EXIT_FAILED`), 2 when the outputs exist and ``--force`` was not given (`EXIT_USAGE`). Torch is imported here, not at module import,
    so `human3r --help` stays fast."""
    from backend.model.checkpoint import CheckpointError, convert_checkpoint, converted_paths

    weights, sidecar = converted_paths(args.output)
    existing = [str(p) for p in (weights, sidecar) if p.exists()]
    if existing and not args.force:
        print(f"error: output exists: {', '.join(existing)}; pass --force to overwrite it or choose another -o",
              file=sys.stderr)
        return EXIT_USAGE
    try:
        summary = convert_checkpoint(args.input, args.output, strict=args.strict_checkpoint)
    except CheckpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    preset = _preset_name(summary["config"])
    print(f"converted {summary['input']} ({summary['input_format']}, sha256 {summary['source_digest'][:16]}...)")
    print(f"  weights: {summary['safetensors']} ({summary['num_keys']} tensors, "
          f"{summary['num_parameters']:,} values, sha256 {summary['digest'][:16]}...)")
    if summary["ignored_keys"]:
        print(f"  left out {len(summary['ignored_keys'])} keys the model does not use", file=sys.stderr)
    print(f"  config:  {summary['json']} ({'preset ' + preset if preset else 'custom sizes'})")
    return EXIT_OK
