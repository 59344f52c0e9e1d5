"""Checkpoint files as users really get them: odd names (browser, wget, Hugging Face cache), keys the
model no longer uses, conversion checked against the model, compressed records capped, and what
torch's own weights_only loader accepts inside `args`."""
from __future__ import annotations

import logging
import shutil
import zipfile

import numpy as np
import pytest
import torch

from backend.model.checkpoint import (
    CheckpointMismatchError, CorruptCheckpointError, UnsupportedFormatError, build_model, convert_checkpoint,
    read_checkpoint,
)
from backend.model.checkpoint.plain import load_torch_file


@pytest.mark.parametrize("name", ["human3r_896L.pth?download=true", "3f9a1c2b0d", "human3r.pth.1"])
def test_format_comes_from_the_first_bytes_when_the_name_says_nothing(tmp_path, fixture_pth, fixture_safetensors,
                                                                     save_pth, fixture_tensors, name):
    reference = read_checkpoint(fixture_pth)
    for source, fmt in ((fixture_pth, "torch-zip"), (fixture_safetensors, "safetensors")):
        blob = tmp_path / name
        shutil.copyfile(source, blob)
        loaded = read_checkpoint(blob)
        assert loaded.source_format == fmt and loaded.config == reference.config
        assert torch.equal(loaded.state_dict["enc_norm.weight"], reference.state_dict["enc_norm.weight"])
    legacy = save_pth(dict(fixture_tensors), name="legacy.pth", _use_new_zipfile_serialization=False)
    blob = tmp_path / ("legacy-" + name)
    legacy.rename(blob)
    assert read_checkpoint(blob).source_format == "torch-legacy"


def test_a_web_page_saved_under_the_checkpoint_name_is_explained(tmp_path):
    page = tmp_path / "human3r.pth?download=true"
    page.write_text("<!DOCTYPE html><html><body>Sign in to continue</body></html>")
    with pytest.raises(UnsupportedFormatError) as info:
        read_checkpoint(page)
    assert "first bytes" in str(info.value) and "human3r download" in info.value.hint


def test_unused_keys_are_ignored_with_a_warning_unless_strict(fixture_tensors, save_pth, caplog):
    state = dict(fixture_tensors)
    state["legacy_head.proj.weight"] = torch.zeros(3, 3)
    path = save_pth(state)
    with caplog.at_level(logging.WARNING, logger="backend.model.checkpoint.load"):
        model, _ = build_model(path)
    assert "1 keys this model does not use" in caplog.text and "legacy_head.proj.weight" in caplog.text
    assert "--strict-checkpoint" in caplog.text
    assert "legacy_head.proj.weight" not in model.state_dict()
    with pytest.raises(CheckpointMismatchError, match="1 unexpected"):
        build_model(path, strict=True)
    del state["enc_norm.weight"]  # a missing key stays fatal
    with pytest.raises(CheckpointMismatchError, match="1 missing"):
        build_model(save_pth(state, name="missing.pth"))


def test_convert_checks_the_model_key_set_before_writing(tmp_path, fixture_tensors, save_pth):
    from safetensors.torch import load_file

    extra = dict(fixture_tensors)
    extra["legacy_head.proj.weight"] = torch.zeros(3, 3)
    summary = convert_checkpoint(save_pth(extra, name="extra.pth"), tmp_path / "extra")
    assert summary["ignored_keys"] == ["legacy_head.proj.weight"]
    assert "legacy_head.proj.weight" not in load_file(summary["safetensors"])
    build_model(summary["json"], strict=True)  # the converted file loads even strictly
    missing = {k: v for k, v in fixture_tensors.items() if not k.startswith("enc_norm.")}
    with pytest.raises(CheckpointMismatchError, match="missing"):
        convert_checkpoint(save_pth(missing, name="missing.pth"), tmp_path / "missing")
    assert not list(tmp_path.glob("missing.safetensors*")) and not (tmp_path / "missing.json").exists()


def test_compressed_records_are_capped_at_their_declared_size(tmp_path, save_pth):
    path = save_pth({"enc_norm.weight": torch.ones(64)}, name="small.pth")
    bomb = tmp_path / "bomb.pth"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(bomb, "w") as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if "/data/" in info.filename:
                data += bytes(64 << 20)  # 256 bytes declared by the pickle, 64 MB once inflated
            dst.writestr(info.filename, data, compress_type=zipfile.ZIP_DEFLATED)
    assert bomb.stat().st_size < 1 << 20
    with pytest.raises(CorruptCheckpointError, match="more than the 256 its contents need"):
        load_torch_file(bomb)


def test_args_may_hold_what_torch_weights_only_accepts(save_pth, fixture_tensors, model_string):
    args = {"model": model_string, "device": torch.device("cuda", 1), "dtype": torch.float16,
            "torch_version": torch.__version__, "mean": np.array([[0.485, 0.456, 0.406]], dtype=np.float32),
            "steps": np.arange(4, dtype=">i8")}
    path = save_pth(dict(fixture_tensors), args=args)
    obj, _ = load_torch_file(path)
    plain = obj["args"]
    assert plain["device"] == "cuda:1" and plain["dtype"] == "torch.float16"
    assert plain["torch_version"] == str(torch.__version__)
    np.testing.assert_array_equal(plain["mean"], args["mean"])
    assert plain["mean"].shape == (1, 3) and plain["steps"].tolist() == [0, 1, 2, 3]
    assert read_checkpoint(path).model_string == model_string
    # an object array would need pickled Python objects: still refused
    bad = save_pth(dict(fixture_tensors), name="objects.pth",
                   args={"model": model_string, "names": np.array(["a", 1], dtype=object)})
    with pytest.raises(Exception) as info:
        load_torch_file(bad)
    assert type(info.value).__name__ in ("CorruptCheckpointError", "UnsafeCheckpointError")
