"""CPU thread policy: a real-size model gets every core, a millisecond model leaves one to the decoder."""
from __future__ import annotations

import dataclasses

import torch

from backend.config import PRESETS
from backend.engine.cpu_threads import BIG_MODEL_GFLOP, frame_gflop, model_threads
from backend.engine.stream import available_cores


def test_real_models_get_every_core_and_tiny_leaves_one():
    for name in ("human3r-896-L", "human3r-672-S"):
        assert frame_gflop(PRESETS[name]) > 10 * BIG_MODEL_GFLOP
        assert model_threads(PRESETS[name], 2) == 2 and model_threads(PRESETS[name], 16) == 16
    assert frame_gflop(PRESETS["tiny"]) < BIG_MODEL_GFLOP / 10
    assert model_threads(PRESETS["tiny"], 2) == 1 and model_threads(PRESETS["tiny"], 1) == 1


def test_cost_estimate_grows_with_the_backbone():
    small, large = PRESETS["human3r-672-S"], PRESETS["human3r-896-L"]
    assert frame_gflop(large) > 3 * frame_gflop(small)
    wider = dataclasses.replace(small, enc_embed_dim=2 * small.enc_embed_dim)
    assert frame_gflop(wider) > frame_gflop(small)


def test_engine_default_follows_the_policy(tiny_engine):
    cores = available_cores()
    assert tiny_engine.use_cpu_threads() == max(1, cores - 1) == torch.get_num_threads()
    assert tiny_engine.use_cpu_threads(1) == 1
