"""One device -> host copy per frame: the packing itself, and an engine frame audited end to end."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from backend.engine.host_copy import copy_to_host
from backend.model.sync_audit import SyncAudit
from backend.video.reader import open_source
from tests.support.fixtures import tiny_job_options



def _tensors(device: str) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    return {"c2w": torch.randn(4, 4, generator=g), "tokens": torch.randn(1, 3, 8, generator=g).bfloat16(),
            "empty": torch.zeros(1, 0, 8), "conf": torch.rand(5, 7, generator=g)}


def _check_round_trip(device: str) -> None:
    tensors = {k: v.to(device) for k, v in _tensors(device).items()}
    with SyncAudit() as audit:
        arrays = copy_to_host(tensors)
    assert audit.count("to_host") == 1, audit.events
    for key, t in tensors.items():
        assert arrays[key].dtype == np.float32 and arrays[key].shape == tuple(t.shape)
        np.testing.assert_array_equal(arrays[key], t.float().cpu().numpy())
    bases = {id(a.base) for a in arrays.values()}
    assert len(bases) == 1  # views of one buffer: one copy
    again = copy_to_host(tensors)
    assert not np.shares_memory(again["c2w"], arrays["c2w"])  # a later frame never overwrites this one


def test_one_buffer_round_trip_on_cpu():
    _check_round_trip("cpu")
    assert copy_to_host({}) == {}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA: the copy goes through pinned memory there")
def test_one_pinned_copy_on_cuda():
    _check_round_trip("cuda")


def test_an_engine_frame_reads_the_count_once_and_copies_once(tiny_engine, tennis_video):
    """A kept frame with tracked people (the tracker matching against earlier tracks): the model's
    person count is the only value read, the frame's arrays come over in one copy, and the tracker
    and post-processing run on that copy."""
    options = tiny_job_options(reset_interval=100, remove_humans_from_points=True)
    frames = iter(open_source(tennis_video))
    run = tiny_engine.init_run()
    for _ in range(2):  # warm-up: per-device constants, and earlier tracks for the tracker
        f = next(frames)
        tiny_engine.process_frame(run, f.index, f.time, f.rgb, options)
    f = next(frames)
    prepared = tiny_engine.prepare(f.rgb, options)
    with SyncAudit() as audit:
        result = tiny_engine.process_frame(run, f.index, f.time, None, options, prepared=prepared)
    assert len(result.people["id"]) > 0 and run.stream.track.last_tokens is not None
    assert sorted(k for k, _, _ in audit.events) == ["nonzero", "to_host"], audit.events
    copy_site = next(where for kind, _, where in audit.events if kind == "to_host")
    assert copy_site.startswith("backend/engine/host_copy.py"), audit.events
