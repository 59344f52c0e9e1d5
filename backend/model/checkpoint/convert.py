"""`human3r convert-checkpoint`: any readable checkpoint -> ``OUT.safetensors`` + ``OUT.json`` (atomic writes)."""
from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

from backend.config import ModelConfig
from backend.model.checkpoint.errors import CheckpointError
from backend.model.checkpoint.keys import dedupe_aliases
from backend.model.checkpoint.read import (
    CONVERTED_FORMAT, CONVERTED_VERSION, converted_paths, file_digest, read_checkpoint,
)


def _atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Write through `write(tmp_path)` into a fresh temp name in the target folder, then rename over `path`.

    Readers never see a half-written file; a crash leaves at most a ``.NAME.*.tmp`` file behind. The
    result gets the permissions a plain `open` would give (0666 minus umask; some writers use 0600).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    umask = os.umask(0o022)  # read the umask (the only portable way is to set it and put it back)
    os.umask(umask)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def convert_checkpoint(in_path: str | os.PathLike[str], out_path: str | os.PathLike[str],
                       config: ModelConfig | None = None, strict: bool = False) -> dict[str, Any]:
    """Convert any readable checkpoint to ``OUT.safetensors`` + ``OUT.json`` without running pickled code.

    `out_path` ending in ``.safetensors`` is used as is, anything else gets ``.safetensors`` appended;
    the JSON (``{'format': 'human3r-converted', 'version': 1, 'config', 'model_string', 'source_digest'}``)
    sits beside it with the same stem. Both files are written atomically. Tensors keep their dtype;
    the 12 alias keys are stored as separate copies (safetensors cannot share storage).
    Before anything is written the keys are checked against the model the config builds (on the meta
    device, no memory): missing or mis-shaped keys raise `CheckpointMismatchError`; keys the model
    does not use are left out with a warning (refused when `strict`).
    Returns a summary dict (paths, digests, key/parameter counts, config, ignored keys).
    """
    from safetensors.torch import save_file

    loaded = read_checkpoint(in_path, config=config)
    ignored = _check_against_model(loaded, strict)
    for key in ignored:
        del loaded.state_dict[key]
    weights_path, json_path = converted_paths(out_path)
    if weights_path.resolve() == Path(in_path).resolve():
        raise CheckpointError(f"refusing to overwrite the input {in_path}", "choose a different output name")
    tensors = {k: v.contiguous() for k, v in dedupe_aliases(loaded.state_dict).items()}
    metadata = {"format": "pt", "human3r_format": CONVERTED_FORMAT}
    if loaded.model_string:
        metadata["model"] = loaded.model_string
    _atomic_write(weights_path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))
    source_digest = loaded.source_digest or loaded.digest
    sidecar = {
        "format": CONVERTED_FORMAT,
        "version": CONVERTED_VERSION,
        "config": loaded.config.to_dict(),
        "model_string": loaded.model_string,
        "source_digest": source_digest,
    }
    _atomic_write(json_path, lambda tmp: tmp.write_text(json.dumps(sidecar, indent=1) + "\n", encoding="utf-8"))
    unique = {id(v): v for v in loaded.state_dict.values()}
    return {
        "input": str(in_path),
        "input_format": loaded.source_format,
        "safetensors": str(weights_path),
        "json": str(json_path),
        "source_digest": source_digest,
        "digest": file_digest(weights_path),
        "num_keys": len(tensors),
        "num_parameters": sum(v.numel() for v in unique.values()),
        "config": loaded.config.to_dict(),
        "ignored_keys": ignored,
    }


def _check_against_model(loaded, strict: bool) -> list[str]:
    """The model's key set for `loaded.config` versus the file's keys; returns the keys to leave out."""
    import torch

    from backend.model.checkpoint.load import check_keys, model_class

    with torch.device("meta"):
        model = model_class()(loaded.config)
    _, _, ignored = check_keys(model.state_dict(keep_vars=True), loaded.state_dict, strict)
    return ignored
