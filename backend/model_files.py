"""Where the model's files are: the Human3R checkpoint and the user's SMPL-X body model.

One rule per file, used by every command (`infer`, `serve`, `doctor`, `download`) and the engine.
Only the standard library is imported here, so `human3r doctor` and `human3r download` find the
files without loading torch or the engine.

- Checkpoint: an explicit path (`--checkpoint`), else `$HUMAN3R_CHECKPOINT`, else
  `~/.cache/human3r/human3r.pth`, or the converted `human3r.safetensors` beside it when only that
  one exists.
- SMPL-X (licensed per user, registration at https://smpl-x.is.tue.mpg.de, so it never ships with
  the project): an explicit path (`--smplx`), else `$HUMAN3R_SMPLX`, else
  `~/.cache/human3r/smplx/SMPLX_NEUTRAL.npz`. A path may name the `.npz` itself or a folder holding
  `SMPLX_NEUTRAL.npz` or `smplx/SMPLX_NEUTRAL.npz`.
"""
from __future__ import annotations

import os
from pathlib import Path

CHECKPOINT_ENV = "HUMAN3R_CHECKPOINT"
DEFAULT_CHECKPOINT = Path("~/.cache/human3r/human3r.pth")

SMPLX_ENV = "HUMAN3R_SMPLX"
DEFAULT_SMPLX = Path("~/.cache/human3r/smplx/SMPLX_NEUTRAL.npz")
SMPLX_FILE_NAME = "SMPLX_NEUTRAL.npz"
SMPLX_REGISTRATION_URL = "https://smpl-x.is.tue.mpg.de"


def configured_checkpoint_path() -> Path:
    """Where the checkpoint belongs when no path is given: `$HUMAN3R_CHECKPOINT`, else
    ~/.cache/human3r/human3r.pth (`human3r download` saves there)."""
    return Path(os.environ.get(CHECKPOINT_ENV) or DEFAULT_CHECKPOINT).expanduser()


def resolve_checkpoint_path(path: str | os.PathLike | None = None) -> Path:
    """The checkpoint to load: `path`, else `configured_checkpoint_path()`; for the default location, a
    converted `human3r.safetensors` beside it when the `.pth` is absent. Existence is checked by the
    checkpoint loader."""
    if path:
        return Path(path).expanduser()
    configured = configured_checkpoint_path()
    if os.environ.get(CHECKPOINT_ENV):
        return configured
    converted = configured.with_suffix(".safetensors")
    return converted if not configured.exists() and converted.exists() else configured


class SmplxNotFoundError(FileNotFoundError):
    """The SMPL-X file is missing; the message explains how to get it and where to put it."""


def how_to_get_smplx(looked_at: Path | None = None) -> str:
    """Human-readable instructions for obtaining the SMPL-X neutral model."""
    where = f"No SMPL-X model at {looked_at}.\n" if looked_at else ""
    return (
        f"{where}The SMPL-X body model is licensed per user and is not bundled. To get it:\n"
        f"  1. register (free for research) at {SMPLX_REGISTRATION_URL} and log in;\n"
        f"  2. download 'SMPL-X v1.1' (the NPZ models) and unpack it;\n"
        f"  3. copy smplx/{SMPLX_FILE_NAME} to {DEFAULT_SMPLX} (or pass --smplx PATH, or set {SMPLX_ENV}=PATH;\n"
        f"     PATH may be the .npz file or a folder containing {SMPLX_FILE_NAME} or smplx/{SMPLX_FILE_NAME})."
    )


def resolve_smplx_path(path: str | os.PathLike | None = None) -> Path:
    """Find the SMPL-X neutral `.npz`; raise `SmplxNotFoundError` (with instructions) if absent.

    Order: `path`, `$HUMAN3R_SMPLX`, `~/.cache/human3r/smplx/SMPLX_NEUTRAL.npz`.
    """
    given = path if path else os.environ.get(SMPLX_ENV) or DEFAULT_SMPLX
    candidate = Path(given).expanduser()
    if candidate.is_dir():
        for sub in (SMPLX_FILE_NAME, f"smplx/{SMPLX_FILE_NAME}"):
            if (candidate / sub).is_file():
                return (candidate / sub).resolve()
        raise SmplxNotFoundError(how_to_get_smplx(candidate / SMPLX_FILE_NAME))
    if candidate.is_file():
        return candidate.resolve()
    raise SmplxNotFoundError(how_to_get_smplx(candidate))


def how_to_get_checkpoint(looked_at: Path) -> str:
    """Human-readable instructions for obtaining the Human3R checkpoint."""
    return (f"Human3R checkpoint not found at {looked_at}. Run `human3r download`, or fetch human3r.pth from "
            f"https://huggingface.co/faneggg/human3r and pass --checkpoint PATH (or set {CHECKPOINT_ENV}).")


def missing_model_files(checkpoint: str | os.PathLike | None = None,
                        smplx: str | os.PathLike | None = None) -> list[str]:
    """One message per model file that is absent (the checkpoint, then SMPL-X); empty when both exist.

    Only existence is checked (no file is read), so a command can report every missing file at once
    before it spends time loading anything.
    """
    missing = []
    checkpoint_path = resolve_checkpoint_path(checkpoint)
    if not checkpoint_path.is_file():
        missing.append(how_to_get_checkpoint(checkpoint_path))
    try:
        resolve_smplx_path(smplx)
    except SmplxNotFoundError as exc:
        missing.append(str(exc))
    return missing
