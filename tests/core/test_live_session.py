"""The live-session state machine (bpy-free): dispatch, batching, progress/ETA, endings, bounded work.

The transport here is a `ReplayClient`: it hands out real protocol messages (encoded and decoded
like the ZeroMQ client does) in a scripted order, so every branch can be reached deterministically.
The real client and server are exercised in tests/client/test_live_client.py and the bpy tests.
"""
from __future__ import annotations

import pytest

from blender_addon.core import protocol
from blender_addon.core.protocol import ErrorCode, MessageType
from blender_addon.core.session import LiveSession, Progress, State, expected_frames, format_eta, format_progress
from tests.support.synthetic_job import JOB, job_messages, wire_roundtrip


class ReplayClient:
    """Hands out queued messages through `poll`, records what the session sent."""

    def __init__(self, messages=(), server_info=None):
        self.queue = list(messages)
        self.sent: list[tuple] = []
        self.closed = False
        self.server_info = server_info
        self.poll_sizes: list[int] = []

    def connect(self):
        self.sent.append(("connect",))

    def submit(self, video, options):
        self.sent.append(("submit", video, options))
        return "r-1"

    def cancel(self, job):
        self.sent.append(("cancel", job))

    def poll(self, max_messages=50, timeout_ms=0):
        assert timeout_ms == 0, "the session must never wait on the socket"
        self.poll_sizes.append(max_messages)
        out, self.queue = self.queue[:max_messages], self.queue[max_messages:]
        return out

    def close(self):
        self.closed = True


class RecordingSink:
    def __init__(self, fail_on: str | None = None):
        self.calls: list[tuple[str, object]] = []
        self.fail_on = fail_on

    def _record(self, name, arg):
        if name == self.fail_on:
            raise ValueError(f"boom in {name}")
        self.calls.append((name, arg))

    def on_header(self, msg):
        self._record("header", msg["type"])

    def on_frames(self, msgs, budget_s=None):
        self._record("frames", [m["index"] for m in msgs])

    def on_track(self, msg):
        self._record("track", msg["id"])

    def on_end(self, msg):
        self._record("end", msg["type"])


def accepted(job=JOB):
    return wire_roundtrip(protocol.make_message(MessageType.ACCEPTED, job, 0, queue_position=0,
                                                result_path="/srv/r.h3r", request="r-1"))


def stream(frames=6, people=2):
    return [accepted()] + [wire_roundtrip(m) for m in job_messages(frames, people)]


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def run_to_end(session, limit=1000):
    for _ in range(limit):
        if not session.step():
            return
    raise AssertionError("session did not end")


def test_full_job_feeds_sink_in_order_and_ends_done():
    client, sink = ReplayClient(stream(6)), RecordingSink()
    session = LiveSession(client, sink, address="tcp://127.0.0.1:5555")
    session.start("/videos/clip.mp4", {"start": 0, "stride": 1})
    assert session.state is State.CONNECTING
    assert client.sent[:2] == [("connect",), ("submit", "/videos/clip.mp4", {"start": 0, "stride": 1})]
    run_to_end(session)
    assert session.state is State.DONE and session.job == JOB
    names = [c[0] for c in sink.calls]
    assert names[0] == "header" and names[-1] == "end"
    frames = [i for name, idx in sink.calls if name == "frames" for i in idx]
    assert frames == list(range(6))
    assert [c[1] for c in sink.calls if c[0] == "track"] == [0, 1]
    assert session.progress.frames_done == 6 and session.progress.frames_total == 6
    assert session.message.startswith("Done: 6 frame(s), 2 tracks (0 of at least 10 frames)")
    assert client.closed and not session.step()


def test_consecutive_frames_are_batched_and_work_is_bounded():
    client, sink = ReplayClient(stream(20)), RecordingSink()
    session = LiveSession(client, sink)
    session.start("v.mp4", {})
    session.step(max_messages=5, chunk=8)
    assert sum(client.poll_sizes) <= 5  # never asks for more than the per-tick cap
    batches = [c[1] for c in sink.calls if c[0] == "frames"]
    assert batches == [[0, 1, 2]]  # accepted + header + 3 frames = 5 messages, frames in one call
    run_to_end(session)
    assert session.state is State.DONE


def test_progress_rate_and_eta_from_arrivals():
    clock = Clock()
    client, sink = ReplayClient(stream(10)), RecordingSink()
    session = LiveSession(client, sink, clock=clock)
    session.start("v.mp4", {})
    session.step(max_messages=4)  # accepted, header, frames 0-1
    for _ in range(3):
        clock.t += 1.0
        session.step(max_messages=2)  # two frames per second
    p = session.progress
    assert p.frames_done == 8 and p.frames_total == 10
    assert p.fps == pytest.approx(2.0)
    assert p.eta_s == pytest.approx(1.0)
    assert session.status_line() == "Running: v.mp4 — 8/10 frames, 2.0 fps, ETA 0:01"


def test_time_budget_stops_a_slow_tick():
    clock = Clock()

    class SlowSink(RecordingSink):
        def on_frames(self, msgs, budget_s=None):
            clock.t += 0.02  # each batch takes 20 ms
            super().on_frames(msgs)

    client = ReplayClient(stream(10))
    session = LiveSession(client, SlowSink(), clock=clock)
    session.start("v.mp4", {})
    session.step(max_messages=32, budget_s=0.010, chunk=3)  # accepted, header, frame 0 -> over budget
    assert client.poll_sizes == [3]
    assert session.progress.frames_done == 1


def test_server_error_mid_job_keeps_scene_and_explains():
    msgs = stream(6)[:5]  # accepted, header, frames 0-2
    msgs.append(wire_roundtrip(protocol.error_message(ErrorCode.JOB_FAILED, "CUDA out of memory", job=JOB, seq=5,
                                                      frame=3)))
    client, sink = ReplayClient(msgs), RecordingSink()
    session = LiveSession(client, sink, address="tcp://h:1")
    session.start("v.mp4", {})
    run_to_end(session)
    assert session.state is State.ERROR and session.error_code == "job_failed"
    assert "CUDA out of memory" in session.message and "3 frame(s) already imported are kept" in session.message
    assert sink.calls[-1] == ("end", "error")  # the builder finishes what it has
    assert client.closed


def test_server_gone_before_accept_is_a_clear_error():
    gone = protocol.error_message(ErrorCode.SERVER_GONE, "no message for 1 s", job=None)
    client, sink = ReplayClient([gone]), RecordingSink()
    session = LiveSession(client, sink, address="tcp://127.0.0.1:5999")
    session.start("v.mp4", {})
    run_to_end(session)
    assert session.state is State.ERROR and session.error_code == "server_gone"
    assert "No Human3R server is answering at tcp://127.0.0.1:5999" in session.message
    assert "human3r serve" in session.message
    assert sink.calls == []  # nothing was built, nothing to finish


def test_connection_lost_while_running_mentions_kept_frames():
    msgs = stream(6)[:4] + [protocol.error_message(ErrorCode.SERVER_GONE, "silent for 10 s", job=None)]
    client, sink = ReplayClient(msgs), RecordingSink()
    session = LiveSession(client, sink, address="tcp://h:1")
    session.start("v.mp4", {})
    run_to_end(session)
    assert session.state is State.ERROR
    assert "Lost the connection" in session.message and "2 frame(s) already imported are kept" in session.message


def test_version_mismatch_message():
    msg = protocol.error_message(ErrorCode.VERSION_MISMATCH, "protocol version 2 is not supported", job=None)
    session = LiveSession(ReplayClient([msg]), RecordingSink(), address="tcp://h:1")
    session.start("v.mp4", {})
    run_to_end(session)
    assert session.error_code == "version_mismatch"
    assert "different protocol version" in session.message and "protocol version 2" in session.message


def test_connect_timeout_backstop_without_any_message():
    clock = Clock()
    client = ReplayClient([])
    session = LiveSession(client, RecordingSink(), address="tcp://h:1", connect_timeout_s=3.0, clock=clock)
    session.start("v.mp4", {})
    assert session.step()
    clock.t += 3.5
    assert not session.step()
    assert session.state is State.ERROR and "No Human3R server is answering" in session.message
    assert client.closed


def test_sink_failure_ends_job_cancels_on_server_and_never_raises():
    client, sink = ReplayClient(stream(6)), RecordingSink(fail_on="frames")
    session = LiveSession(client, sink)
    session.start("v.mp4", {})
    run_to_end(session)
    assert session.state is State.ERROR and session.error_code == ErrorCode.IMPORT_FAILED.value
    assert "boom in frames" in session.message
    assert ("cancel", JOB) in client.sent and client.closed


def test_cancel_before_accept_is_sent_once_accepted_and_confirmed():
    msgs = stream(6)[:3]
    client, sink = ReplayClient([]), RecordingSink()
    session = LiveSession(client, sink)
    session.start("v.mp4", {})
    session.cancel()
    assert ("cancel", JOB) not in client.sent  # no job id yet
    client.queue = msgs + [wire_roundtrip(protocol.make_message(MessageType.CANCELLED, JOB, 9, frames=1))]
    run_to_end(session)
    assert ("cancel", JOB) in client.sent
    assert session.state is State.CANCELLED and "they stay in the scene" in session.message


def test_cancel_without_confirmation_times_out():
    clock = Clock()
    client = ReplayClient(stream(6)[:3])
    session = LiveSession(client, RecordingSink(), cancel_timeout_s=2.0, clock=clock)
    session.start("v.mp4", {})
    session.step()
    session.cancel()
    assert session.step()
    clock.t += 2.5
    assert not session.step()
    assert session.state is State.CANCELLED and client.closed


def test_other_jobs_messages_are_ignored():
    other = wire_roundtrip(protocol.error_message(ErrorCode.JOB_FAILED, "not mine", job="other-job"))
    msgs = stream(3)
    msgs.insert(3, other)
    session = LiveSession(ReplayClient(msgs), RecordingSink())
    session.start("v.mp4", {})
    run_to_end(session)
    assert session.state is State.DONE


def test_client_exception_in_submit_is_reported_not_raised():
    class Refusing(ReplayClient):
        def connect(self):
            raise ValueError("Invalid argument: tcp://no port")

    session = LiveSession(Refusing(), RecordingSink(), address="tcp://no port")
    session.start("v.mp4", {})
    assert session.state is State.ERROR and "Invalid argument" in session.message
    assert session.error_code == ErrorCode.CLIENT_FAILED.value  # a named code, not a string made up on the spot


def test_start_twice_is_refused():
    session = LiveSession(ReplayClient([]), RecordingSink())
    session.start("v.mp4", {})
    with pytest.raises(RuntimeError):
        session.start("v.mp4", {})


@pytest.mark.parametrize("count,start,end,stride,expected", [
    (100, 0, None, 1, 100), (100, 10, None, 1, 90), (100, 10, 20, 3, 4), (100, 0, 0, 2, 50),
    (100, 50, 40, 1, 0), (None, 0, None, 1, None), (10, 0, 500, 1, 10)])
def test_expected_frames(count, start, end, stride, expected):
    assert expected_frames(count, start, end, stride) == expected


def test_formatting():
    assert format_eta(None) == "?" and format_eta(65) == "1:05" and format_eta(3723) == "1:02:03"
    text = format_progress(Progress(frames_done=12, frames_total=120, fps=3.4, eta_s=32), "Running: a.mp4")
    assert text == "Running: a.mp4 — 12/120 frames, 3.4 fps, ETA 0:32"
    assert Progress(frames_done=5, frames_total=10).fraction == 0.5 and Progress().fraction is None


def test_server_progress_figures_win_over_local_estimate():
    msgs = stream(10)[:3]  # accepted, header, frame 0
    msgs.append(wire_roundtrip(protocol.make_message(MessageType.PROGRESS, JOB, 9, done=5, total=10, fps=7.5,
                                                     eta_s=0.7, stage="running")))
    msgs += stream(10)[3:5]
    clock = Clock()
    session = LiveSession(ReplayClient(msgs), RecordingSink(), clock=clock)
    session.start("v.mp4", {})
    for _ in range(6):
        clock.t += 1.0
        session.step(max_messages=1)
    assert session.progress.fps == 7.5 and session.progress.eta_s == 0.7
    assert session.progress.frames_done == 3 and session.progress.stage == "running"


class QueueingSink(RecordingSink):
    """Applies one frame per 10 ms of budget and queues the rest, like the scene builder with a crowd."""

    def __init__(self, clock):
        super().__init__()
        self.clock = clock
        self.queue: list[int] = []
        self.max_queue = 0
        self.budgets: list[float] = []

    @property
    def busy(self):
        return bool(self.queue)

    def on_frames(self, msgs, budget_s=None):
        assert not self.queue, "the session handed frames to a busy sink"
        self.queue += [m["index"] for m in msgs]
        self.max_queue = max(self.max_queue, len(self.queue))
        self.pump(budget_s)

    def pump(self, budget_s=None):
        self.budgets.append(budget_s)
        while self.queue:
            self.calls.append(("frame", self.queue.pop(0)))
            self.clock.t += 0.010
            if budget_s is not None and budget_s <= 0.010:
                break
            budget_s = None if budget_s is None else budget_s - 0.010
        return self.busy

    def on_track(self, msg):
        assert not self.queue, "a track message overtook queued frames"
        super().on_track(msg)

    def on_end(self, msg):
        assert not self.queue, "the end overtook queued frames"
        super().on_end(msg)


def test_a_busy_sink_gets_nothing_new_and_each_tick_stays_in_budget():
    clock = Clock()
    client, sink = ReplayClient(stream(12)), QueueingSink(clock)
    session = LiveSession(client, sink, clock=clock)
    session.start("v.mp4", {})
    ticks = 0
    while session.step(max_messages=32, budget_s=0.010):
        ticks += 1
        assert ticks < 100
    assert session.state is State.DONE
    assert [c[1] for c in sink.calls if c[0] == "frame"] == list(range(12))  # every frame, in order
    names = [c[0] for c in sink.calls]
    assert names.index("track") > max(i for i, n in enumerate(names) if n == "frame")  # after all frames
    assert names[-1] == "end"
    assert all(b is not None and b <= 0.010 + 1e-9 for b in sink.budgets)  # never "all of it" in a live run
    assert ticks >= 6  # 12 frames at 10 ms each cannot fit in fewer 10 ms ticks


def test_progress_shows_inferred_and_imported_when_the_scene_lags():
    p = Progress(frames_done=12, frames_total=120, fps=3.4, eta_s=30.0, frames_inferred=40)
    assert format_progress(p, "Running: clip.mp4") == "Running: clip.mp4 — inferred 40/120, imported 12, 3.4 fps, ETA 0:30"
    p.frames_inferred = 12
    assert format_progress(p) == "12/120 frames, 3.4 fps, ETA 0:30"
