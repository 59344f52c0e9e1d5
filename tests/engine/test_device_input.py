"""Preprocessing on the model's device (fast mode on a GPU): where it runs, the decoder's raw frames in
every prefetch mode, the accuracy of what the model gets, and a whole fast job taking that path.

The device path is generic torch code, so on a CPU it runs with device 'cpu' (forced through
`Engine.device_preprocessing`); the side-stream look-ahead only exists on CUDA."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from backend.engine.device_input import finished_frames
from backend.model.precision import FAST, PARITY, preprocesses_on_device
from backend.video.preprocess import PrepareSettings, RawFrame, prepare_frame
from backend.video.ready_frames import ready_frames
from backend.video.reader import open_source
from tests.support.fixtures import tiny_job_options
from tests.video.test_device_preprocess import _compare

FRAMES = 6


def test_only_fast_mode_on_cuda_preprocesses_on_the_device(tiny_engine):
    assert preprocesses_on_device(FAST, "cuda") and preprocesses_on_device(FAST, torch.device("cuda:1"))
    assert not preprocesses_on_device(PARITY, "cuda") and not preprocesses_on_device(FAST, "cpu")
    assert tiny_engine.device_preprocessing is None
    for precision in ("fp32", "fast", "auto"):  # a CPU engine: the host path (the decoding process does it all)
        assert tiny_engine.prepare_settings(tiny_job_options(precision=precision)).device is None
    tiny_engine.device_preprocessing = True
    try:
        assert tiny_engine.prepare_settings(tiny_job_options(precision="fast")).device == "cpu"
    finally:
        tiny_engine.device_preprocessing = None


@pytest.mark.parametrize("mode", ["process", "thread", "off"])
def test_the_decoder_sends_raw_frames_that_finish_within_the_fast_bound(tennis_video, mode):
    settings = PrepareSettings(size=112, mhmr_res=168, jpeg_roundtrip=True, device="cpu")
    with open_source(tennis_video, end=3) as source:
        expected = [prepare_frame(f.rgb, 112, 168, jpeg_roundtrip=True) for f in source]
    with open_source(tennis_video, end=3) as source:
        raw = list(ready_frames(source, settings, mode, 1))
    assert [type(f.prepared) for f in raw] == [RawFrame] * 3
    assert raw[0].prepared.rgb.dtype == np.uint8 and raw[0].prepared.orig_size == expected[0].orig_size
    got = list(finished_frames(iter(raw), settings))
    assert [f.index for f in got] == [0, 1, 2]
    for ref, frame in zip(expected, got):
        _compare(ref, frame.prepared)


def test_a_raw_frame_the_crop_leaves_empty_is_refused_on_the_decoder():
    settings = PrepareSettings(size=112, mhmr_res=168, device="cpu")
    with pytest.raises(ValueError, match="too small or too elongated"):
        settings.on_decoder(np.zeros((2, 600, 3), np.uint8))


def test_a_fast_job_gives_the_model_device_prepared_frames_within_the_bound(tiny_engine, tennis_video):
    """The engine's own frame loop (decoding process -> raw frames -> device path -> model) in a fast
    job with device preprocessing forced on the CPU: every frame the model got is the host
    preprocessing's within the fast-mode input bound, and the job runs to the end."""
    options = tiny_job_options(end=FRAMES, precision="fast")
    with open_source(tennis_video, end=FRAMES) as source:
        expected = [prepare_frame(f.rgb, options.size, tiny_engine.mhmr_res) for f in source]
    tiny_engine.device_preprocessing = True
    try:
        run = tiny_engine.init_run()
        with open_source(tennis_video, end=FRAMES) as source:
            done = list(tiny_engine._model_frames(run, source, options, "process", None))
        with open_source(tennis_video, end=FRAMES) as source:
            results = list(tiny_engine.run(source, options))
    finally:
        tiny_engine.device_preprocessing = None
    assert [d.index for d in done] == list(range(FRAMES)) and run.processed == FRAMES
    for ref, frame in zip(expected, done):
        _compare(ref, frame.prepared)
    assert [r.index for r in results] == list(range(FRAMES))
    assert all(np.isfinite(r.camera.cam_to_world).all() and len(r.points["xyz"]) for r in results)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA: the side-stream look-ahead")
def test_cuda_look_ahead_gives_the_frames_of_the_inline_path(tennis_video):
    settings = PrepareSettings(size=512, mhmr_res=896, device="cuda")
    with open_source(tennis_video, end=4) as source:
        raw = list(ready_frames(source, settings, "process", 0))
    assert raw[0].prepared.rgb.is_pinned()  # read out of the ring into page-locked memory
    ahead = list(finished_frames(iter(raw), settings, ahead=True))
    inline = list(finished_frames(iter(raw), settings, ahead=False))
    torch.cuda.synchronize()
    for a, b in zip(ahead, inline):
        assert a.prepared.img.device.type == "cuda"
        assert torch.equal(a.prepared.img, b.prepared.img) and torch.equal(a.prepared.img_mhmr, b.prepared.img_mhmr)
        assert np.array_equal(a.prepared.colors, b.prepared.colors)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA: a fast job preprocessing on the GPU")
def test_a_fast_cuda_job_gives_the_model_gpu_prepared_frames_within_the_bound(parity_fixture_dir, synthetic_smplx_path,
                                                                              tennis_video):
    """A CUDA engine's 'auto' job (fast) preprocesses on the GPU, one frame ahead on a side stream:
    every frame the model got is the host preprocessing's within the fast-mode input bound."""
    from backend.engine.stream import Engine

    gpu = Engine.from_paths(parity_fixture_dir / "checkpoint.pth", synthetic_smplx_path, "cuda", graphs=False)
    options = tiny_job_options(end=FRAMES)
    assert gpu.prepare_settings(options).device == "cuda"
    with open_source(tennis_video, end=FRAMES) as source:
        expected = [prepare_frame(f.rgb, options.size, gpu.mhmr_res) for f in source]
    run = gpu.init_run()
    with open_source(tennis_video, end=FRAMES) as source:
        done = list(gpu._model_frames(run, source, options, "process", None))
    assert [d.index for d in done] == list(range(FRAMES))
    for ref, frame in zip(expected, done):
        assert frame.prepared.img.device.type == "cuda"
        _compare(ref, frame.prepared)
    with open_source(tennis_video, end=FRAMES) as source:
        results = list(gpu.run(source, options))
    assert all(np.isfinite(r.camera.cam_to_world).all() for r in results) and len(results) == FRAMES
