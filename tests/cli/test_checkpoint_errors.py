"""A checkpoint that cannot be used stops `infer` and `serve` the same way: exit status 3, the
checkpoint's path, what is wrong and the hint, and no traceback."""
from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from backend.cli import main
from backend.cli.common import EXIT_SETUP


def _model_string(parity_fixture_dir: Path) -> str:
    with safe_open(str(parity_fixture_dir / "checkpoint.safetensors"), framework="pt") as f:
        return f.metadata()["model"]


def _bad_checkpoint(kind: str, folder: Path, parity_fixture_dir: Path) -> tuple[Path, str]:
    """A broken checkpoint of the given kind and a phrase its error message must contain."""
    path = folder / f"{kind}.pth"
    if kind == "corrupt":  # a download cut short
        data = (parity_fixture_dir / "checkpoint.pth").read_bytes()
        path.write_bytes(data[: len(data) // 2])
        return path, "corrupt"
    args = argparse.Namespace(model=_model_string(parity_fixture_dir))
    if kind == "wrong_model":  # some other network's weights
        torch.save({"model": {"conv1.weight": torch.zeros(2, 3)}, "args": args}, path)
        return path, "not a Human3R checkpoint"
    # mismatched: the right model, but one tensor of other sizes
    tensors = load_file(str(parity_fixture_dir / "checkpoint.safetensors"))
    key = "downstream_head.dpt_self.head.4.bias"
    assert key in tensors
    tensors[key] = torch.zeros(tensors[key].shape[0] + 1)
    torch.save({"model": tensors, "args": args}, path)
    return path, key.rsplit(".", 2)[0]


def _command(name: str, checkpoint: Path, smplx: Path, tennis_video: Path, tmp_path: Path) -> list[str]:
    common = ["--checkpoint", str(checkpoint), "--smplx", str(smplx), "--device", "cpu"]
    if name == "infer":
        return ["infer", str(tennis_video), "-o", str(tmp_path / "out.h3r"), "--quiet", *common]
    return ["serve", "--bind", "tcp://127.0.0.1:0", "--results-dir", str(tmp_path / "results"), *common]


@pytest.mark.parametrize("command", ["infer", "serve"])
@pytest.mark.parametrize("kind", ["corrupt", "wrong_model", "mismatched"])
def test_unusable_checkpoint_exits_3_with_the_hint(command, kind, tmp_path, parity_fixture_dir, synthetic_smplx_path,
                                                    tennis_video, capsys):
    checkpoint, phrase = _bad_checkpoint(kind, tmp_path, parity_fixture_dir)
    code = main(_command(command, checkpoint, synthetic_smplx_path, tennis_video, tmp_path))
    err = capsys.readouterr().err
    assert code == EXIT_SETUP, err
    assert f"cannot load the checkpoint {checkpoint}" in err
    assert phrase in err and "hint:" in err
    assert "Traceback" not in err
