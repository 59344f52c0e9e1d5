"""Reading, checking, converting and loading Human3R checkpoints.

Supported inputs: the official ``.pth`` training layout (restricted unpickler, no pickled code runs),
converted ``.safetensors`` + ``.json``, and a ``.safetensors`` carrying the model string in its
metadata; see `read` for the details and the key conventions (``module.`` prefixes, the 12 DPT alias
keys; canonicalised once, when a file is read).

Modules: `errors` (the `CheckpointError` hierarchy), `unpickler` (restricted ``.pth`` reader), `plain`
(its stand-ins -> plain data), `keys` (prefixes, aliases, key-diff reports), `model_string` (the
reference's constructor string -> `ModelConfig`), `read`, `load` (strict loading, building the
network), `convert` (-> safetensors + JSON), `schema` (our keys against the official list).

Public API (this package re-exports the pieces):

- `read_checkpoint(path, config=None) -> LoadedCheckpoint`
- `load_weights(model, state_dict, *, assign=False)` (strict, grouped report on mismatch)
- `build_model(path, device='cpu', dtype=torch.float32, config=None) -> (Human3R, LoadedCheckpoint)`
- `convert_checkpoint(in_path, out_path, config=None) -> dict` (summary)
- `check_schema(tsv_path, config=None) -> list[str]` (differences; empty = OK)
- `parse_model_string(s) -> dict`, `infer_config(model_kwargs, shapes) -> ModelConfig`
- the `CheckpointError` hierarchy (each error has `.hint`).
"""
from __future__ import annotations

from backend.model.checkpoint.model_string import check_config_against_shapes, infer_config, parse_model_string
from backend.model.checkpoint.convert import convert_checkpoint
from backend.model.checkpoint.errors import (
    CheckpointError, CheckpointMismatchError, CheckpointNotFoundError, ConfigMismatchError, CorruptCheckpointError,
    ModelStringError, UnsafeCheckpointError, UnsupportedFormatError, WrongModelError,
)
from backend.model.checkpoint.load import build_model, load_weights
from backend.model.checkpoint.read import (
    CONVERTED_FORMAT, CONVERTED_VERSION, LoadedCheckpoint, converted_paths, file_digest, read_checkpoint,
)
from backend.model.checkpoint.schema import check_schema, read_schema_tsv

__all__ = [
    "CONVERTED_FORMAT", "CONVERTED_VERSION", "LoadedCheckpoint", "read_checkpoint", "load_weights", "build_model",
    "convert_checkpoint", "check_schema", "read_schema_tsv", "file_digest", "converted_paths",
    "parse_model_string", "infer_config", "check_config_against_shapes",
    "CheckpointError", "CheckpointNotFoundError", "UnsupportedFormatError", "CorruptCheckpointError",
    "UnsafeCheckpointError", "WrongModelError", "ModelStringError", "ConfigMismatchError", "CheckpointMismatchError",
]
