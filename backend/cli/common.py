"""What the `human3r` commands share: exit statuses, the model-file flags and their checks, and the
wording of a model that cannot be loaded.

Exit status of every command (one table, so `infer` and `infer --server` agree):

    0   done
    1   processing failed (or a command's own failure, e.g. a checkpoint that cannot be converted)
    2   bad option or flag (nothing was started)
    3   checkpoint or SMPL-X model missing or unusable
    4   unreadable video (or one the server cannot find or may not read)
    130 interrupted or cancelled (Ctrl-C here, or a cancel on the server); partial results are kept

Nothing here imports torch or the engine, so `human3r --help` and argument errors stay fast.
"""
from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from backend.model_files import CHECKPOINT_ENV, DEFAULT_CHECKPOINT, DEFAULT_SMPLX, SMPLX_ENV
from blender_addon.core.protocol import ErrorCode

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_SETUP, EXIT_VIDEO, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130

# a job's `error` code -> exit status (codes not listed: EXIT_FAILED)
EXIT_FOR_ERROR_CODE: dict[str, int] = {
    ErrorCode.BAD_MESSAGE.value: EXIT_USAGE,
    ErrorCode.BAD_OPTIONS.value: EXIT_USAGE,
    ErrorCode.BAD_VIDEO.value: EXIT_VIDEO,
    ErrorCode.NOT_FOUND.value: EXIT_VIDEO,
    ErrorCode.PATH_NOT_ALLOWED.value: EXIT_VIDEO,
}


def exit_status(end: Mapping[str, Any] | None) -> int:
    """The exit status for a job's final message (`done` / `error` / `cancelled`; None = no end)."""
    if end is None:
        return EXIT_FAILED
    if end["type"] == "done":
        return EXIT_OK
    if end["type"] == "cancelled":
        return EXIT_INTERRUPTED
    return EXIT_FOR_ERROR_CODE.get(end.get("code"), EXIT_FAILED)


def add_model_file_arguments(parser: argparse.ArgumentParser) -> None:
    """--checkpoint, --smplx, --device, --threads and --no-graphs, shared by the commands that run the model."""
    parser.add_argument("--checkpoint", default=None,
                        help=f"official human3r.pth or converted .safetensors (default: ${CHECKPOINT_ENV} or "
                             f"{DEFAULT_CHECKPOINT})")
    parser.add_argument("--smplx", default=None,
                        help=f"SMPLX_NEUTRAL.npz or a folder holding it (default: ${SMPLX_ENV} or {DEFAULT_SMPLX})")
    parser.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:N, mps")
    parser.add_argument("--strict-checkpoint", action="store_true",
                        help="refuse a checkpoint holding keys the model does not use (default: warn and ignore them)")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for a model on the CPU (default: all cores but one, which decodes the video)")
    parser.add_argument("--no-graphs", dest="graphs", action="store_false", default=None,
                        help="run the model eagerly: no torch.compile / CUDA graphs (default on CUDA: compiled "
                             "stages, captured per person count on first use)")


def model_file_argument_error(args: argparse.Namespace) -> str | None:
    """What is wrong with the arguments of `add_model_file_arguments` that can be told before loading
    anything, or None."""
    if args.threads is not None and args.threads < 1:
        return f"--threads must be >= 1, got {args.threads}"
    return None


def missing_model_files_error(args: argparse.Namespace) -> str | None:
    """Every missing model file (checkpoint and SMPL-X) in one message, told before loading anything,
    or None when both exist."""
    from backend.model_files import missing_model_files

    missing = missing_model_files(args.checkpoint, args.smplx)
    if not missing:
        return None
    head = f"{len(missing)} model files are missing:" if len(missing) > 1 else "a model file is missing:"
    return "\n".join([head, *(f"- {text}" for text in missing), "(`human3r doctor` checks everything)"])


def load_engine(args: argparse.Namespace, precision: str):
    """(the engine of `add_model_file_arguments`' flags, None), or (None, what to tell the user) when
    loading failed for a setup reason (`model_load_error`); any other exception propagates."""
    from backend.engine.stream import Engine

    try:
        return Engine.from_paths(args.checkpoint, args.smplx, device=args.device, precision=precision,
                                 strict_checkpoint=args.strict_checkpoint, graphs=args.graphs), None
    except Exception as exc:
        if (message := model_load_error(exc, args.checkpoint)) is None:
            raise
        return None, message


def model_load_error(exc: BaseException, checkpoint_arg: str | None) -> str | None:
    """What to tell the user when `Engine.from_paths` raised `exc` (the message ends with what to do),
    or None for an exception that is not a setup problem (a bug: let it propagate).

    A checkpoint that is missing, corrupt, of another model or of other sizes, a missing SMPL-X file, a
    device that does not exist: all exit with `EXIT_SETUP`, from `infer` and from `serve` alike.
    """
    from backend.model.checkpoint import CheckpointError
    from backend.model_files import resolve_checkpoint_path

    if isinstance(exc, CheckpointError):  # its text carries a hint
        return f"cannot load the checkpoint {resolve_checkpoint_path(checkpoint_arg)}:\n{exc}"
    if isinstance(exc, (ValueError, OSError)):  # SmplxNotFoundError (with instructions), bad device, I/O
        return f"{exc}\n(`human3r doctor` says what is missing)"
    return None

