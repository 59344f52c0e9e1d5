"""Streaming API behaviour on the tiny fixture model: n = 0, bad inputs, resets, schedule, rgb."""
from __future__ import annotations


import pytest
import torch

from backend.model.human3r import Human3R, view_schedule


def _view(inputs, v):
    return torch.from_numpy(inputs["img"][v]), torch.from_numpy(inputs["img_mhmr"][v])


def test_no_people_path(tiny_model, fixture_inputs):
    model = tiny_model
    state = model.init_stream()
    for v in range(3):  # a threshold no score can reach
        out, state = model.step(state, *_view(fixture_inputs, v), reset=False, use_ttt3r=True,
                                detection_threshold=2.0)
        assert out.n_humans == 0
        assert out.smpl_loc.shape == (1, 0, 2) and out.smpl_id.shape == (1, 0)
        assert out.smpl_rotmat.shape == (1, 0, 53, 3, 3) and out.smpl_shape.shape == (1, 0, 10)
        assert out.smpl_transl.shape == (1, 0, 3) and out.smpl_expression.shape == (1, 0, 10)
        assert out.smpl_scores.shape == (1, 12, 12, 1) and out.msk.shape == (1, 168, 168, 1)
        assert torch.isfinite(out.pts3d_in_self_view).all() and torch.isfinite(out.camera_pose).all()
        assert state.track.last_tokens is None and state.track.max_id == -1


def test_people_then_nobody_keeps_tracks(tiny_model, fixture_inputs):
    state = tiny_model.init_stream()
    out, state = tiny_model.step(state, *_view(fixture_inputs, 0), reset=False)
    assert out.n_humans == 3 and out.smpl_id.tolist() == [[0, 1, 2]]
    out, state2 = tiny_model.step(state, *_view(fixture_inputs, 1), reset=False, detection_threshold=2.0)
    assert out.n_humans == 0 and state2.track is state.track


def test_reset_restores_initial_state_and_next_view_starts_a_chunk(tiny_model, fixture_inputs):
    state = tiny_model.init_stream()
    _, state = tiny_model.step(state, *_view(fixture_inputs, 0), reset=False)
    assert not torch.equal(state.state, state.init_state) and not state.first_of_chunk
    _, state = tiny_model.step(state, *_view(fixture_inputs, 1), reset=True)
    assert torch.equal(state.state, state.init_state) and torch.equal(state.mem, state.init_mem)
    assert state.first_of_chunk and state.views_done == 2


def test_rgb_only_when_asked(tiny_model, fixture_inputs):
    state = tiny_model.init_stream()
    out, _ = tiny_model.step(state, *_view(fixture_inputs, 0), reset=False)
    assert out.rgb is None and "rgb" not in out.as_dict()
    out, _ = tiny_model.step(state, *_view(fixture_inputs, 0), reset=False, want_rgb=True)
    assert out.rgb.shape == (1, 80, 112, 3)


@pytest.mark.parametrize("img_shape,mhmr_shape,dtype,match", [
    ((1, 3, 80, 100), (1, 3, 168, 168), torch.float32, "multiples of 16"),
    ((1, 3, 72, 112), (1, 3, 168, 168), torch.float32, "multiples of 16"),
    ((1, 3, 80, 112), (1, 3, 160, 160), torch.float32, r"\[1, 3, 168, 168\]"),
    ((1, 4, 80, 112), (1, 3, 168, 168), torch.float32, r"\[1, 3, H, W\]"),
    ((2, 3, 80, 112), (2, 3, 168, 168), torch.float32, r"\[1, 3, H, W\]"),
    ((3, 80, 112), (1, 3, 168, 168), torch.float32, r"\[1, 3, H, W\]"),
    ((1, 3, 80, 112), (1, 3, 168, 168), torch.uint8, "float32"),
    ((1, 3, 80, 112), (1, 3, 168, 168), torch.float64, "float32"),
])
def test_bad_inputs_raise_value_error(tiny_model, img_shape, mhmr_shape, dtype, match):
    state = tiny_model.init_stream()
    img = torch.zeros(img_shape, dtype=dtype)
    mhmr = torch.zeros(mhmr_shape, dtype=torch.float32 if dtype != torch.float64 else dtype)
    with pytest.raises(ValueError, match=match):
        tiny_model.step(state, img, mhmr, reset=False)


def test_non_tensor_input(tiny_model):
    with pytest.raises(ValueError, match="torch.Tensor"):
        tiny_model.step(tiny_model.init_stream(), [[0.0]], torch.zeros(1, 3, 168, 168), reset=False)


def test_view_schedule_matches_reference_order():
    views = view_schedule(7, 5)
    assert [(v.frame_index, v.reset, v.is_overlap) for v in views] == [
        (0, False, False), (1, False, False), (2, False, False), (3, False, False), (4, True, False),
        (4, False, True), (5, False, False), (6, False, False),
    ]
    assert all(not v.reset for v in view_schedule(10, None))
    assert len(view_schedule(10, 0)) == 10
    assert [v.frame_index for v in view_schedule(4, 2)] == [0, 1, 1, 2, 3, 3]


def test_other_aspect_ratio_runs(tiny_model, fixture_inputs):
    """Portrait 112x80 input (not in the fixture) goes through every head with consistent shapes."""
    img = torch.from_numpy(fixture_inputs["img"][0]).transpose(-1, -2).contiguous()  # [1, 3, 112, 80]
    mhmr = torch.from_numpy(fixture_inputs["img_mhmr"][0]).transpose(-1, -2).contiguous()
    out, state = tiny_model.step(tiny_model.init_stream(), img, mhmr, reset=False, want_rgb=True)
    assert out.pts3d_in_self_view.shape == (1, 112, 80, 3) and out.conf.shape == (1, 112, 80)
    assert out.rgb.shape == (1, 112, 80, 3)
    n = out.n_humans
    assert out.smpl_rotmat.shape == (1, n, 53, 3, 3) and out.smpl_id.shape == (1, n)
    assert state.views_done == 1


def test_constructor_signature_and_meta_device():
    from backend.config import preset

    with torch.device("meta"):
        model = Human3R(preset("tiny"))  # the config is the one positional argument
    params = list(model.parameters()) + list(model.buffers())
    assert len(params) > 100 and all(t.is_meta for t in params)  # nothing was allocated
    assert model.config == preset("tiny")
    with pytest.raises(TypeError):
        Human3R()  # no hidden default model size


def test_detection_threshold_keyword_changes_only_this_view(tiny_model, fixture_inputs):
    """The threshold is a per-call keyword; the model's config (and so the next call) is untouched."""
    state = tiny_model.init_stream()
    default = tiny_model.config.detection_threshold
    strict, _ = tiny_model.step(state, *_view(fixture_inputs, 0), reset=False, detection_threshold=0.99)
    normal, _ = tiny_model.step(state, *_view(fixture_inputs, 0), reset=False)
    assert tiny_model.config.detection_threshold == default
    assert strict.n_humans == 0 and normal.n_humans == 3
