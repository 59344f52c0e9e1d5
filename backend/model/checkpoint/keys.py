"""State-dict key handling: `module.` prefixes, the 12 DPT alias keys, and readable key-diff reports."""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

import torch

from backend.model.checkpoint.errors import CorruptCheckpointError

DPT_HEADS = ("dpt_self", "dpt_cross", "dpt_rgb")


def alias_pairs(keys: Iterable[str] | None = None) -> list[tuple[str, str]]:
    """The DPT alias pairs ``(scratch.layer{K}_rn.weight, scratch.layer_rn.{K-1}.weight)``.

    The reference registers each of the four scratch convs of every DPT head twice (same parameter),
    so both names are in its state dict. With `keys` given, only heads that appear in `keys` are listed.
    """
    pairs = []
    for head in DPT_HEADS:
        base = f"downstream_head.{head}.scratch."
        if keys is not None and not any(k.startswith(base) for k in keys):
            continue
        for k in range(1, 5):
            pairs.append((f"{base}layer{k}_rn.weight", f"{base}layer_rn.{k - 1}.weight"))
    return pairs


def strip_module_prefix(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The reference's rule: drop the first 7 characters of every key only if *all* keys start with 'module'."""
    if state_dict and all(key.startswith("module") for key in state_dict):
        return {key[7:]: value for key, value in state_dict.items()}
    return state_dict


def canonicalize_aliases(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Make both names of every DPT alias pair present (same tensor object), accepting either name.

    Raises `CorruptCheckpointError` if both names are present with different values.
    Returns a new dict; tensors are not copied.
    """
    out = dict(state_dict)
    for primary, alias in alias_pairs(state_dict.keys()):
        a, b = out.get(primary), out.get(alias)
        if a is None and b is None:
            continue
        if a is not None and b is not None:
            if a is not b and (a.shape != b.shape or not torch.equal(a, b)):
                raise CorruptCheckpointError(
                    f"alias keys {primary!r} and {alias!r} hold different tensors; they must be the same parameter",
                    "the checkpoint was edited inconsistently; re-export it from the original model")
            out[alias] = a
        else:
            shared = a if a is not None else b
            out[primary] = out[alias] = shared
    return out


def dedupe_aliases(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Copy of `state_dict` in which the alias name holds its own clone (safetensors refuses shared storage)."""
    out = dict(state_dict)
    for primary, alias in alias_pairs(out.keys()):
        if primary in out and alias in out:
            out[alias] = out[primary].clone()
    return out


# --------------------------------------------------------------------------------------------------
# reports

def key_group(key: str) -> str:
    """Group label for a key: its path up to the first block index (as '*'), at most 3 names deep.

    ``backbone.encoder.blocks.3.attn.qkv.weight`` -> ``backbone.encoder.blocks.*``;
    ``downstream_head.mlp_fuse.mlp.layers.0.weight`` -> ``downstream_head.mlp_fuse.mlp``.
    """
    parts = key.split(".")[:-1]
    label: list[str] = []
    for i, part in enumerate(parts):
        if part.isdigit():
            label.append("*")
            break
        label.append(part)
        if len(label) == 3:
            if i + 1 < len(parts) and parts[i + 1].isdigit():
                label.append("*")
            break
    return ".".join(label) if label else key


def summarize_keys(keys: Iterable[str], verb: str, max_groups: int = 12) -> list[str]:
    """Lines like ``missing 24 keys under backbone.encoder.blocks.* (e.g. backbone.encoder.blocks.0.norm1.weight)``."""
    groups: dict[str, list[str]] = {}
    for key in sorted(keys):
        groups.setdefault(key_group(key), []).append(key)
    lines = []
    for label, members in sorted(groups.items(), key=lambda item: (-len(item[1]), item[0]))[:max_groups]:
        if len(members) == 1:
            lines.append(f"{verb} {members[0]}")
        else:
            lines.append(f"{verb} {len(members)} keys under {label}{'' if label.endswith('*') else '.*'} "
                         f"(e.g. {members[0]})")
    if len(groups) > max_groups:
        rest = sum(len(m) for _, m in sorted(groups.items(), key=lambda it: (-len(it[1]), it[0]))[max_groups:])
        lines.append(f"... and {rest} more {verb} keys in {len(groups) - max_groups} other groups")
    return lines


def summarize_shapes(mismatched: Mapping[str, tuple[tuple[int, ...], tuple[int, ...]]],
                     max_lines: int = 12) -> list[str]:
    """Lines ``KEY: expected (a, b), got (c, d)``, truncated to `max_lines`."""
    items = sorted(mismatched.items())
    lines = [f"mis-shaped {key}: expected {tuple(want)}, got {tuple(got)}" for key, (want, got) in items[:max_lines]]
    if len(items) > max_lines:
        lines.append(f"... and {len(items) - max_lines} more mis-shaped keys")
    return lines


_HUMAN_BRANCH = re.compile(r"^downstream_head\.(dec(pose|shape|expression|cam)|mlp_fuse)\.")


def mismatch_hint(missing: list[str], unexpected: list[str], mismatched: Mapping[str, object],
                  expected_keys: Iterable[str]) -> str:
    """A one-line guess at the cause of a key/shape mismatch (empty if there is no good guess)."""
    expected = list(expected_keys)
    hints = []
    human_expected = {k for k in expected if _HUMAN_BRANCH.match(k)}
    if human_expected and human_expected <= set(missing):
        hints.append("this looks like a CUT3R checkpoint without the human branch "
                     "(all downstream_head.dec*/mlp_fuse keys are missing); Human3R needs the official human3r.pth")
    if unexpected and all(k.startswith("module.") for k in unexpected):
        hints.append("some keys carry a 'module.' prefix but not all of them; re-save the state dict without it")
    if mismatched:
        hints.append("config does not match weights: the model was built with different sizes than the checkpoint; "
                     "use the config stored with the checkpoint")
    if expected and len(missing) >= 0.9 * len(expected):
        hints.append("almost no key matches: this is probably not a Human3R checkpoint")
    return "; ".join(hints)
