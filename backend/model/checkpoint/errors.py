"""Exceptions raised while reading, checking and loading Human3R checkpoints.

Every error says what is wrong; `hint` says what the user can do about it. `str(err)` contains both,
so a CLI can print the exception as is.
"""
from __future__ import annotations

DOWNLOAD_HINT = (
    "get the official checkpoint `human3r.pth` from the Human3R release on Hugging Face "
    "(or run `human3r download`), then pass its path"
)


class CheckpointError(Exception):
    """Base class: a checkpoint could not be used. `hint` is a short suggestion (may be empty)."""

    def __init__(self, message: str, hint: str = "") -> None:
        self.message = message
        self.hint = hint
        super().__init__(message)

    def __str__(self) -> str:
        return f"{self.message}\nhint: {self.hint}" if self.hint else self.message


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """The checkpoint path does not exist (or is not a file)."""


class UnsupportedFormatError(CheckpointError):
    """The file extension (or content) is not one of the supported checkpoint formats."""


class CorruptCheckpointError(CheckpointError):
    """The file is truncated or damaged (bad zip, bad pickle stream, bad safetensors header...)."""


class UnsafeCheckpointError(CheckpointError):
    """The pickle inside a .pth names a global outside the allow-list (it could run code).

    `global_name` is the refused ``module.name``; nothing from the pickle was imported or called.
    """

    def __init__(self, global_name: str, message: str | None = None, hint: str = "") -> None:
        self.global_name = global_name
        super().__init__(
            message or f"refused to unpickle global {global_name!r}: it is not on the allow-list of "
            "harmless checkpoint contents (tensors, containers, OmegaConf configs)",
            hint or "this file may try to run code when loaded; only use checkpoints from a source you trust, "
            "e.g. the official Human3R release",
        )


class WrongModelError(CheckpointError):
    """The file is a valid checkpoint, but not of a Human3R model (or lacks the model/config)."""


class ModelStringError(WrongModelError):
    """The stored model constructor string cannot be parsed or describes an unsupported model."""


class ConfigMismatchError(CheckpointError):
    """A configuration (JSON, model string or explicit) disagrees with the tensor shapes."""


class CheckpointMismatchError(CheckpointError):
    """Strict loading failed: the state dict's keys/shapes differ from the model's.

    Attributes: `missing` / `unexpected` (sorted key lists) and `mismatched`
    (``{key: (expected_shape, got_shape)}``).
    """

    def __init__(self, message: str, hint: str = "", *, missing: list[str] | None = None,
                 unexpected: list[str] | None = None,
                 mismatched: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] | None = None) -> None:
        super().__init__(message, hint)
        self.missing = list(missing or [])
        self.unexpected = list(unexpected or [])
        self.mismatched = dict(mismatched or {})
