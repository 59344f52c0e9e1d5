"""Helpers for the checkpoint tests: the parity fixture's tensors and small checkpoints built in tmp_path."""
from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from backend.config import PRESETS

FIXTURE_MODEL_STRING_KEY = "model"


@pytest.fixture(scope="session")
def fixture_pth(parity_fixture_dir: Path) -> Path:
    return parity_fixture_dir / "checkpoint.pth"


@pytest.fixture(scope="session")
def fixture_safetensors(parity_fixture_dir: Path) -> Path:
    return parity_fixture_dir / "checkpoint.safetensors"


@pytest.fixture(scope="session")
def fixture_tensors(fixture_safetensors: Path) -> dict[str, torch.Tensor]:
    """The fixture's state dict as stored (675 keys, aliases as separate copies)."""
    return load_file(str(fixture_safetensors))


@pytest.fixture(scope="session")
def model_string(fixture_safetensors: Path) -> str:
    from safetensors import safe_open

    with safe_open(str(fixture_safetensors), framework="pt") as f:
        return f.metadata()[FIXTURE_MODEL_STRING_KEY]


@pytest.fixture()
def save_pth(tmp_path: Path, model_string: str):
    """``save_pth(state_dict, name='ckpt.pth', args=<Namespace(model=...)>, **torch_save_kwargs) -> Path``."""

    def save(state_dict, name: str = "ckpt.pth", args=None, **kwargs) -> Path:
        path = tmp_path / name
        if args is None:
            args = argparse.Namespace(model=model_string, epoch=3)
        torch.save({"model": state_dict, "args": args, "epoch": 3}, path, **kwargs)
        return path

    return save


@pytest.fixture()
def tiny_meta_model():
    """`Human3R(PRESETS['tiny'])` on the meta device (a broken model import fails these tests, never skips)."""
    from backend.model.human3r import Human3R

    with torch.device("meta"):
        return Human3R(PRESETS["tiny"])
