"""Decoding ahead of the model (`backend.video.ready_frames`): the decoding process must hand over exactly
what in-process preprocessing makes, keep the source's error order, stop when told or orphaned, and
leave nothing behind (processes, shared memory)."""
from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch

from backend.video import ready_frames as prefetch
from backend.video.decoding_process import SlotLayout
from backend.video.preprocess import PrepareSettings
from backend.video.ready_frames import PrefetchError, ready_frames
from backend.video.reader import VideoError, open_source
from tests.video.media import noise_frame, write_video

SETTINGS = PrepareSettings(size=112, mhmr_res=168)
REPO = Path(__file__).resolve().parents[2]


def decoders() -> list[multiprocessing.Process]:
    return [p for p in multiprocessing.active_children() if p.name == "human3r-decode"]


def shm_names() -> set[str]:
    return set(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else set()


def assert_same_items(got, expected) -> None:
    assert [f.index for f in got] == [f.index for f in expected]
    assert [f.time for f in got] == [f.time for f in expected]
    for a, b in zip(got, expected):
        assert torch.equal(a.prepared.img, b.prepared.img)
        assert torch.equal(a.prepared.img_mhmr, b.prepared.img_mhmr)
        assert np.array_equal(a.prepared.colors, b.prepared.colors)
        assert a.prepared.geometry == b.prepared.geometry
        assert a.prepared.true_shape == b.prepared.true_shape and a.prepared.orig_size == b.prepared.orig_size


def collect(source, mode: str, **kw):
    with source:
        return list(ready_frames(source, SETTINGS, mode, **kw))


def test_process_matches_in_process_preparation_bit_for_bit(tennis_video):
    got = collect(open_source(tennis_video, start=3, end=12, stride=2), "process", decode_threads=1)
    assert decoders() == []  # the decoding process is gone once the iteration ends
    expected = collect(open_source(tennis_video, start=3, end=12, stride=2), "off")
    assert [f.index for f in expected] == [3, 5, 7, 9, 11]
    assert_same_items(got, expected)
    assert all(f.decode_s > 0 and f.prepare_s > 0 for f in got)


def test_frames_larger_than_a_slot_come_inline(tmp_path):
    # the ring is sized from the first image; a larger later image travels through the pipe instead
    folder = tmp_path / "images"
    folder.mkdir()
    sizes = [(300, 100), (160, 120), (330, 110)]  # 3:1, then 4:3 (a taller model image), then 3:1 again
    for i, (w, h) in enumerate(sizes):
        PIL.Image.fromarray(noise_frame(w, h, i)).save(folder / f"{i:03d}.png")
    assert SlotLayout.expected(300, 100, SETTINGS).nbytes < SlotLayout.expected(160, 120, SETTINGS).nbytes
    got = collect(open_source(folder), "process")
    assert_same_items(got, collect(open_source(folder), "off"))
    assert [f.prepared.orig_size for f in got] == sizes


@pytest.mark.parametrize("mode", ["process", "thread", "off"])
def test_corrupt_video_raises_after_the_good_frames(tmp_path, mode):
    full = write_video(tmp_path / "clip.mkv", [noise_frame(96, 64, i) for i in range(24)])
    data = full.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) // 2])
    got = []
    with pytest.raises(VideoError) as info, open_source(cut) as source:
        for item in ready_frames(source, PrepareSettings(64, 56), mode):
            got.append(item.index)
    assert info.value.code == "corrupt" and info.value.path == str(cut)
    assert 0 < len(got) < 24 and got == list(range(info.value.frame_index))


def test_a_frame_preprocessing_refuses_is_the_same_value_error_in_every_mode(tmp_path):
    path = tmp_path / "sliver.png"
    PIL.Image.fromarray(np.zeros((2, 600, 3), np.uint8)).save(path)
    messages = []
    for mode in ("off", "process"):
        with pytest.raises(ValueError) as info, open_source(path) as source:
            list(ready_frames(source, SETTINGS, mode))
        messages.append(str(info.value))
    assert messages[0] == messages[1] and "must be > 0" in messages[0]


def test_closing_early_stops_the_process_and_frees_shared_memory(tennis_video):
    before = shm_names()
    with open_source(tennis_video) as source:
        frames = ready_frames(source, SETTINGS, "process", decode_threads=1)
        next(frames)
        (child,) = decoders()
        pid = child.pid
        assert shm_names() - before, "the ring lives in /dev/shm while the job runs"
        t0 = time.monotonic()
        frames.close()
        assert time.monotonic() - t0 < 5.0
    assert not _alive(pid) and decoders() == []
    assert shm_names() == before


def test_a_dead_decoding_process_is_an_error_not_a_hang(tennis_video):
    with open_source(tennis_video) as source:
        frames = ready_frames(source, SETTINGS, "process", decode_threads=1)
        next(frames)
        (child,) = decoders()
        os.kill(child.pid, signal.SIGKILL)
        with pytest.raises(PrefetchError, match="died"):
            for _ in range(400):  # what it sent before dying may still arrive; then the error
                next(frames)
        frames.close()
    assert decoders() == []


def test_the_decoding_process_exits_when_its_parent_is_killed(tennis_video, tmp_path):
    script = textwrap.dedent(f"""
        import multiprocessing, sys, time
        sys.path.insert(0, {str(REPO)!r})
        from backend.video.ready_frames import ready_frames
        from backend.video.preprocess import PrepareSettings
        from backend.video.reader import open_source
        if __name__ == "__main__":
            frames = ready_frames(open_source({str(tennis_video)!r}), PrepareSettings(112, 168), "process", 1)
            next(frames)
            (child,) = [p for p in multiprocessing.active_children() if p.name == "human3r-decode"]
            print(child.pid, flush=True)
            time.sleep(60)
    """)
    path = tmp_path / "parent.py"
    path.write_text(script)
    with open(tmp_path / "stderr.txt", "w") as err:
        parent = subprocess.Popen([sys.executable, str(path)], stdout=subprocess.PIPE, stderr=err, text=True)
        try:
            line = parent.stdout.readline()
            assert line.strip().isdigit(), (tmp_path / "stderr.txt").read_text()
            child_pid = int(line)
            parent.kill()
            parent.wait(timeout=10)
            deadline = time.monotonic() + 15
            while _alive(child_pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert not _alive(child_pid), "orphaned decoding process kept running"
        finally:
            parent.kill()
            parent.wait(timeout=10)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False


def test_falls_back_to_a_thread_when_no_process_can_start(tennis_video, monkeypatch, caplog):
    def refuse():
        raise OSError("process creation is not allowed here")

    monkeypatch.setattr(prefetch, "_context", refuse)
    with caplog.at_level(logging.WARNING, logger="backend.video.ready_frames"):
        got = collect(open_source(tennis_video, end=3), "process")
    assert "decoding on a thread instead" in caplog.text and "not allowed" in caplog.text
    assert_same_items(got, collect(open_source(tennis_video, end=3), "off"))


class _FailsToStartElsewhere:
    """Pickled into the decoding process, it ends that process while it is still starting up (as a
    platform that cannot run it would); in this process it is an ordinary source."""

    def __init__(self, source):
        self.source, self.pid = source, os.getpid()

    def __setstate__(self, state):
        if state["pid"] != os.getpid():
            os._exit(3)
        self.__dict__.update(state)


def test_a_decoding_process_that_cannot_start_falls_back_to_a_thread(tennis_video, monkeypatch, caplog):
    from backend.video.reader import FrameSource

    source = open_source(tennis_video, end=3)
    failing = _FailsToStartElsewhere(source)
    # the source travels as `failing`, which ends the child while it unpickles its arguments
    monkeypatch.setattr(FrameSource, "__reduce__", lambda self: (_identity, (failing,)))
    with caplog.at_level(logging.WARNING, logger="backend.video.ready_frames"):
        got = list(ready_frames(source, SETTINGS, "process"))
    monkeypatch.undo()
    assert "exited at start-up (exit code 3)" in caplog.text and "on a thread instead" in caplog.text
    assert_same_items(got, collect(open_source(tennis_video, end=3), "off"))
    assert decoders() == []


def _identity(x):
    return x


def test_too_little_shared_memory_falls_back_to_a_thread(tennis_video, monkeypatch, caplog):
    monkeypatch.setattr(prefetch, "shared_memory_room", lambda: 1_000_000)  # 1 MB free: less than the ring
    before = shm_names()
    with caplog.at_level(logging.WARNING, logger="backend.video.ready_frames"):
        got = collect(open_source(tennis_video, end=2), "process")
    assert "only 1 MB of shared memory free" in caplog.text and "on a thread instead" in caplog.text
    assert len(got) == 2 and shm_names() == before and decoders() == []


def test_environment_overrides_the_mode(tennis_video, monkeypatch):
    monkeypatch.setenv(prefetch.PREFETCH_ENV, "off")
    with open_source(tennis_video, end=2) as source:
        frames = ready_frames(source, SETTINGS, "process")
        next(frames)
        assert decoders() == []  # decoded on this thread
        frames.close()
    monkeypatch.setenv(prefetch.PREFETCH_ENV, "gpu")
    with pytest.raises(ValueError, match="process, thread, off"):
        ready_frames([], SETTINGS, "process")


def test_plain_iterables_are_prefetched_on_a_thread(tennis_video):
    with open_source(tennis_video, end=3) as source:
        frames = list(source)
    got = list(ready_frames(frames, SETTINGS, "process"))
    assert_same_items(got, collect(open_source(tennis_video, end=3), "off"))
