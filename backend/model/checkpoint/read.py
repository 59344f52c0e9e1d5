"""Reading any supported Human3R checkpoint into a `LoadedCheckpoint` (CPU tensors + `ModelConfig`).

Supported inputs (chosen by extension; when the extension says nothing, as for a browser's
``human3r.pth?download=true``, a Hugging Face cache blob or ``human3r.pth.1``, by the first bytes):

- ``.pth`` / ``.pt`` / ``.ckpt``: the official training layout ``{'model': state_dict, 'args': cfg, ...}``
  (torch zip archive, or the legacy non-zip format), read by a restricted unpickler
  (`unpickler`) that never imports or calls anything from the file beyond torch's tensor
  rebuild functions; the OmegaConf ``args`` object becomes plain dicts.
- ``.safetensors`` with a sibling ``.json`` written by `convert_checkpoint` (format ``human3r-converted``).
- ``.safetensors`` alone, with the model string in its metadata key ``model`` (the parity fixture).
- ``.json`` written by `convert_checkpoint`: the ``.safetensors`` beside it is read.

Key conventions: the reference's ``module.`` rule (strip 7 chars only if *all* keys start with
``module``) and the 12 DPT alias keys (either name accepted; both names are returned, sharing one tensor).
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from backend.config import ModelConfig
from backend.model.checkpoint.model_string import check_config_against_shapes, infer_config, parse_model_string
from backend.model.checkpoint.errors import (
    DOWNLOAD_HINT, CheckpointNotFoundError, ConfigMismatchError, CorruptCheckpointError, UnsupportedFormatError,
    WrongModelError,
)
from backend.model.checkpoint.keys import canonicalize_aliases, strip_module_prefix
from backend.model.checkpoint.plain import load_torch_file

CONVERTED_FORMAT = "human3r-converted"
CONVERTED_VERSION = 1
TORCH_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin")


@dataclass
class LoadedCheckpoint:
    """A checkpoint read into memory.

    state_dict: canonical keys (no ``module.`` prefix, both DPT alias names sharing one tensor),
        CPU tensors in the file's dtype (float32 for the release).
    config: the architecture these weights need.
    digest: hex sha256 of the weights file (the ``.pth`` or the ``.safetensors``).
    source_format: ``'torch-zip'``, ``'torch-legacy'``, ``'converted'`` (safetensors + JSON) or ``'safetensors'``.
    model_string: the reference's constructor string if the file carried one.
    source_digest: for converted files, the sha256 of the ``.pth`` they were made from.
    """

    state_dict: dict[str, torch.Tensor]
    config: ModelConfig
    digest: str
    source_format: str
    model_string: str | None = None
    source_digest: str | None = None

def file_digest(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes (streams; fine for multi-GB files)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


class _BackgroundDigest:
    """sha256 of a file computed on a thread (file reads and hashlib release the GIL); cancellable."""

    _CHUNK = 8 << 20

    def __init__(self, path: Path) -> None:
        self._path = path
        self._stop = threading.Event()
        self._result: str | None = None
        self._error: OSError | None = None
        self._thread = threading.Thread(target=self._run, name="checkpoint-digest", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            digest = hashlib.sha256()
            with open(self._path, "rb") as f:
                while not self._stop.is_set() and (chunk := f.read(self._CHUNK)):
                    digest.update(chunk)
            self._result = digest.hexdigest()
        except OSError as exc:
            self._error = exc

    def cancel(self) -> None:
        self._stop.set()

    def result(self) -> str:
        self._thread.join()
        if self._error is not None or self._result is None:
            raise CorruptCheckpointError(f"cannot read {self._path} to hash it: {self._error}",
                                         "check the file's permissions and the disk")
        return self._result


def converted_paths(out: str | os.PathLike[str]) -> tuple[Path, Path]:
    """``(weights.safetensors, weights.json)`` for an output name.

    ``X.safetensors`` is used as given; any other name gets ``.safetensors`` appended (``out`` -> ``out.safetensors``).
    """
    out = Path(out)
    weights = out if out.suffix == ".safetensors" else out.with_name(out.name + ".safetensors")
    return weights, weights.with_suffix(".json")


def _check_exists(path: Path) -> None:
    if not path.exists():
        raise CheckpointNotFoundError(f"checkpoint not found: {path}", DOWNLOAD_HINT)
    if not path.is_file():
        raise CheckpointNotFoundError(f"checkpoint path is not a file: {path}", DOWNLOAD_HINT)


def _read_converted_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptCheckpointError(f"cannot read checkpoint config {path}: {exc}",
                                     "re-run `human3r convert-checkpoint` on the original .pth") from None
    if not isinstance(data, dict) or data.get("format") != CONVERTED_FORMAT:
        raise WrongModelError(f"{path} is not a Human3R converted-checkpoint config (format != {CONVERTED_FORMAT!r})",
                              "pass the .pth, or the .safetensors/.json pair written by `human3r convert-checkpoint`")
    if data.get("version") != CONVERTED_VERSION:
        raise UnsupportedFormatError(f"{path}: converted-checkpoint version {data.get('version')!r} is not supported "
                                     f"(this build reads version {CONVERTED_VERSION})",
                                     "re-run `human3r convert-checkpoint` with this version")
    return data


def _config_from_json(data: Mapping[str, Any], path: Path) -> ModelConfig:
    try:
        return ModelConfig.from_dict(data["config"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigMismatchError(f"{path}: invalid model config: {exc}",
                                  "re-run `human3r convert-checkpoint` on the original .pth") from None


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import SafetensorError, safe_open

    try:
        tensors: dict[str, torch.Tensor] = {}
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = dict(f.metadata() or {})
            for key in f.keys():
                tensors[key] = f.get_tensor(key)
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CorruptCheckpointError(f"cannot read safetensors file {path}: {exc}",
                                     "the file is truncated or damaged; download or convert it again") from None
    return tensors, metadata


def _shapes(state_dict: Mapping[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    return {key: tuple(value.shape) for key, value in state_dict.items()}


def _resolve_config(state_dict: Mapping[str, torch.Tensor], model_string: str | None,
                    config: ModelConfig | None, origin: str) -> ModelConfig:
    shapes = _shapes(state_dict)
    if config is not None:
        check_config_against_shapes(config, shapes)
        return config
    if model_string is None:
        raise WrongModelError(f"{origin} carries no model description (no model string, no config)",
                              "pass the config explicitly, or convert the original .pth with "
                              "`human3r convert-checkpoint`")
    return infer_config(parse_model_string(model_string), shapes)


def _canonical(state_dict: Mapping[str, Any], origin: str) -> dict[str, torch.Tensor]:
    bad = [k for k, v in state_dict.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise WrongModelError(f"{origin}: the state dict has {len(bad)} entries that are not named tensors "
                              f"(e.g. {bad[0]!r})", "not a Human3R checkpoint")
    if not state_dict:
        raise WrongModelError(f"{origin}: the state dict is empty", "not a Human3R checkpoint")
    return canonicalize_aliases(strip_module_prefix(dict(state_dict)))


def _read_torch(path: Path, config: ModelConfig | None) -> LoadedCheckpoint:
    obj, fmt = load_torch_file(path)
    if not isinstance(obj, dict) or "model" not in obj:
        keys = ", ".join(map(repr, list(obj)[:8])) if isinstance(obj, dict) else type(obj).__name__
        raise WrongModelError(
            f"{path} is a PyTorch file but not a Human3R training checkpoint: expected a dict with a 'model' "
            f"state dict, got {keys}",
            "use the official human3r.pth (" + DOWNLOAD_HINT + ")")
    model = obj["model"]
    if not isinstance(model, Mapping):
        raise WrongModelError(f"{path}: checkpoint['model'] is {type(model).__name__}, not a state dict",
                              "not a Human3R checkpoint")
    state_dict = _canonical(model, str(path))
    model_string = _model_string_from_args(obj.get("args"))
    cfg = _resolve_config(state_dict, model_string, config, str(path))
    return LoadedCheckpoint(state_dict, cfg, "", fmt, model_string)


def _model_string_from_args(args: Any) -> str | None:
    """`args.model` of the training config (after the unpickler turned OmegaConf/Namespace into dicts)."""
    if isinstance(args, Mapping):
        value = args.get("model")
        return value if isinstance(value, str) else None
    return None


def read_checkpoint(path: str | os.PathLike[str], config: ModelConfig | None = None) -> LoadedCheckpoint:
    """Read any supported Human3R checkpoint into a `LoadedCheckpoint` (CPU tensors).

    Args:
        path: ``.pth``/``.pt``/``.ckpt``/``.bin`` (official layout), ``.safetensors`` (converted, or with a
            model string in its metadata) or the ``.json`` written by `convert_checkpoint`.
        config: use this config instead of the stored/inferred one (still checked against the shapes).
    Raises a `CheckpointError` subclass with a hint for every kind of bad input.
    """
    path = Path(path)
    _check_exists(path)
    suffix = path.suffix.lower()
    if suffix in TORCH_SUFFIXES:
        weights, read = path, functools.partial(_read_torch, path, config)
    elif suffix == ".json":
        data = _read_converted_json(path)
        weights = path.with_suffix(".safetensors")
        _check_exists(weights)
        read = functools.partial(_read_converted, weights, data, path, config)
    elif suffix == ".safetensors":
        weights, read = path, functools.partial(_read_safetensors_checkpoint, path, config)
    elif (sniffed := sniff_format(path)) == "torch":
        weights, read = path, functools.partial(_read_torch, path, config)
    elif sniffed == "safetensors":
        weights, read = path, functools.partial(_read_safetensors_checkpoint, path, config)
    else:
        raise UnsupportedFormatError(
            f"{path} is not a checkpoint this program can read: its name ends in {path.suffix or '(no extension)'!r} "
            "and its first bytes are neither a PyTorch zip, a legacy PyTorch pickle nor a safetensors header",
            "pass the official human3r.pth (an HTML page saved by a browser is not it: download again with "
            "`human3r download`), or a .safetensors/.json pair from `human3r convert-checkpoint`")
    digest = _BackgroundDigest(weights)  # hashing a 4.6 GB file takes seconds: overlap it with parsing
    try:
        loaded = read()
    except BaseException:
        digest.cancel()
        raise
    loaded.digest = digest.result()
    return loaded


def sniff_format(path: Path) -> str | None:
    """'torch' (zip archive or legacy pickle), 'safetensors' or None, from the file's first bytes."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError:
        return None
    if head.startswith(b"PK\x03\x04"):
        return "torch"  # torch.save's zip archive
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return "torch"  # a pickle (torch < 1.6 legacy format starts with the pickled magic number)
    if len(head) >= 10 and head[8:10] in (b'{"', b"{ ", b"{\n"):
        header_len = int.from_bytes(head[:8], "little")
        if 2 <= header_len <= 100_000_000:
            return "safetensors"  # u64 little-endian header length, then the JSON header
    return None


def _read_safetensors_checkpoint(path: Path, config: ModelConfig | None) -> LoadedCheckpoint:
    sidecar = path.with_suffix(".json")
    if sidecar.is_file():
        return _read_converted(path, _read_converted_json(sidecar), sidecar, config)
    tensors, metadata = _read_safetensors(path)
    state_dict = _canonical(tensors, str(path))
    model_string = metadata.get("model")
    cfg = _resolve_config(state_dict, model_string, config, str(path))
    return LoadedCheckpoint(state_dict, cfg, "", "safetensors", model_string)


def _read_converted(weights: Path, data: Mapping[str, Any], json_path: Path,
                    config: ModelConfig | None) -> LoadedCheckpoint:
    tensors, _ = _read_safetensors(weights)
    state_dict = _canonical(tensors, str(weights))
    cfg = config if config is not None else _config_from_json(data, json_path)
    try:
        check_config_against_shapes(cfg, _shapes(state_dict))
    except ConfigMismatchError as exc:
        origin = "the given config" if config is not None else str(json_path)
        raise ConfigMismatchError(f"{origin} does not match {weights.name}: {exc.message}", exc.hint) from None
    model_string = data.get("model_string") if isinstance(data.get("model_string"), str) else None
    source_digest = data.get("source_digest") if isinstance(data.get("source_digest"), str) else None
    return LoadedCheckpoint(state_dict, cfg, "", "converted", model_string, source_digest)
