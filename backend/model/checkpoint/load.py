"""Strict weight loading with a readable report, and building the network from a checkpoint file."""
from __future__ import annotations

import logging
import os
from collections.abc import Mapping

import torch

from backend.config import ModelConfig
from backend.model.checkpoint.errors import CheckpointError, CheckpointMismatchError
from backend.model.checkpoint.keys import (
    canonicalize_aliases, mismatch_hint, strip_module_prefix, summarize_keys, summarize_shapes,
)
from backend.model.checkpoint.read import LoadedCheckpoint, read_checkpoint

log = logging.getLogger(__name__)


def _expected_entries(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return model.state_dict(keep_vars=True)


def load_weights(model: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], *, assign: bool = False,
                 strict: bool = False) -> list[str]:
    """Load `state_dict` into `model` after checking every key and shape; return the ignored keys.

    Args:
        model: the network (any device, including meta).
        state_dict: canonical keys (as returned by `read_checkpoint`); values are cast to each
            parameter's dtype by torch when copying.
        assign: hand the given tensors to the model instead of copying (no second copy of the weights;
            the tensors must already have the wanted dtype/device). Forced on for a model on the meta
            device, where copying would silently load nothing.
        strict: also refuse keys the model does not have (`--strict-checkpoint`). By default they are
            listed in a warning and ignored, as the reference's non-strict load does (a release may
            carry a few keys its model no longer uses).
    Raises `CheckpointMismatchError` listing missing / mis-shaped (and, when strict, unexpected) keys,
    grouped by prefix.

    Keys are canonicalised first (a ``module.`` prefix, either DPT alias name), so any state dict loads;
    `build_model` skips that step, as `read_checkpoint` already did it.
    """
    return _load_canonical(model, canonicalize_aliases(strip_module_prefix(dict(state_dict))), assign=assign,
                           strict=strict)


def _load_canonical(model: torch.nn.Module, state_dict: dict[str, torch.Tensor], *, assign: bool,
                    strict: bool) -> list[str]:
    """`load_weights` for a state dict whose keys are canonical already (entries may be deleted)."""
    expected = _expected_entries(model)
    missing, unexpected, ignored = check_keys(expected, state_dict, strict)
    for key in ignored:
        del state_dict[key]
    on_meta = any(t.is_meta for t in expected.values())
    model.load_state_dict(state_dict, strict=True, assign=assign or on_meta)
    return ignored


def check_keys(expected: Mapping[str, torch.Tensor], state_dict: Mapping[str, torch.Tensor],
               strict: bool = False) -> tuple[list[str], list[str], list[str]]:
    """Compare a canonical state dict with the model's entries; return (missing, unexpected, ignored).

    Missing and mis-shaped keys raise `CheckpointMismatchError`; unexpected ones too when `strict`,
    else they are logged as a warning and returned as `ignored`.
    """
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    mismatched = {key: (tuple(expected[key].shape), tuple(state_dict[key].shape))
                  for key in sorted(set(expected) & set(state_dict))
                  if tuple(expected[key].shape) != tuple(state_dict[key].shape)}
    if missing or mismatched or (strict and unexpected):
        lines = summarize_keys(missing, "missing") + summarize_keys(unexpected, "unexpected") + \
            summarize_shapes(mismatched)
        counts = f"{len(missing)} missing, {len(unexpected)} unexpected, {len(mismatched)} mis-shaped"
        raise CheckpointMismatchError(
            f"checkpoint does not fit the model ({counts}):\n  " + "\n  ".join(lines),
            mismatch_hint(missing, unexpected, mismatched, expected.keys()),
            missing=missing, unexpected=unexpected, mismatched=mismatched)
    if unexpected:
        log.warning("the checkpoint holds %d keys this model does not use; they are ignored (pass "
                    "--strict-checkpoint to refuse such a file):\n  %s", len(unexpected),
                    "\n  ".join(summarize_keys(unexpected, "unexpected")))
    return missing, unexpected, unexpected


def model_class() -> type:
    """The `Human3R` class, imported lazily so reading checkpoints works without the network code."""
    try:
        from backend.model.human3r import Human3R
    except ImportError as exc:
        raise CheckpointError(f"the Human3R network is not available: {exc}",
                              "backend/model/human3r.py must define Human3R(config)") from exc
    return Human3R


def build_model(path: str | os.PathLike[str], device: str | torch.device = "cpu",
                dtype: torch.dtype = torch.float32,
                config: ModelConfig | None = None, strict: bool = False) -> tuple[torch.nn.Module, LoadedCheckpoint]:
    """Read a checkpoint and return ``(Human3R in eval mode, LoadedCheckpoint)``.

    The network is built on the meta device (no random init, no memory), then the checkpoint tensors,
    cast to `dtype` and moved to `device` one by one, are assigned as its parameters, so the weights
    exist once (plus one tensor in flight); this replaces the usual `to_empty` + copy, which would
    hold the weights twice. Non-persistent buffers (not in the checkpoint) would stay on meta: they are
    given storage and filled by the model's ``init_non_persistent_buffers()`` hook, or an error says
    which ones are uncovered. Keys the model does not use are ignored with a warning unless `strict`.
    The returned `LoadedCheckpoint.state_dict` is emptied to free memory.
    Returns the model on `device`, floating tensors in `dtype`, in eval mode.
    """
    loaded = read_checkpoint(path, config=config)
    Human3R = model_class()
    with torch.device("meta"):
        model = Human3R(loaded.config)
    device = torch.device(device)
    state_dict = loaded.state_dict
    moved: dict[int, torch.Tensor] = {}  # keep shared tensors (aliases) shared after the move
    for key in list(state_dict):
        tensor = state_dict[key]
        if id(tensor) not in moved:  # floating tensors take `dtype` (like model.to(dtype)); others keep theirs
            moved[id(tensor)] = tensor.to(device=device,
                                          dtype=dtype if tensor.is_floating_point() else None).contiguous()
        state_dict[key] = moved[id(tensor)]
    moved.clear()
    _load_canonical(model, state_dict, assign=True, strict=strict)  # canonical: read_checkpoint made it so
    _materialize_leftovers(model, device, dtype)
    loaded.state_dict = {}
    model.train(False)
    return model, loaded


def _materialize_leftovers(model: torch.nn.Module, device: torch.device, dtype: torch.dtype) -> None:
    """Give meta tensors that the checkpoint does not cover (non-persistent buffers) real storage."""
    leftovers = [name for name, t in list(model.named_parameters()) + list(model.named_buffers()) if t.is_meta]
    if not leftovers:
        return
    for module in model.modules():
        for name, buf in list(module._buffers.items()):
            if buf is not None and buf.is_meta:
                module._buffers[name] = torch.empty_like(buf, device=device,
                                                         dtype=dtype if buf.is_floating_point() else buf.dtype)
    hook = getattr(model, "init_non_persistent_buffers", None)
    if callable(hook):
        hook()
        return
    params = [n for n, p in model.named_parameters() if p.is_meta]
    raise CheckpointError(
        f"after loading, {len(leftovers)} tensors were not covered by the checkpoint "
        f"({', '.join(leftovers[:5])}{'...' if len(leftovers) > 5 else ''})"
        + (f"; parameters {params[:3]} are not in the state dict" if params else ""),
        "the model must compute non-persistent buffers in init_non_persistent_buffers()")
