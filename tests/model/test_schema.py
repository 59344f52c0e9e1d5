"""State-dict keys and shapes: full size against the official schema TSV, tiny against the fixture."""
from __future__ import annotations

import torch
from safetensors import safe_open

from backend.config import preset
from backend.model.human3r import Human3R
from backend.parity.model import config_from_fixture


def _tsv_shapes(path) -> dict[str, tuple[int, ...]]:
    shapes = {}
    for line in path.read_text().splitlines():
        if line.startswith("#") or line.startswith("key\t") or not line.strip():
            continue
        key, shape = line.split("\t")[:2]
        shapes[key] = tuple(int(x) for x in shape.split(","))
    return shapes


def test_full_size_state_dict_matches_schema(state_dict_tsv):
    with torch.device("meta"):
        model = Human3R(preset("human3r-896-L"))
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    ref = _tsv_shapes(state_dict_tsv)
    assert len(ref) == 1631
    assert ours == ref
    assert list(ours) == list(ref)  # same order as the reference, too
    # the 12 DPT aliases are the same parameter under two names
    head = model.downstream_head
    for name in ("dpt_self", "dpt_cross", "dpt_rgb"):
        scratch = getattr(head, name).scratch
        assert scratch.layer_rn[0] is scratch.layer1_rn and scratch.layer_rn[3] is scratch.layer4_rn
    buffers = dict(model.named_buffers())
    names = ("body_pose", "betas", "betas_kid", "cam", "expression")
    assert set(buffers) == {f"downstream_head.init_{n}" for n in names}


def test_tiny_state_dict_matches_fixture_checkpoint(parity_dir):
    import json

    cfg = config_from_fixture(json.loads((parity_dir / "config.json").read_text()))
    assert cfg == preset("tiny")  # the preset describes this fixture
    with torch.device("meta"):
        model = Human3R(cfg)
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    with safe_open(str(parity_dir / "checkpoint.safetensors"), "pt") as f:
        ref = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    assert ours == ref
