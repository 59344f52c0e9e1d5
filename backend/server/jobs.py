"""Jobs on one device: the job table, the FIFO queue and the worker thread that runs them one at a time.

The worker calls the injected `job_runner` (signature of `backend.engine.job.iter_job_messages`:
``(engine, video, options, job_id, cancel) -> Iterator[dict]``), encodes every message once, appends
it to the job's server-side .h3r file (so results survive a dropped connection) and hands the same
frames to the job's `OutboundStream` for the socket thread. The worker never touches the socket.
"""
from __future__ import annotations

import collections
import errno
import logging
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from blender_addon.core import protocol
from blender_addon.core.protocol import ErrorCode, MessageType
from blender_addon.core.resultfile import ResultFileReader, ResultFileWriter
from blender_addon.core.track_tally import TrackTally

from .ownership import Ownership
from .streams import Outgoing, OutboundStream, StreamClosed

log = logging.getLogger(__name__)

JobRunner = Callable[[Any, str, Any, str, "threading.Event | None"], Iterator[dict]]

QUEUED, RUNNING, DONE, ERROR, CANCELLED = "queued", "running", "done", "error", "cancelled"
FINISHED_STATES = frozenset({DONE, ERROR, CANCELLED})
_TERMINAL = {t.value for t in protocol.TERMINAL_TYPES}
_STATE_OF_TERMINAL = {"done": DONE, "error": ERROR, "cancelled": CANCELLED}


def new_job_id() -> str:
    """Sortable, unguessable job id such as '20261124-101500-3f9a1c2b' (safe as a file name)."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(4)


@dataclass
class Job:
    """One submitted video. `stream` is None once its client is gone (results still go to the file)."""

    id: str
    peer: bytes
    video: str
    options: Any  # what the runner receives (JobOptions in production)
    options_dict: dict
    result_path: Path
    stream: OutboundStream | None
    request: str | None = None
    state: str = QUEUED
    cancel: threading.Event = field(default_factory=threading.Event)
    frames_done: int = 0
    frames_total: int | None = None
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    error_code: str | None = None
    ownership: Ownership | None = None  # who may see, fetch and cancel it
    account: str = ""  # what its client's limits count against
    video_identity: tuple[int, int] | None = None  # (st_dev, st_ino) of the video admitted at submit
    frame_limit: int | None = None  # the server's per-job frame cap, when it shortened the job
    cancel_reason: str | None = None  # why the server (not the client) cancelled it, for `cancelled`

    def summary(self, queue_position: int | None) -> dict:
        """The job's entry in a `status` reply."""
        return {"job": self.id, "state": self.state, "video": self.video, "queue_position": queue_position,
                "frames_done": self.frames_done, "frames_total": self.frames_total,
                "result_path": str(self.result_path), "error_code": self.error_code}


class JobBoard:
    """All jobs the server knows, the FIFO of queued ones, and the running one (thread-safe)."""

    def __init__(self, finished_kept: int = 1000):
        self._lock = threading.Condition()
        self._jobs: dict[str, Job] = {}
        self._queue: collections.deque[Job] = collections.deque()
        self._running: Job | None = None
        self._finished: collections.deque[str] = collections.deque()
        self._finished_kept = finished_kept
        self._stopping = False

    def add(self, job: Job) -> int:
        """Queue a job; return its queue position (0 = it will start right away)."""
        with self._lock:
            self._jobs[job.id] = job
            self._queue.append(job)
            self._lock.notify_all()
            return self._position_locked(job)

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def next_job(self) -> Job | None:
        """Block until a job is queued, mark it running and return it; None once `stop` is called."""
        with self._lock:
            while not self._queue and not self._stopping:
                self._lock.wait()
            if self._stopping:
                return None
            job = self._queue.popleft()
            job.state, job.started = RUNNING, time.time()
            self._running = job
            return job

    def take_queued(self, job: Job) -> bool:
        """Remove a still-queued job (to cancel it without running); False if it already started."""
        with self._lock:
            if job in self._queue:
                self._queue.remove(job)
                return True
            return False

    def finish(self, job: Job, state: str, error_code: str | None = None) -> None:
        with self._lock:
            job.state, job.finished, job.error_code = state, time.time(), error_code
            if self._running is job:
                self._running = None
            self._finished.append(job.id)
            while len(self._finished) > self._finished_kept:
                self._jobs.pop(self._finished.popleft(), None)

    def position(self, job: Job) -> int | None:
        with self._lock:
            return self._position_locked(job)

    def _position_locked(self, job: Job) -> int | None:
        if job is self._running:
            return 0
        try:
            return self._queue.index(job) + (1 if self._running is not None else 0)
        except ValueError:
            return None

    def active_jobs(self, peer: bytes | None = None) -> list[Job]:
        """Queued and running jobs, oldest first (of one peer if given)."""
        with self._lock:
            jobs = ([self._running] if self._running else []) + list(self._queue)
            return [j for j in jobs if peer is None or j.peer == peer]

    def summaries(self) -> list[dict]:
        return [summary for _, summary in self.summaries_with_jobs()]

    def summaries_with_jobs(self) -> list[tuple[Job, dict]]:
        """(job, its `status` entry) for every known job."""
        with self._lock:
            return [(j, j.summary(self._position_locked(j))) for j in self._jobs.values()]

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            self._lock.notify_all()


def _deliver(stream: OutboundStream | None, item: Outgoing) -> OutboundStream | None:
    """Hand one message to the socket thread, waiting while the stream is full.

    Returns the stream, or None once its consumer is gone (later messages only go to the file).
    """
    if stream is None:
        return None
    while True:
        try:
            stream.put(item, timeout=0.5)
            return stream
        except StreamClosed:
            return None
        except TimeoutError:
            continue  # still full: the client has not granted credits; the socket thread watches stalls


class Worker(threading.Thread):
    """Runs queued jobs one at a time on the device with `job_runner`."""

    def __init__(self, board: JobBoard, job_runner: JobRunner, engine: Any,
                 after_job: Callable[[], None] | None = None, before_job: Callable[[Job], None] | None = None):
        super().__init__(name="human3r-worker", daemon=True)
        self.board, self.job_runner, self.engine = board, job_runner, engine
        self.after_job = after_job  # housekeeping between jobs (deleting old result files)
        self.before_job = before_job  # last admission check; raises ProtocolError to refuse the job

    def run(self) -> None:
        while True:
            job = self.board.next_job()
            if job is None:
                return
            try:
                self.run_job(job)
            except Exception:  # never let one job kill the worker of a long-running server
                log.exception("job %s: unexpected failure in the worker", job.id)
                if job.state == RUNNING:
                    self.board.finish(job, ERROR, ErrorCode.INTERNAL.value)
            if self.after_job is not None:
                try:
                    self.after_job()
                except Exception:
                    log.exception("housekeeping after job %s failed", job.id)

    def run_job(self, job: Job) -> None:
        log.info("job %s: started (%s)", job.id, job.video)
        stream, last_seq, end = job.stream, -1, None
        t0 = time.monotonic()
        out = _JobFile(job)
        tally = TrackTally()
        try:
            if self.before_job is not None:
                self.before_job(job)
        except protocol.ProtocolError as exc:
            end = protocol.error_message(exc.code, exc.message, job.id, 0)
        if end is None:
            frame_count = None
            messages = self.job_runner(self.engine, job.video, job.options, job.id, job.cancel)
            try:
                for msg in messages:
                    mtype = msg.get("type")
                    last_seq = int(msg.get("seq", last_seq + 1))
                    self._track_progress(job, msg)
                    tally.add(msg)
                    if mtype == MessageType.HEADER.value:
                        frame_count = (msg.get("video") or {}).get("frame_count")
                    if mtype in _TERMINAL:
                        end = _with_cap_warning(msg, job, frame_count)
                        break
                    frames = protocol.encode(msg)
                    if mtype != MessageType.PROGRESS.value:  # progress is transient, not part of the file
                        if not out.write(frames):
                            end = out.full_error(last_seq, msg.get("index"))
                            break
                    job.stream = stream = _deliver(stream, Outgoing(mtype, frames))
            except Exception as exc:
                log.exception("job %s: the engine raised", job.id)
                end = protocol.error_message(ErrorCode.JOB_FAILED, f"inference failed: {exc}", job.id, last_seq + 1)
            finally:
                close = getattr(messages, "close", None)
                if close is not None:
                    close()  # stops the decoder now when the loop ended early
            if end is None:
                end = protocol.error_message(ErrorCode.INTERNAL, "the engine stopped without a final message",
                                             job.id, last_seq + 1)
        if end["type"] == MessageType.CANCELLED.value and job.cancel_reason:
            end = {**end, "reason": job.cancel_reason}
        end_frames = protocol.encode(end)
        out.write(end_frames)  # best effort: on a full disk the client still hears the end below
        out.close()
        # the file is complete and the job finished before the client hears of it (fetch/status agree)
        state = _STATE_OF_TERMINAL[end["type"]]
        self.board.finish(job, state, end.get("code"))
        job.stream = _deliver(stream, Outgoing(end["type"], end_frames, True))
        log.info("job %s: %s after %d frames in %.1f s, %s", job.id, state, job.frames_done,
                 time.monotonic() - t0, tally.describe())

    @staticmethod
    def _track_progress(job: Job, msg: dict) -> None:
        mtype = msg.get("type")
        if mtype == "frame":
            job.frames_done += 1
        elif mtype == "progress":
            total = msg.get("total")
            if isinstance(total, int):
                job.frames_total = total


class _JobFile:
    """A job's server-side result file that never raises: a failed write (full disk) is remembered,
    later writes are skipped, and the frames written before it stay readable."""

    def __init__(self, job: Job):
        self.job = job
        self.frames = 0
        self.error: OSError | None = None
        try:
            self._writer: ResultFileWriter | None = ResultFileWriter(job.result_path)
        except OSError as exc:
            self._writer, self.error = None, exc

    def write(self, frames: list) -> bool:
        """Append one encoded message; False once the file cannot take it."""
        if self._writer is None or self.error is not None:
            return False
        try:
            self._writer.write_frames(frames)
        except OSError as exc:
            self.error = exc
            log.error("job %s: cannot write %s: %s", self.job.id, self.job.result_path, exc)
            return False
        self.frames += 1
        return True

    def full_error(self, seq: int, frame: int | None) -> dict:
        """The job's end when its result file stopped taking records: `disk_full` (or `internal`)."""
        exc = self.error
        full = exc is not None and exc.errno in (errno.ENOSPC, errno.EDQUOT)
        kept = self.job.frames_done - 1 if frame is not None else self.job.frames_done
        text = (f"the server's results disk is full" if full else f"the server cannot write its result file ({exc})")
        where = f"before source frame {frame} " if frame is not None else ""
        text += (f"; the job stopped and the {kept} frames {where}were sent to you and kept in "
                 f"{self.job.result_path}. Ask the server's operator to free space (or lower --max-results-gb)"
                 + (f", then submit again with start={frame}" if frame is not None else ""))
        return protocol.error_message(ErrorCode.DISK_FULL if full else ErrorCode.INTERNAL, text, self.job.id, seq,
                                      frame=frame)

    def close(self) -> None:
        if self._writer is not None:
            try:
                self._writer.close()
            except OSError:
                pass  # the records before the failure are already flushed


def _with_cap_warning(end: dict, job: Job, frame_count: int | None) -> dict:
    """Say in `done` when the server's frame cap, not the video's end, stopped the job."""
    if end.get("type") != "done" or job.frame_limit is None:
        return end
    stop = job.options_dict.get("end")
    if frame_count is not None and stop is not None and frame_count <= stop:
        return end
    warning = (f"cut short at the server's limit of {job.frame_limit} frames per job (--max-frames-per-job): "
               f"source frames from {stop} on were not processed; submit again with start={stop} for the rest")
    return {**end, "warnings": [*end.get("warnings", []), warning]}


def write_cancelled_file(path: Path, job_id: str) -> list:
    """Result file of a job cancelled before it ran: one `cancelled` record. Returns its frames."""
    frames = protocol.encode(protocol.make_message(MessageType.CANCELLED, job_id, 0, frames=0))
    with ResultFileWriter(path) as writer:
        writer.write_frames(frames)
    return frames


class FetchThread(threading.Thread):
    """Re-streams a finished job's result file to one client through a bounded stream."""

    def __init__(self, path: Path, job_id: str, stream: OutboundStream):
        super().__init__(name=f"human3r-fetch-{job_id}", daemon=True)
        self.path, self.job_id, self.stream = path, job_id, stream

    def run(self) -> None:
        last_seq, ended = -1, False
        try:
            reader = ResultFileReader(self.path)
            for msg in reader:
                last_seq = int(msg.get("seq", last_seq + 1))
                ended = msg["type"] in _TERMINAL
                if _deliver(self.stream, Outgoing(msg["type"], protocol.encode(msg), ended)) is None:
                    return
                if ended:
                    return
            problem = reader.problem or "the file ends before the job's last message"
            end = protocol.error_message(ErrorCode.JOB_FAILED, f"result file incomplete: {problem}",
                                         self.job_id, last_seq + 1)
        except Exception as exc:
            log.exception("fetch of %s failed", self.job_id)
            end = protocol.error_message(ErrorCode.INTERNAL, f"cannot read the result file: {exc}", self.job_id,
                                         last_seq + 1)
        _deliver(self.stream, Outgoing(end["type"], protocol.encode(end), True))
