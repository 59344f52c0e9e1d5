"""Reading every supported layout, conversion round trips, key conventions and bad-input errors."""
from __future__ import annotations

import argparse
import json
import os
import zipfile
from pathlib import Path

import pytest
import torch

from backend.config import PRESETS
from backend.cli import convert as checkpoint_cli
from backend.model.checkpoint import (
    CONVERTED_FORMAT, CheckpointError, CheckpointNotFoundError, ConfigMismatchError, CorruptCheckpointError,
    ModelStringError, UnsupportedFormatError, WrongModelError, convert_checkpoint, converted_paths, file_digest,
    read_checkpoint,
)

ALIAS = "downstream_head.dpt_cross.scratch.layer_rn.2.weight"
PRIMARY = "downstream_head.dpt_cross.scratch.layer3_rn.weight"


def assert_same_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert set(a) == set(b)
    for key in a:
        assert a[key].dtype == b[key].dtype, key
        assert torch.equal(a[key], b[key]), key


def test_fixture_pth_and_safetensors_give_identical_checkpoints(fixture_pth, fixture_safetensors, fixture_tensors):
    from_pth = read_checkpoint(fixture_pth)
    from_st = read_checkpoint(fixture_safetensors)
    assert from_pth.source_format == "torch-zip" and from_st.source_format == "safetensors"
    assert from_pth.config == from_st.config == PRESETS["tiny"]
    assert from_pth.model_string == from_st.model_string
    assert_same_tensors(from_pth.state_dict, from_st.state_dict)
    assert_same_tensors(from_st.state_dict, fixture_tensors)
    assert from_pth.digest == file_digest(fixture_pth) and len(from_pth.digest) == 64
    # aliases share one tensor after reading, whichever way the file stored them
    for loaded in (from_pth, from_st):
        assert loaded.state_dict[ALIAS] is loaded.state_dict[PRIMARY]


def test_convert_round_trip(fixture_pth, tmp_path):
    summary = convert_checkpoint(fixture_pth, tmp_path / "out")
    weights, sidecar = tmp_path / "out.safetensors", tmp_path / "out.json"
    assert summary["safetensors"] == str(weights) and summary["json"] == str(sidecar)
    data = json.loads(sidecar.read_text())
    assert data["format"] == CONVERTED_FORMAT and data["version"] == 1
    assert data["source_digest"] == file_digest(fixture_pth) == summary["source_digest"]
    assert data["model_string"].startswith("ARCroco3DStereo(")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json", "out.safetensors"], "temp files left behind"
    umask = os.umask(0)
    os.umask(umask)
    assert weights.stat().st_mode & 0o777 == 0o666 & ~umask

    original = read_checkpoint(fixture_pth)
    for path in (weights, sidecar):  # either file of the pair reads the pair
        converted = read_checkpoint(path)
        assert converted.source_format == "converted"
        assert converted.config == original.config == PRESETS["tiny"]
        assert converted.source_digest == original.digest
        assert converted.digest == file_digest(weights)
        assert_same_tensors(converted.state_dict, original.state_dict)


def test_converted_paths_naming(tmp_path):
    assert converted_paths(tmp_path / "a.safetensors") == (tmp_path / "a.safetensors", tmp_path / "a.json")
    assert converted_paths(tmp_path / "b") == (tmp_path / "b.safetensors", tmp_path / "b.json")
    assert converted_paths(tmp_path / "c.v1") == (tmp_path / "c.v1.safetensors", tmp_path / "c.v1.json")


def test_cli_convert(fixture_pth, tmp_path, capsys):
    parser = argparse.ArgumentParser()
    checkpoint_cli.add_arguments(parser)
    out = tmp_path / "model.safetensors"
    assert checkpoint_cli.run(parser.parse_args([str(fixture_pth), "-o", str(out)])) == 0
    assert "preset tiny" in capsys.readouterr().out
    assert out.is_file() and (tmp_path / "model.json").is_file()
    assert checkpoint_cli.run(parser.parse_args([str(fixture_pth), "-o", str(out)])) == 2  # exists, no --force
    assert checkpoint_cli.run(parser.parse_args([str(fixture_pth), "-o", str(out), "--force"])) == 0
    assert checkpoint_cli.run(parser.parse_args([str(tmp_path / "nope.pth"), "-o", str(tmp_path / "x")])) == 1
    assert "human3r download" in capsys.readouterr().err


def test_module_prefix_is_stripped_when_all_keys_have_it(fixture_tensors, save_pth):
    path = save_pth({"module." + k: v for k, v in fixture_tensors.items()})
    loaded = read_checkpoint(path)
    assert set(loaded.state_dict) == set(fixture_tensors)
    assert loaded.config == PRESETS["tiny"]


def test_partial_module_prefix_is_not_stripped(fixture_tensors, save_pth):
    state = dict(fixture_tensors)
    state["module.patch_embed.proj.weight"] = state.pop("patch_embed.proj.weight")
    with pytest.raises(WrongModelError, match="patch_embed.proj.weight"):
        read_checkpoint(save_pth(state))


@pytest.mark.parametrize("keep", ["primary", "alias"])
def test_alias_keys_accept_either_name(fixture_tensors, save_pth, keep):
    state = dict(fixture_tensors)
    for key in list(state):
        is_alias = ".scratch.layer_rn." in key
        is_primary = key.endswith("_rn.weight") and not is_alias
        if (keep == "primary" and is_alias) or (keep == "alias" and is_primary):
            del state[key]
    assert len(state) == len(fixture_tensors) - 12
    loaded = read_checkpoint(save_pth(state))
    assert set(loaded.state_dict) == set(fixture_tensors)
    assert loaded.state_dict[ALIAS] is loaded.state_dict[PRIMARY]
    assert torch.equal(loaded.state_dict[ALIAS], fixture_tensors[PRIMARY])


def test_alias_keys_that_disagree_are_an_error(fixture_tensors, save_pth):
    state = dict(fixture_tensors)
    state[ALIAS] = state[ALIAS] + 1
    with pytest.raises(CorruptCheckpointError, match="alias"):
        read_checkpoint(save_pth(state))


def test_legacy_torch_format(fixture_tensors, save_pth):
    path = save_pth(fixture_tensors, name="legacy.pth", _use_new_zipfile_serialization=False)
    assert not zipfile.is_zipfile(path)
    loaded = read_checkpoint(path)
    assert loaded.source_format == "torch-legacy" and loaded.config == PRESETS["tiny"]
    assert_same_tensors(loaded.state_dict, fixture_tensors)


def test_other_dtypes_views_and_shared_storage_survive(tmp_path):
    """The safe rebuild matches torch.load for non-contiguous views, offsets, ints, bools, halves."""
    base = torch.arange(24, dtype=torch.float64).reshape(4, 6)
    obj = {"model": {"t": base.t(), "row": base[2], "half": torch.randn(3, 5).half(), "i": torch.arange(7),
                     "b": torch.tensor([True, False]), "scalar": torch.tensor(2.5), "empty": torch.zeros(0, 3)},
           "args": {"model": None, "lr": 1e-4, "sizes": (1, 2), "name": b"bytes"}}
    path = tmp_path / "misc.pth"
    torch.save(obj, path)
    from backend.model.checkpoint.plain import load_torch_file

    ours, fmt = load_torch_file(path)
    reference = torch.load(path, weights_only=True)
    assert fmt == "torch-zip" and ours["args"] == reference["args"]
    for key, tensor in reference["model"].items():
        assert ours["model"][key].dtype == tensor.dtype and torch.equal(ours["model"][key], tensor), key
        assert ours["model"][key].stride() == tensor.stride(), key
    assert ours["model"]["t"].untyped_storage().data_ptr() == ours["model"]["row"].untyped_storage().data_ptr()


def test_fixture_args_become_plain_data(fixture_pth):
    from backend.model.checkpoint.plain import load_torch_file

    obj, _ = load_torch_file(fixture_pth)
    args = obj["args"]
    assert type(args) is dict and len(args) == 80
    assert args["model"].startswith("ARCroco3DStereo(ARCroco3DStereoConfig(")
    assert isinstance(args["resolution"], list) and all(isinstance(v, str) for v in args["resolution"])
    json.dumps(args)  # nothing but plain JSON-able values remain


# ---------------------------------------------------------------------------------------------- bad input

def test_missing_file_says_where_to_get_the_checkpoint(tmp_path):
    with pytest.raises(CheckpointNotFoundError) as info:
        read_checkpoint(tmp_path / "human3r.pth")
    assert isinstance(info.value, FileNotFoundError)
    assert "Hugging Face" in str(info.value) and "human3r download" in info.value.hint


def test_converted_json_without_weights_is_missing(fixture_pth, tmp_path):
    convert_checkpoint(fixture_pth, tmp_path / "out")
    (tmp_path / "out.safetensors").unlink()
    with pytest.raises(CheckpointNotFoundError):
        read_checkpoint(tmp_path / "out.json")


def test_unsupported_extension(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"\0" * 16)
    with pytest.raises(UnsupportedFormatError, match=r"\.onnx"):
        read_checkpoint(path)


@pytest.mark.parametrize("fraction", [0.0, 0.5, 0.999])
def test_truncated_pth(fixture_pth, tmp_path, fraction):
    data = fixture_pth.read_bytes()
    path = tmp_path / "truncated.pth"
    path.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(CorruptCheckpointError) as info:
        read_checkpoint(path)
    assert info.value.hint


def test_damaged_storage_bytes_are_detected(fixture_pth, tmp_path):
    data = bytearray(fixture_pth.read_bytes())
    with zipfile.ZipFile(fixture_pth) as archive:
        info = archive.getinfo("checkpoint/data/100")
        # local header: 30 bytes + name + extra, then the stored (uncompressed) record
        name_len = int.from_bytes(data[info.header_offset + 26: info.header_offset + 28], "little")
        extra_len = int.from_bytes(data[info.header_offset + 28: info.header_offset + 30], "little")
        start = info.header_offset + 30 + name_len + extra_len
    data[start: start + 8] = bytes(8)
    path = tmp_path / "damaged.pth"
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptCheckpointError, match="damaged"):
        read_checkpoint(path)


def test_truncated_safetensors(fixture_safetensors, tmp_path):
    path = tmp_path / "truncated.safetensors"
    path.write_bytes(fixture_safetensors.read_bytes()[:5000])
    with pytest.raises(CorruptCheckpointError):
        read_checkpoint(path)


def test_torch_file_of_another_model(tmp_path):
    path = tmp_path / "resnet.pth"
    torch.save({"state_dict": {"conv1.weight": torch.zeros(2, 3)}}, path)
    with pytest.raises(WrongModelError, match="'model'"):
        read_checkpoint(path)
    torch.save({"conv1.weight": torch.zeros(2, 3)}, path)
    with pytest.raises(WrongModelError):
        read_checkpoint(path)


def test_state_dict_with_wrong_keys(save_pth):
    with pytest.raises(WrongModelError, match="not a Human3R checkpoint"):
        read_checkpoint(save_pth({"conv1.weight": torch.zeros(2, 3)}))


def test_cut3r_checkpoint_gets_a_specific_hint(fixture_tensors, save_pth, model_string):
    cut3r = {k: v for k, v in fixture_tensors.items()
             if not k.startswith(("backbone.", "downstream_head.mlp_", "downstream_head.dec", "downstream_head.init_"))}
    cut3r_string = model_string.replace(", backbone='dinov2_vits14', mhmr_img_res=168", "")
    with pytest.raises(ModelStringError) as info:
        read_checkpoint(save_pth(cut3r, args={"model": cut3r_string}))
    assert "CUT3R" in info.value.hint
    with pytest.raises(WrongModelError) as info:  # same weights, Human3R string
        read_checkpoint(save_pth(cut3r))
    assert "CUT3R" in info.value.hint


def test_checkpoint_without_model_string(fixture_tensors, save_pth):
    path = save_pth(fixture_tensors, args={"lr": 1})
    with pytest.raises(WrongModelError, match="no model string"):
        read_checkpoint(path)
    assert read_checkpoint(path, config=PRESETS["tiny"]).config == PRESETS["tiny"]  # explicit config works


def test_explicit_config_that_does_not_fit(fixture_pth):
    with pytest.raises(ConfigMismatchError, match="config does not match weights"):
        read_checkpoint(fixture_pth, config=PRESETS["human3r-896-L"])


def test_model_string_sizes_that_contradict_the_weights(fixture_tensors, save_pth, model_string):
    with pytest.raises(ConfigMismatchError, match="enc_depth"):
        read_checkpoint(save_pth(fixture_tensors, args={"model": model_string.replace("enc_depth=2", "enc_depth=3")}))


@pytest.mark.parametrize("edit", [
    lambda c: c["dpt"].update(feature_dim=32),
    lambda c: c.update(enc_embed_dim=128),
    lambda c: c["backbone"].update(depth=3),
    lambda c: c.update(dec_depth=8),
])
def test_converted_json_that_does_not_match_the_weights(fixture_pth, tmp_path, edit):
    convert_checkpoint(fixture_pth, tmp_path / "out")
    sidecar = tmp_path / "out.json"
    data = json.loads(sidecar.read_text())
    edit(data["config"])
    sidecar.write_text(json.dumps(data))
    with pytest.raises(ConfigMismatchError, match="does not match"):
        read_checkpoint(tmp_path / "out.safetensors")


def test_converted_json_of_another_format(fixture_pth, tmp_path):
    convert_checkpoint(fixture_pth, tmp_path / "out")
    (tmp_path / "out.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(WrongModelError):
        read_checkpoint(tmp_path / "out.safetensors")
    (tmp_path / "out.json").write_text("{not json")
    with pytest.raises(CorruptCheckpointError):
        read_checkpoint(tmp_path / "out.json")


def test_every_error_is_a_checkpoint_error_with_a_message():
    err = ConfigMismatchError("sizes differ", "use the stored config")
    assert isinstance(err, CheckpointError) and str(err) == "sizes differ\nhint: use the stored config"


def test_convert_refuses_to_overwrite_its_input(fixture_safetensors, tmp_path):
    copy = tmp_path / "in.safetensors"
    copy.write_bytes(fixture_safetensors.read_bytes())
    with pytest.raises(CheckpointError, match="overwrite"):
        convert_checkpoint(copy, copy)
    assert Path(copy).stat().st_size == fixture_safetensors.stat().st_size


def test_failed_conversion_keeps_the_previous_output(fixture_pth, tmp_path, monkeypatch):
    convert_checkpoint(fixture_pth, tmp_path / "out")
    before = (tmp_path / "out.safetensors").read_bytes()

    def broken_save(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr("safetensors.torch.save_file", broken_save)
    with pytest.raises(OSError, match="disk full"):
        convert_checkpoint(fixture_pth, tmp_path / "out")
    assert (tmp_path / "out.safetensors").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json", "out.safetensors"]
