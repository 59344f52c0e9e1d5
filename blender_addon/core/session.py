"""One live import: the bpy-free state machine between the ZeroMQ client and the scene builder.

`LiveSession` owns the job's life cycle (idle → connecting → running → done | cancelled | error),
turns the server's messages into calls on a *sink* (the scene builder: `on_header`, `on_frames`,
`on_track`, `on_end`), keeps the progress figures the panel shows (frames, frames/s, ETA) and words
every failure as a message a user can act on. It never blocks: `step()` polls the client with a zero
timeout and stops after a bounded number of messages and a time budget, so Blender can call it from
a main-thread timer. It imports no bpy (and no zmq: the client is passed in), so it is tested in
plain Python against a real server.

Whatever the sink already built stays in the scene when the job ends badly: the session only stops
feeding it, it never deletes anything.
"""
from __future__ import annotations

import enum
import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Protocol, Sequence

from .frame_range import expected_frames
from .protocol import PROTOCOL_VERSION, ErrorCode, MessageType
from .track_tally import TrackTally

log = logging.getLogger(__name__)

# Messages that belong to the job's data stream (everything else is bookkeeping).
_FRAME = MessageType.FRAME.value
_HEADER = MessageType.HEADER.value
_TRACK = MessageType.TRACK.value
_PROGRESS = MessageType.PROGRESS.value
_ACCEPTED = MessageType.ACCEPTED.value
_HELLO = MessageType.HELLO.value
_DONE = MessageType.DONE.value
_ERROR = MessageType.ERROR.value
_CANCELLED = MessageType.CANCELLED.value


class State(str, enum.Enum):
    IDLE = "idle"
    CONNECTING = "connecting"  # submit sent, no `accepted` yet
    RUNNING = "running"  # job accepted; results streaming (or queued behind other jobs)
    DONE = "done"
    CANCELLED = "cancelled"
    ERROR = "error"


ACTIVE_STATES = frozenset({State.CONNECTING, State.RUNNING})


class Client(Protocol):
    """What the session needs from `blender_addon.client.Human3RClient` (duck-typed)."""

    def connect(self) -> Any: ...
    def submit(self, video: str, options: dict) -> Any: ...
    def cancel(self, job: str) -> Any: ...
    def poll(self, max_messages: int = 50, timeout_ms: int = 0) -> list[dict]: ...
    def close(self) -> Any: ...


class Sink(Protocol):
    """What the session feeds: `blender_addon.blender.scene_builder.SceneBuilder` (duck-typed).

    `on_frames` may apply part of a batch within `budget_s` seconds and queue the rest; `busy` says
    that work is queued, `pump(budget_s)` applies more of it. While the sink is busy the session hands
    it no new message, so the queue stays bounded and the server is held back by its credits.
    """

    busy: bool

    def on_header(self, msg: dict) -> Any: ...
    def on_frames(self, msgs: list[dict], budget_s: float | None = None) -> Any: ...
    def pump(self, budget_s: float | None = None) -> bool: ...
    def on_track(self, msg: dict) -> Any: ...
    def on_end(self, msg: dict) -> Any: ...


@dataclass
class Progress:
    """Figures for the panel. Times in seconds, rates in processed frames per second."""

    frames_done: int = 0  # frame messages handed to the sink (imported into the scene)
    frames_inferred: int = 0  # frames the server has processed (its `progress` messages), >= frames_done
    frames_total: int | None = None  # frames the job will produce (None: not known yet)
    fps: float | None = None
    eta_s: float | None = None
    stage: str = ""
    queue_position: int | None = None
    dropped: int | None = None  # live jobs: frames the server skipped to stay current
    status: str = ""  # live jobs: the server's one-line status (e.g. why it is re-opening the stream)

    @property
    def fraction(self) -> float | None:
        """frames_done / frames_total in [0, 1], None when the total is unknown."""
        if not self.frames_total:
            return None
        return min(1.0, self.frames_done / self.frames_total)


class RateMeter:
    """Frames/s over a sliding time window of frame arrivals (robust to bursts of batched frames)."""

    def __init__(self, window_s: float = 5.0):
        self.window_s = window_s
        self._samples: deque[tuple[float, int]] = deque()

    def add(self, t: float, frames_done: int) -> None:
        self._samples.append((t, frames_done))
        while len(self._samples) > 2 and t - self._samples[0][0] > self.window_s:
            self._samples.popleft()

    def rate(self) -> float | None:
        if len(self._samples) < 2:
            return None
        (t0, n0), (t1, n1) = self._samples[0], self._samples[-1]
        if t1 - t0 <= 1e-6 or n1 <= n0:
            return None
        return (n1 - n0) / (t1 - t0)


def describe_error(code: str, message: str, *, address: str, frames_done: int, running: bool) -> str:
    """A one-paragraph explanation of a failure, saying what still stands and what to do next."""
    kept = f" The {frames_done} frame(s) already imported are kept." if frames_done else ""
    if code == ErrorCode.SERVER_GONE.value:
        if running:
            return (f"Lost the connection to the Human3R server at {address} ({message}).{kept} "
                    f"Check that `human3r serve` is still running, then press Run again.")
        return (f"No Human3R server is answering at {address}. Start it with `human3r serve` (or "
                f"'Start Local Server' in the Human3R panel) and check the address in the add-on "
                f"preferences, then press Run again.")
    if code == ErrorCode.VERSION_MISMATCH.value:
        return (f"The Human3R server at {address} speaks a different protocol version than this add-on "
                f"(version {PROTOCOL_VERSION}): {message}. Install matching versions of the add-on and "
                f"the backend.{kept}")
    if code == ErrorCode.TIMEOUT.value:
        return f"The Human3R server at {address} stopped answering ({message}).{kept}"
    if code in (ErrorCode.PATH_NOT_ALLOWED.value, ErrorCode.NOT_FOUND.value, ErrorCode.BAD_VIDEO.value):
        return f"The server cannot use this video: {message}"
    if code in (ErrorCode.QUEUE_FULL.value, ErrorCode.TOO_MANY_JOBS.value):
        return f"The server is busy: {message}. Try again when its queue has room."
    return f"Human3R server error ({code}): {message}.{kept}"


class LiveSession:
    """Drive one job from submit to its last message, feeding `sink` as results arrive.

    Args:
        client: a connected-or-not `Human3RClient` (owned by the session: closed when the job ends).
        sink: the scene builder; its exceptions end the job with an 'import failed' error.
        address: the server address, only for messages.
        connect_timeout_s: error out if the server has not accepted the job after this long (the
            client reports a dead server itself; this is the backstop that bounds the wait).
        cancel_timeout_s: after a cancel request, give up waiting for `cancelled` after this long.
        clock: monotonic seconds (injectable for tests).
    """

    def __init__(self, client: Client, sink: Sink, *, address: str = "", connect_timeout_s: float = 15.0,
                 cancel_timeout_s: float = 5.0, clock: Callable[[], float] = time.monotonic):
        self.client = client
        self.sink = sink
        self.address = address
        self.connect_timeout_s = connect_timeout_s
        self.cancel_timeout_s = cancel_timeout_s
        self._clock = clock
        self.state = State.IDLE
        self.job: str | None = None
        self.progress = Progress()
        self.error_code: str | None = None
        self.message = "Idle"  # one line for the panel / status bar
        self.server_info: dict = {}  # the server's hello (device, model, limits)
        self.header: dict | None = None
        self.summary: dict | None = None  # the `done` message
        self.tracks = TrackTally()  # the job's track ids, and how many last
        self.result_path: str | None = None  # the server-side .h3r of this job
        self._rate = RateMeter()
        self._server_rates = False  # True once `progress` messages carry the server's frames/s
        self._started_at: float | None = None
        self._cancel_requested_at: float | None = None
        self._closed = False
        self._video = ""
        self._frame_range: tuple[int, int | None, int] = (0, None, 1)
        self._held: deque = deque()  # received messages waiting until the sink has applied its queued work
        self._deadline = 0.0  # end of the current step's time budget (clock seconds)

    # ------------------------------------------------------------------------------------------------
    # commands

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    def start(self, video: str, options: dict, live: str | None = None) -> None:
        """Connect and submit `video` (a path the server can read) with `options` (the `submit`
        options map: `JobOptions` field names, validated by the server), or, with `live`, the
        server's live source of that name (runs until `cancel`)."""
        if self.state is not State.IDLE:
            raise RuntimeError(f"a session runs one job; this one is {self.state.value}")
        self._video = video or (f"live:{live}" if live else "")
        self._frame_range = (int(options.get("start", 0) or 0), options.get("end"),
                             int(options.get("stride", 1) or 1))
        self._started_at = self._clock()
        self.state = State.CONNECTING
        self.message = f"Connecting to {self.address or 'the server'}…"
        try:
            self.client.connect()
            if live is None:
                self.client.submit(video, options)
            else:
                self.client.submit(video, options, live=live)
        except Exception as exc:  # a bad address or key fails here, before any network traffic
            log.exception("submit failed")
            self._fail((ErrorCode.SERVER_GONE if isinstance(exc, OSError) else ErrorCode.CLIENT_FAILED).value,
                       f"Could not talk to the Human3R server at {self.address}: {exc}")

    def cancel(self) -> None:
        """Ask the server to stop; the job ends when `cancelled` arrives (or after cancel_timeout_s)."""
        if not self.active or self._cancel_requested_at is not None:
            return
        self._cancel_requested_at = self._clock()
        self.message = "Cancelling…"
        if self.job is not None:
            self._send_cancel()

    def abort(self, reason: str = "Stopped") -> None:
        """End at once without waiting for the server (file loaded, add-on disabled): cancel and close."""
        if self.active:
            if self.job is not None:
                self._send_cancel()
            self.state = State.CANCELLED
            self.message = reason
        self._close()

    # ------------------------------------------------------------------------------------------------
    # the timer's work

    def step(self, max_messages: int = 32, budget_s: float = 0.010, chunk: int = 8) -> bool:
        """Handle at most `max_messages` messages within about `budget_s` seconds; never waits.

        Consecutive frames are handed to the sink as one batch. Returns True while the job is still
        active (the caller keeps polling), False once it has ended.
        """
        if not self.active:
            return False
        self._deadline = deadline = self._clock() + budget_s
        handled = 0
        while self.active and handled < max_messages:
            if self._sink_busy():
                self._guard(self.sink.pump, max(0.0, deadline - self._clock()))
                if self._sink_busy() or self._clock() >= deadline:
                    self._keep_alive()
                    break
            if self._held:
                msgs = [self._held.popleft() for _ in range(min(len(self._held), chunk))]
            else:
                try:
                    msgs = self.client.poll(max_messages=min(chunk, max_messages - handled), timeout_ms=0)
                except Exception as exc:  # the client should not raise, but a UI timer must survive it
                    log.exception("client poll failed")
                    self._fail(ErrorCode.SERVER_GONE.value, f"connection failed: {exc}")
                    break
            if not msgs:
                break
            handled += len(msgs)
            self._dispatch(msgs)
            if self._clock() >= deadline:
                break
        self._check_timeouts()
        return self.active

    def _sink_busy(self) -> bool:
        return bool(getattr(self.sink, "busy", False))

    def _keep_alive(self) -> None:
        """Heartbeat the server while the sink catches up and no message is read (the client's own)."""
        keep_alive = getattr(self.client, "keep_alive", None)
        if keep_alive is not None:
            keep_alive()

    # ------------------------------------------------------------------------------------------------
    # dispatch

    def _dispatch(self, msgs: Sequence[dict]) -> None:
        """Hand `msgs` to the sink in order; once the sink has queued work, hold the rest back."""
        frames: list[dict] = []
        for i, msg in enumerate(msgs):
            if not self.active:
                return
            mtype = msg.get("type")
            if mtype == _FRAME and self._is_mine(msg):
                frames.append(msg)
                continue
            if frames:
                self._feed_frames(frames)
                frames = []
                if not self.active:
                    return
                if self._sink_busy():
                    self._held.extendleft(reversed(msgs[i:]))
                    return
            self._handle(mtype, msg)
        if frames and self.active:
            self._feed_frames(frames)

    def _is_mine(self, msg: dict) -> bool:
        job = msg.get("job")
        return job is None or self.job is None or job == self.job

    def _handle(self, mtype: str | None, msg: dict) -> None:
        if mtype == _ERROR and (msg.get("job") is None or self._is_mine(msg)):
            self._on_error(msg)
        elif not self._is_mine(msg):
            return  # another job's leftovers (e.g. after a re-submit); not ours to show
        elif mtype == _HELLO:
            self.server_info = {k: v for k, v in msg.items() if k not in ("v", "type", "job", "seq")}
        elif mtype == _ACCEPTED:
            self._on_accepted(msg)
        elif mtype == _HEADER:
            self.header = msg
            self._guard(self.sink.on_header, msg)
            if self.active:
                self._total_from_header(msg)
                self.message = f"Running: {self._video_name()}"
        elif mtype == _TRACK:
            self.tracks.add(msg)
            self._guard(self.sink.on_track, msg)
        elif mtype == _PROGRESS:
            self._on_progress(msg)
        elif mtype == _DONE:
            self.summary = msg
            self._finish(msg, State.DONE, self._done_text(msg))
        elif mtype == _CANCELLED:
            self._finish(msg, State.CANCELLED,
                         f"Cancelled after {self.progress.frames_done} frame(s); they stay in the scene.")
        # hello/pong/heartbeat/status replies need nothing here

    def _on_accepted(self, msg: dict) -> None:
        self.job = msg.get("job")
        self.server_info = dict(getattr(self.client, "server_info", None) or self.server_info)
        self.result_path = msg.get("result_path")
        self.state = State.RUNNING
        position = msg.get("queue_position") or 0
        self.progress.queue_position = position
        self.message = (f"Queued behind {position} job(s)" if position else f"Running: {self._video_name()}")
        if self._cancel_requested_at is not None:
            self._send_cancel()

    def _on_progress(self, msg: dict) -> None:
        p = self.progress
        p.stage = str(msg.get("stage") or "")
        if isinstance(msg.get("done"), int):
            p.frames_inferred = max(p.frames_inferred, msg["done"])
        total = msg.get("total")
        if isinstance(total, int) and total > 0:
            p.frames_total = total
        # the server's own rate and ETA (it knows its queue and model speed) replace the local estimate
        if isinstance(msg.get("fps"), (int, float)) and msg["fps"] > 0:
            p.fps = float(msg["fps"])
            self._server_rates = True
        if isinstance(msg.get("eta_s"), (int, float)):
            p.eta_s = float(msg["eta_s"])
        if isinstance(msg.get("dropped"), int):
            p.dropped = msg["dropped"]
        p.status = str(msg.get("status") or "") if p.stage in ("connecting", "reconnecting") else ""
        p.queue_position = 0

    def _feed_frames(self, frames: list[dict]) -> None:
        if self.header is None:
            # The protocol sends the header first; frames before it mean a broken stream.
            self._fail(ErrorCode.BAD_MESSAGE.value, "the server sent frames before the job header")
            return
        self._guard(lambda batch: self.sink.on_frames(batch, max(0.0, self._deadline - self._clock())), frames)
        if not self.active:
            return
        p = self.progress
        p.frames_done += len(frames)
        p.frames_inferred = max(p.frames_inferred, p.frames_done)
        self._rate.add(self._clock(), p.frames_done)
        if not self._server_rates:
            rate = self._rate.rate()
            if rate:
                p.fps = rate
            if p.fps and p.frames_total:
                p.eta_s = max(0.0, (p.frames_total - p.frames_done) / p.fps)
        if self._cancel_requested_at is None:
            self.message = f"Running: {self._video_name()}"

    def _on_error(self, msg: dict) -> None:
        code = str(msg.get("code") or ErrorCode.INTERNAL.value)
        text = describe_error(code, str(msg.get("message") or ""), address=self.address,
                              frames_done=self.progress.frames_done, running=self.state is State.RUNNING)
        self._finish(msg, State.ERROR, text, code=code)

    # ------------------------------------------------------------------------------------------------
    # endings

    def _guard(self, fn: Callable[[Any], Any], arg: Any) -> None:
        """Call the sink; a failure there ends the job (scene kept) instead of killing the timer."""
        try:
            fn(arg)
        except Exception as exc:
            log.exception("scene import failed")
            self._fail(ErrorCode.IMPORT_FAILED.value, f"Importing into the scene failed: {type(exc).__name__}: {exc}. "
                                        f"The {self.progress.frames_done} frame(s) imported before are kept.")

    def _fail(self, code: str, text: str) -> None:
        if self.job is not None and self.active:
            self._send_cancel()
        self.error_code = code
        self.state = State.ERROR
        self.message = text
        self._close()

    def _finish(self, msg: dict, state: State, text: str, code: str | None = None) -> None:
        if self.header is not None:
            try:  # let the builder finish frame range / summary cloud even after an error
                self.sink.on_end(msg)
            except Exception as exc:
                log.exception("scene builder on_end failed")
                if state is not State.ERROR:
                    state, code = State.ERROR, ErrorCode.IMPORT_FAILED.value
                    text = f"Finishing the import failed: {type(exc).__name__}: {exc}"
        self.error_code = code
        self.state = state
        self.message = text
        if state is State.DONE:
            self.progress.eta_s = 0.0
        self._close()

    def _check_timeouts(self) -> None:
        now = self._clock()
        if self.state is State.CONNECTING and self._started_at is not None \
                and now - self._started_at > self.connect_timeout_s:
            self._fail(ErrorCode.SERVER_GONE.value,
                       describe_error(ErrorCode.SERVER_GONE.value, "no answer", address=self.address,
                                      frames_done=0, running=False))
        elif self._cancel_requested_at is not None and self.active \
                and now - self._cancel_requested_at > self.cancel_timeout_s:
            self.state = State.CANCELLED
            self.message = (f"Cancelled (the server did not confirm); the {self.progress.frames_done} "
                            f"frame(s) imported are kept.")
            self._close()

    def _send_cancel(self) -> None:
        try:
            self.client.cancel(self.job)
        except Exception:
            log.exception("cancel request failed")

    def _close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self.client.close()
        except Exception:
            log.exception("closing the client failed")

    # ------------------------------------------------------------------------------------------------
    # text

    def _total_from_header(self, header: dict) -> None:
        if self.progress.frames_total:
            return
        video = header.get("video") or {}
        opts = header.get("options") or {}
        start, end, stride = self._frame_range
        self.progress.frames_total = expected_frames(
            video.get("frame_count"), opts.get("start", start), opts.get("end", end), opts.get("stride", stride))

    def _video_name(self) -> str:
        name = self._video.replace("\\", "/").rsplit("/", 1)[-1]
        return name or "video"

    def _done_text(self, msg: dict) -> str:
        frames = msg.get("frames", self.progress.frames_done)
        elapsed = msg.get("elapsed_s")
        took = f" in {elapsed:.1f} s" if isinstance(elapsed, (int, float)) else ""
        return f"Done: {frames} frame(s), {self.tracks.describe()}{took}."

    def status_line(self) -> str:
        """One line: state, frames done/total, frames/s and ETA (for the panel and the status bar)."""
        if self.state is State.RUNNING:
            return format_progress(self.progress, self.message)
        return self.message


def format_eta(seconds: float | None) -> str:
    """'1:05' / '1:02:03' / '?' for an ETA in seconds."""
    if seconds is None:
        return "?"
    s = int(round(max(0.0, seconds)))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def format_progress(p: Progress, prefix: str = "") -> str:
    """'Running: clip.mp4 — 12/120 frames, 3.4 fps, ETA 0:32', or with the scene behind the server
    'Running: clip.mp4 — inferred 40/120, imported 12, 3.4 fps, ETA 0:32'."""
    if p.queue_position:
        return prefix
    total = f"/{p.frames_total}" if p.frames_total else ""
    if p.frames_inferred > p.frames_done:
        parts = [f"inferred {p.frames_inferred}{total}", f"imported {p.frames_done}"]
    else:
        parts = [f"{p.frames_done}{total} frames"]
    if p.fps:
        parts.append(f"{p.fps:.1f} fps")
    if p.frames_total and p.frames_done < p.frames_total:
        parts.append(f"ETA {format_eta(p.eta_s)}")
    if p.dropped:
        parts.append(f"{p.dropped} dropped")
    if p.status:
        parts.append(p.status)
    elif p.stage and p.frames_done == 0:
        parts.append(p.stage)
    text = ", ".join(parts)
    return f"{prefix} — {text}" if prefix else text
