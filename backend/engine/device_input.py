"""Frames preprocessed on the model's device, one frame ahead of the model (fast mode on a GPU).

When a job preprocesses on the device (`backend.model.precision.preprocesses_on_device`), the
decoder hands over uint8 frames (`RawFrame`; read into page-locked memory on CUDA) and this module
finishes them (`PrepareSettings.finish`). On CUDA the upload and preprocessing of frame t+1 are
queued on a side stream before the model of frame t is queued, so they run while the model runs;
the model's stream waits for them through an event, and the host never waits. Elsewhere (a CPU
device, or a live source, whose newest frame must not wait behind a look-ahead) each frame is
finished when the model asks for it.
"""
from __future__ import annotations

import time
from typing import Iterator

import torch

from backend.video.preprocess import PrepareSettings
from backend.video.ready_frames import ReadyFrame


def finished_frames(frames: Iterator[ReadyFrame], settings: PrepareSettings, ahead: bool = True) -> Iterator[ReadyFrame]:
    """`frames` with every `RawFrame` prepared on `settings.device` (other items pass unchanged).

    Args:
        frames: the decoder's items (`backend.video.ready_frames`).
        settings: the job's preprocessing settings; `device` None = nothing to do here.
        ahead: on CUDA, prepare one frame ahead on a side stream (see the module docstring).
    Yields:
        `ReadyFrame`s whose `prepared` is a `PreparedFrame` on the device; `prepare_s` adds the host
        time spent queuing the work.
    """
    if settings.device is None:
        yield from frames
        return
    device = torch.device(settings.device)
    if device.type != "cuda" or not ahead:
        for frame in frames:
            yield _finish(frame, settings)
        return
    side = torch.cuda.Stream(device)
    pending = None
    for frame in frames:
        with torch.cuda.stream(side):
            finished = _finish(frame, settings)
            done = side.record_event()
        if pending is not None:
            yield _hand_over(*pending)
        pending = (finished, done)
    if pending is not None:
        yield _hand_over(*pending)


def _finish(frame: ReadyFrame, settings: PrepareSettings) -> ReadyFrame:
    t0 = time.perf_counter()
    with torch.inference_mode():
        prepared = settings.finish(frame.prepared)
    return frame._replace(prepared=prepared, prepare_s=frame.prepare_s + time.perf_counter() - t0)


def _hand_over(frame: ReadyFrame, done: torch.cuda.Event) -> ReadyFrame:
    """Make the consumer's stream wait for the side stream's work on `frame`, and tell the caching
    allocator that the tensors are used there (so the side stream cannot reuse their memory early)."""
    stream = torch.cuda.current_stream(frame.prepared.img.device)
    stream.wait_event(done)
    frame.prepared.img.record_stream(stream)
    frame.prepared.img_mhmr.record_stream(stream)
    return frame
