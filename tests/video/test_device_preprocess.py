"""Fast-mode preprocessing on a device from uint8 against the reference (PIL) preprocessing."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from backend.video.preprocess import prepare_frame, prepare_frame_on
from backend.video.reader import open_source

# fast-mode tolerance (not parity): inputs in [-1, 1]; the resize filters differ (Lanczos vs bicubic)
MEAN_ABS_TOL = 0.02  # ~2.5 uint8 levels on average
P99_ABS_TOL = 0.1


def _compare(ref, got):
    assert got.geometry == ref.geometry and got.true_shape == ref.true_shape
    for name in ("img", "img_mhmr"):
        a, b = getattr(ref, name), getattr(got, name).float().cpu()
        assert a.shape == b.shape, name
        diff = (a - b).abs()
        assert float(diff.mean()) < MEAN_ABS_TOL and float(diff.flatten().quantile(0.99)) < P99_ABS_TOL, name
        assert float(diff.max()) > 0  # a different filter, really
    colors = np.abs(ref.colors.astype(int) - got.colors.astype(int))
    assert colors.mean() < MEAN_ABS_TOL * 127.5 and got.colors.dtype == np.uint8


@pytest.mark.parametrize("size,mhmr_res", [(512, 896), (112, 168)])
def test_device_path_matches_the_reference_on_video(tennis_video, size, mhmr_res):
    with open_source(tennis_video, end=2) as source:
        frames = [f.rgb for f in source]
    for rgb in frames:
        _compare(prepare_frame(rgb, size, mhmr_res), prepare_frame_on("cpu", rgb, size, mhmr_res))


def test_upscaling_a_small_frame_and_bad_input():
    rng = np.random.default_rng(0)
    rgb = (rng.random((60, 90, 3)) * 255).astype(np.uint8)
    rgb = np.kron(rgb[::6, ::6], np.ones((6, 6, 1), np.uint8))  # blocks: a smooth enough test image
    _compare(prepare_frame(rgb, 112, 168), prepare_frame_on("cpu", rgb, 112, 168))
    with pytest.raises(ValueError, match="uint8"):
        prepare_frame_on("cpu", rgb.astype(np.float32), 112, 168)
    with pytest.raises(ValueError, match="too small or too elongated"):
        prepare_frame_on("cpu", np.zeros((2, 400, 3), np.uint8), 112, 168)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA: the device path on a GPU")
def test_device_path_on_cuda_matches_the_cpu_device_path(tennis_video):
    with open_source(tennis_video, end=1) as source:
        rgb = next(iter(source)).rgb
    a, b = prepare_frame_on("cpu", rgb), prepare_frame_on("cuda", rgb)
    assert b.img.device.type == "cuda"
    assert float((a.img - b.img.cpu()).abs().max()) < 2 / 127.5  # one uint8 level of rounding
