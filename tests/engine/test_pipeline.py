"""Pipelining: the model half of frame t on a worker thread while the caller uses frame t-1.
`run_ahead` itself (order, bound, errors in order, closing), then the engine with it on and off."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from backend.engine.interrupt import JobInterrupted
from backend.engine.run_ahead import run_ahead
from backend.video.reader import VideoError, open_source
from tests.support.fixtures import tiny_job_options


def test_items_arrive_in_order_and_at_most_depth_ahead():
    produced = []

    def produce():
        for i in range(40):
            time.sleep(0.002 * (i % 3))  # uneven producer
            produced.append(i)
            yield i

    got, lead = [], []
    for item in run_ahead(produce(), depth=2):
        time.sleep(0.003 * (item % 2))  # uneven consumer
        lead.append(len(produced) - len(got))
        got.append(item)
    assert got == list(range(40))
    # in the queue (2) + the one being handed over + the one taken: never more
    assert max(lead) <= 2 + 1 + 1 and max(lead) >= 2  # it really ran ahead


def test_an_error_arrives_after_the_items_before_it():
    def produce():
        yield from (0, 1, 2)
        raise ValueError("frame 3 is broken")

    got = []
    with pytest.raises(ValueError, match="frame 3 is broken"):
        for item in run_ahead(produce()):
            got.append(item)
    assert got == [0, 1, 2]


def test_closing_the_consumer_stops_and_closes_the_producer_on_its_thread():
    closed_on = []

    def produce():
        try:
            for i in range(10**6):
                yield i
        finally:
            closed_on.append(threading.current_thread().name)

    ahead = run_ahead(produce(), name="test-producer")
    assert [next(ahead), next(ahead)] == [0, 1]
    ahead.close()
    assert closed_on == ["test-producer"]
    assert not any(t.name == "test-producer" for t in threading.enumerate())
    with pytest.raises(ValueError, match="depth"):
        next(run_ahead(iter(()), depth=0))


def _run(engine, source, options, **kwargs):
    return list(engine.run(source, options, prefetch="off", **kwargs))


def _assert_same(a, b):
    assert [r.index for r in a] == [r.index for r in b]
    for x, y in zip(a, b):
        assert (x.chunk, x.reset) == (y.chunk, y.reset)
        np.testing.assert_array_equal(x.camera.cam_to_world, y.camera.cam_to_world)
        np.testing.assert_array_equal(x.camera.K, y.camera.K)
        for part in ("people", "points"):
            assert getattr(x, part).keys() == getattr(y, part).keys()
            for key, value in getattr(x, part).items():
                np.testing.assert_array_equal(value, getattr(y, part)[key], err_msg=f"{part}/{key}")


def test_the_engine_gives_identical_results_with_and_without_the_pipeline(tiny_engine, tennis_video):
    options = tiny_job_options(end=7, reset_interval=3, remove_humans_from_points=True)  # overlap views too
    with open_source(tennis_video, end=7) as source:
        plain = _run(tiny_engine, source, options, pipeline=False)
    with open_source(tennis_video, end=7) as source:
        piped = _run(tiny_engine, source, options, pipeline=True)
    assert len(plain) == 7 and sum(len(r.people["id"]) for r in plain) > 0
    _assert_same(plain, piped)


def test_a_decoding_error_reaches_the_caller_after_the_frames_before_it(tiny_engine, tennis_video):
    with open_source(tennis_video, end=3) as source:
        frames = list(source)

    def broken():
        yield from frames
        raise VideoError("corrupt", "packet 3 is damaged", frame_index=3)

    got = []
    with pytest.raises(VideoError, match="packet 3"):
        for result in tiny_engine.run(broken(), tiny_job_options(), prefetch="off", pipeline=True):
            got.append(result.index)
    assert got == [0, 1, 2]


def test_a_set_cancel_event_stops_the_worker_mid_frame(tiny_engine, tennis_video):
    cancel = threading.Event()
    cancel.set()
    with open_source(tennis_video, end=3) as source:
        results = tiny_engine.run(source, tiny_job_options(), prefetch="off", pipeline=True, cancel=cancel)
        with pytest.raises(JobInterrupted):
            next(results)
