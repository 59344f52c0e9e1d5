"""Model-string parsing, config inference, strict loading reports, build_model and the schema check."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from backend.config import PRESETS
from backend.model.checkpoint import (
    CheckpointMismatchError, ConfigMismatchError, ModelStringError, build_model, check_schema, infer_config,
    load_weights, parse_model_string, read_checkpoint, read_schema_tsv,
)
from backend.model.checkpoint.keys import key_group


@pytest.fixture(scope="session")
def tsv_path(shared_dir: Path) -> Path:
    return shared_dir / "spec" / "human3r-state-dict.tsv"


@pytest.fixture(scope="session")
def full_model_string(tsv_path: Path) -> str:
    line = next(l for l in tsv_path.read_text().splitlines() if l.startswith("# config string"))
    return line.split(": ", 1)[1].strip()


# ------------------------------------------------------------------------------------------ model string

def test_parse_model_string(model_string):
    kwargs = parse_model_string(model_string)
    assert kwargs["depth_mode"] == ("exp", -math.inf, math.inf)
    assert kwargs["conf_mode"] == ("exp", 1, math.inf)
    assert kwargs["img_size"] == (112, 112)
    assert kwargs["patch_embed_cls"] == "PatchEmbedDust3R" and kwargs["landscape_only"] is False
    assert kwargs["enc_embed_dim"] == 64 and kwargs["backbone"] == "dinov2_vits14"


@pytest.mark.parametrize("text", [
    "__import__('os').system('touch /tmp/pwned')",
    "ARCroco3DStereo(ARCroco3DStereoConfig(state_size=__import__('os').system('x')))",
    "ARCroco3DStereo(ARCroco3DStereoConfig(state_size=(lambda: 1)()))",
    "ARCroco3DStereo(ARCroco3DStereoConfig(state_size=os.sep))",
    "ARCroco3DStereo(ARCroco3DStereoConfig(state_size=2**64**64))",
    "ARCroco3DStereo(ARCroco3DStereoConfig(**{'a': 1}))",
    "ARCroco3DStereo(ARCroco3DStereoConfig(state_size=open))",
    "ARCroco3DStereo(ARCroco3DStereoConfig(state_size=[x for x in ()]))",
    "CroCoNet(ARCroco3DStereoConfig(state_size=1))",
    "ARCroco3DStereo(CroCoConfig(state_size=1))",
    "ARCroco3DStereo(ARCroco3DStereoConfig(state_size=1), extra=2)",
    "ARCroco3DStereo(ARCroco3DStereoConfig(state_size=1)); import os",
    "ARCroco3DStereo(ARCroco3DStereoConfig(state_size=1, state_size=2))",
    "",
    "ARCroco3DStereo(",
])
def test_model_string_rejects_code(text):
    with pytest.raises(ModelStringError):
        parse_model_string(text)


@pytest.mark.parametrize("old,new,match", [
    ("output_mode='pts3d+pose+smpl'", "output_mode='pts3d'", "output_mode"),
    ("head_type='dpt'", "head_type='linear'", "head_type"),
    ("pos_embed='RoPE100'", "pos_embed='cosine'", "pos_embed"),
    ("depth_mode=('exp', -inf, inf)", "depth_mode=('linear', -inf, inf)", "depth_mode"),
    ("conf_mode=('exp', 1, inf)", "conf_mode=('exp', 0, inf)", "conf_mode"),
    ("pose_mode=('exp', -inf, inf)", "pose_mode=('exp', 0, inf)", "pose_mode"),
    ("rgb_head=True", "rgb_head=True, depth_head=True", "depth_head"),
    ("rgb_head=True", "rgb_head=True, frobnicate=3", "frobnicate"),
    ("patch_embed_cls='ManyAR_PatchEmbed'", "patch_embed_cls='Evil'", "patch_embed_cls"),
    ("backbone='dinov2_vits14'", "backbone='resnet50'", "backbone"),
])
def test_unsupported_model_configs_are_rejected(model_string, fixture_tensors, old, new, match):
    assert old in model_string
    kwargs = parse_model_string(model_string.replace(old, new))
    shapes = {k: tuple(v.shape) for k, v in fixture_tensors.items()}
    with pytest.raises(ModelStringError, match=match):
        infer_config(kwargs, shapes)


def test_infer_config_fixture_is_tiny(model_string, fixture_tensors):
    shapes = {k: tuple(v.shape) for k, v in fixture_tensors.items()}
    assert infer_config(parse_model_string(model_string), shapes) == PRESETS["tiny"]


def test_infer_config_full_size_is_the_release_preset(full_model_string, tsv_path):
    shapes = {key: shape for key, (shape, _, _) in read_schema_tsv(tsv_path).items()}
    assert len(shapes) == 1631
    assert infer_config(parse_model_string(full_model_string), shapes) == PRESETS["human3r-896-L"]


def test_infer_config_vits_variant(full_model_string, tsv_path):
    """ViT-S/14 backbone at 672 px (the paper's faster variant): sizes come from shapes, heads from the name."""
    shapes = {key: shape for key, (shape, _, _) in read_schema_tsv(tsv_path).items()}
    shapes = {k: v for k, v in shapes.items() if not k.startswith("backbone.encoder.blocks.")
              or int(k.split(".")[3]) < 12}
    for key, shape in list(shapes.items()):
        if key.startswith("backbone."):
            shapes[key] = tuple(384 if d == 1024 else 1536 if d == 4096 else 1152 if d == 3072 else d for d in shape)
    for head in ("decpose", "decshape", "decexpression"):
        out = shapes[f"downstream_head.{head}.mlp.layers.2.weight"][0]
        shapes[f"downstream_head.{head}.mlp.layers.0.weight"] = (4608, 1152)
        shapes[f"downstream_head.{head}.mlp.layers.2.weight"] = (out, 4608)
    shapes["downstream_head.mlp_fuse.mlp.layers.0.weight"] = (5632, 1408)
    shapes["downstream_head.mlp_msk.mlp.layers.2.weight"] = (196, 384)
    string = full_model_string.replace("dinov2_vitl14", "dinov2_vits14").replace("mhmr_img_res=896", "mhmr_img_res=672")
    assert infer_config(parse_model_string(string), shapes) == PRESETS["human3r-672-S"]


def test_key_groups():
    assert key_group("backbone.encoder.blocks.3.attn.qkv.weight") == "backbone.encoder.blocks.*"
    assert key_group("enc_blocks.11.mlp.fc1.bias") == "enc_blocks.*"
    assert key_group("downstream_head.mlp_fuse.mlp.layers.0.weight") == "downstream_head.mlp_fuse.mlp"
    assert key_group("pose_token") == "pose_token"


# ------------------------------------------------------------------------------------------ loading

def test_load_weights_reports_missing_unexpected_and_misshaped(fixture_tensors, tiny_meta_model):
    model = tiny_meta_model
    state = dict(fixture_tensors)
    for key in [k for k in state if k.startswith("backbone.encoder.blocks.1.")]:
        del state[key]
    state["enc_norm.weight"] = torch.zeros(65)
    state["extra.thing"] = torch.zeros(1)
    with pytest.raises(CheckpointMismatchError) as info:
        load_weights(model, state, assign=True)
    err = info.value
    message = str(err)
    assert "missing 14 keys under backbone.encoder.blocks.*" in message
    assert "unexpected extra.thing" in message
    assert "enc_norm.weight: expected (64,), got (65,)" in message
    assert "config does not match weights" in err.hint
    assert len(err.missing) == 14 and err.unexpected == ["extra.thing"]
    assert err.mismatched == {"enc_norm.weight": ((64,), (65,))}


def test_load_weights_recognises_a_cut3r_checkpoint(fixture_tensors, tiny_meta_model):
    model = tiny_meta_model
    state = {k: v for k, v in fixture_tensors.items()
             if not k.startswith(("downstream_head.dec", "downstream_head.mlp_fuse"))}
    with pytest.raises(CheckpointMismatchError) as info:
        load_weights(model, state, assign=True)
    assert "CUT3R checkpoint without the human branch" in info.value.hint


def test_load_weights_truncates_long_reports(tiny_meta_model):
    model = tiny_meta_model
    with pytest.raises(CheckpointMismatchError) as info:
        load_weights(model, {f"junk.{i}.w{i % 40}.x": torch.zeros(1) for i in range(500)}, assign=True)
    assert len(str(info.value).splitlines()) < 40
    assert "not a Human3R checkpoint" in info.value.hint


def test_load_weights_accepts_module_prefix_and_one_alias_name(fixture_tensors, tiny_meta_model):
    model = tiny_meta_model
    state = {"module." + k: v for k, v in fixture_tensors.items() if ".scratch.layer_rn." not in k}
    load_weights(model, state, assign=True)
    head = model.downstream_head.dpt_rgb.scratch
    assert head.layer_rn[3].weight is head.layer4_rn.weight
    assert torch.equal(head.layer4_rn.weight, fixture_tensors["downstream_head.dpt_rgb.scratch.layer4_rn.weight"])


@pytest.mark.parametrize("source", ["checkpoint.pth", "checkpoint.safetensors"])
def test_build_model(parity_fixture_dir, fixture_tensors, source):
    model, loaded = build_model(parity_fixture_dir / source)
    assert not model.training and loaded.config == PRESETS["tiny"]
    state = model.state_dict()
    assert set(state) == set(fixture_tensors)
    for key, value in fixture_tensors.items():
        assert state[key].device.type == "cpu" and torch.equal(state[key], value), key
    assert not any(t.is_meta for t in list(model.parameters()) + list(model.buffers()))
    assert loaded.state_dict == {}  # handed over to the model


def test_build_model_in_half_precision(fixture_pth, fixture_tensors):
    model, _ = build_model(fixture_pth, dtype=torch.float16)
    assert {p.dtype for p in model.parameters()} == {torch.float16}
    key = "downstream_head.init_betas"
    assert model.state_dict()[key].dtype == torch.float16
    assert torch.equal(model.state_dict()[key], fixture_tensors[key].half())


def test_build_model_rejects_a_config_that_does_not_fit(fixture_pth):
    with pytest.raises(ConfigMismatchError):
        build_model(fixture_pth, config=PRESETS["human3r-672-S"])


def test_read_checkpoint_then_strict_load_into_a_real_model(fixture_pth):
    """The documented two-step path: real (non-meta) model, copy-loading."""
    from backend.model.human3r import Human3R

    loaded = read_checkpoint(fixture_pth)
    torch.manual_seed(0)
    model = Human3R(loaded.config)
    load_weights(model, loaded.state_dict)
    assert torch.equal(model.pose_token.detach(), loaded.state_dict["pose_token"])


# ------------------------------------------------------------------------------------------ schema

def test_full_size_schema_matches_the_official_table(tsv_path, tiny_meta_model):
    assert check_schema(tsv_path) == []


def test_schema_check_reports_differences(tsv_path, tmp_path, tiny_meta_model):
    lines = tsv_path.read_text().splitlines(keepends=True)
    edited = [l.replace("pose_token\t1,1,768", "pose_token\t1,1,769") for l in lines
              if not l.startswith("masked_smpl_token\t")]
    edited.append("made_up.weight\t3\tfloat32\t3\tparameter\n")
    table = tmp_path / "table.tsv"
    table.write_text("".join(edited))
    problems = check_schema(table)
    text = "\n".join(problems)
    assert "pose_token: shape (1, 1, 768) but the table says (1, 1, 769)" in text
    assert "model lacks made_up.weight" in text
    assert "model has extra masked_smpl_token" in text
