"""Schema check: does our `Human3R` reproduce the official state-dict keys, shapes, dtypes and aliases?"""
from __future__ import annotations

import os

import torch

from backend.config import ModelConfig
from backend.model.checkpoint.keys import summarize_keys
from backend.model.checkpoint.load import model_class


def read_schema_tsv(tsv_path: str | os.PathLike[str]) -> dict[str, tuple[tuple[int, ...], str, str]]:
    """``{key: (shape, dtype, kind)}`` from a state-dict table (``key, shape, dtype, numel, kind``; ``#`` comments)."""
    table: dict[str, tuple[tuple[int, ...], str, str]] = {}
    with open(tsv_path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line or line.startswith("#") or line.startswith("key\t"):
                continue
            key, shape, dtype, _numel, kind = line.split("\t")[:5]
            dims = tuple(int(d) for d in shape.split(",")) if shape else ()
            table[key] = (dims, dtype, kind)
    return table


def check_schema(tsv_path: str | os.PathLike[str], config: ModelConfig | None = None) -> list[str]:
    """Compare `Human3R(config)` (default: the released ``human3r-896-L``) with a state-dict table.

    Builds the network on the meta device; checks key set, shapes, dtypes and parameter/buffer/alias kinds.
    Returns human-readable differences (empty list = the schema matches).
    """
    from backend.config import PRESETS

    table = read_schema_tsv(tsv_path)
    Human3R = model_class()
    with torch.device("meta"):
        model = Human3R(config or PRESETS["human3r-896-L"])
    entries = model.state_dict(keep_vars=True)
    param_names = {id(p): n for n, p in model.named_parameters(remove_duplicate=True)}
    buffers = {id(b) for _, b in model.named_buffers(remove_duplicate=False)}
    problems: list[str] = []
    missing = sorted(set(table) - set(entries))
    extra = sorted(set(entries) - set(table))
    problems += [f"model lacks {line[len('missing '):]}" for line in summarize_keys(missing, "missing", 30)]
    problems += [f"model has extra {line[len('unexpected '):]}" for line in summarize_keys(extra, "unexpected", 30)]
    for key in sorted(set(table) & set(entries)):
        shape, dtype, kind = table[key]
        tensor = entries[key]
        if tuple(tensor.shape) != shape:
            problems.append(f"{key}: shape {tuple(tensor.shape)} but the table says {shape}")
        if str(tensor.dtype).replace("torch.", "") != dtype:
            problems.append(f"{key}: dtype {tensor.dtype} but the table says {dtype}")
        if kind.startswith("alias:"):
            twin = kind[len("alias:"):]
            if twin in entries and entries[twin] is not tensor:
                problems.append(f"{key}: should be the same parameter as {twin} (alias), but is a separate tensor")
        elif kind == "buffer" and id(tensor) not in buffers:
            problems.append(f"{key}: the table says buffer, the model has a parameter")
        elif kind == "parameter" and id(tensor) not in param_names:
            problems.append(f"{key}: the table says parameter, the model has a buffer")
    return problems
