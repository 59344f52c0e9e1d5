"""Frames for the engine, decoded and preprocessed ahead of the model.

`ready_frames` yields one `ReadyFrame` per selected source frame, in order, in one of three modes
that give identical items and identical error behaviour (a source error is raised after every
frame before it was yielded; closing the generator stops the work and frees everything):

- ``process`` (default): a child process (`decoding_process`) decodes and preprocesses up to
  `PREFETCH_DEPTH` + 1 frames ahead; tensors come through a shared-memory ring. The model's loop
  keeps the GIL to itself, which matters most when the model itself runs on the CPU.
- ``thread``: a worker thread does the same (fallback when no process can be started: a sandbox
  without shared memory or without process creation).
- ``off``: everything on the calling thread.

`HUMAN3R_PREFETCH` (process / thread / off) overrides the mode, for troubleshooting. Live sources
(``is_live``) always run "off": they keep the newest frame in their own reader thread, and any
read-ahead here would turn that back into a queue of stale frames.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import threading
import time
from multiprocessing import shared_memory
from typing import Iterator, NamedTuple

import torch

from backend.video.decoding_process import SlotLayout, read_slot, run_worker
from backend.video.preprocess import PreparedFrame, PrepareSettings, RawFrame
from backend.video.reader import FrameSource, VideoError

log = logging.getLogger(__name__)

PREFETCH_MODES = ("process", "thread", "off")
PREFETCH_ENV = "HUMAN3R_PREFETCH"
PREFETCH_DEPTH = 2  # frames prepared ahead of the one the model works on
STOP_TIMEOUT_S = 10.0  # a decoding process that does not stop by then is killed


class ReadyFrame(NamedTuple):
    """One selected source frame, ready for the model: source index, time (s), model inputs (a
    `RawFrame` when preprocessing runs on a device: `PrepareSettings.finish` completes it), and the
    seconds spent decoding and preprocessing it."""

    index: int
    time: float
    prepared: PreparedFrame | RawFrame
    decode_s: float
    prepare_s: float


class PrefetchError(RuntimeError):
    """The decoding process failed (its own error, or it died)."""


def ready_frames(source, settings: PrepareSettings, mode: str = "process",
                 decode_threads: int = 0) -> Iterator[ReadyFrame]:
    """Decode and prepare every frame of `source` (see the module docstring).

    Args:
        source: a `FrameSource` (any iterable of `SourceFrame` works with "thread" and "off").
        settings: preprocessing arguments.
        mode: "process", "thread" or "off"; `$HUMAN3R_PREFETCH` wins when set.
        decode_threads: FFmpeg decoder threads (`FrameSource.decode_threads`; 0 = FFmpeg's choice).
    Raises:
        VideoError from the source; PrefetchError when the decoding process fails; ValueError from
        preprocessing (in "thread" / "off" modes).
    """
    mode = os.environ.get(PREFETCH_ENV) or mode
    if getattr(source, "is_live", False):
        mode = "off"
    if mode not in PREFETCH_MODES:
        raise ValueError(f"prefetch mode must be one of {', '.join(PREFETCH_MODES)}, got {mode!r}")
    if isinstance(source, FrameSource) and decode_threads != source.decode_threads:
        source = source.with_decode_threads(decode_threads)
    if mode == "process" and isinstance(source, FrameSource):
        return _process_frames(source, settings)
    if mode in ("process", "thread"):
        return _thread_frames(source, settings)
    return _inline_frames(source, settings)


def warm_up() -> None:
    """Start the process that forks the decoding processes (imports torch once, ~1-2 s), so the first
    job does not wait for it. Safe to call more than once; failures are left to the first job."""
    if os.environ.get(PREFETCH_ENV, "process") != "process":
        return
    try:
        context = _context()
        if context.get_start_method() == "forkserver":
            from multiprocessing import forkserver

            forkserver.ensure_running()
    except Exception as exc:  # pragma: no cover - depends on the platform
        log.debug("prefetch warm-up skipped: %s", exc)


# --------------------------------------------------------------------------------------------------
# on the calling thread / on a thread


def _inline_frames(source, settings: PrepareSettings) -> Iterator[ReadyFrame]:
    frames = iter(source)
    try:
        while True:
            t0 = time.perf_counter()
            frame = next(frames, None)
            if frame is None:
                return
            t1 = time.perf_counter()
            item = settings.on_decoder(frame.rgb)
            yield ReadyFrame(frame.index, frame.time, item, t1 - t0, time.perf_counter() - t1)
    finally:
        close = getattr(frames, "close", None)
        if close is not None:
            close()


_END = object()


def _thread_frames(source, settings: PrepareSettings) -> Iterator[ReadyFrame]:
    slots: queue.Queue = queue.Queue(maxsize=PREFETCH_DEPTH)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                slots.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def worker() -> None:
        gen = _inline_frames(source, settings)
        try:
            with torch.inference_mode():
                for item in gen:
                    if not put(item):
                        return
            put(_END)
        except BaseException as exc:  # handed to the consumer, raised in order
            put(exc)
        finally:
            gen.close()

    thread = threading.Thread(target=worker, name="human3r-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = slots.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()


# --------------------------------------------------------------------------------------------------
# in a child process


def _context():
    """forkserver where there is one (a clean, pre-imported parent: forks are cheap and safe even
    when this process has threads or a CUDA context), else spawn."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["backend.video.decoding_preload"])
        return context
    return multiprocessing.get_context("spawn")


def _process_frames(source: FrameSource, settings: PrepareSettings) -> Iterator[ReadyFrame]:
    """Start the decoding process (falling back to a thread when that is impossible), then relay."""
    n_slots = PREFETCH_DEPTH + 1
    info = source.info
    slot_bytes = SlotLayout.expected(info.width, info.height, settings).nbytes
    room = shared_memory_room()
    if room is not None and room < 2 * slot_bytes * n_slots:  # a full tmpfs kills the writer with SIGBUS
        log.warning("only %.0f MB of shared memory free (/dev/shm), the decoding process needs %.0f MB; "
                    "decoding on a thread instead", room / 1e6, slot_bytes * n_slots / 1e6)
        return (yield from _thread_frames(source, settings))
    try:
        shm = shared_memory.SharedMemory(create=True, size=slot_bytes * n_slots)
    except OSError as exc:
        log.warning("no shared memory for the decoding process (%s); decoding on a thread instead", exc)
        return (yield from _thread_frames(source, settings))
    try:
        context = _context()
        parent_conn, child_conn = context.Pipe(duplex=True)
        process = context.Process(target=run_worker, name="human3r-decode", daemon=True,
                                  args=(child_conn, source, settings, shm.name, slot_bytes, n_slots,
                                        torch.get_num_threads()))
        process.start()
    except Exception as exc:
        shm.close()
        shm.unlink()
        log.warning("cannot start the decoding process (%s: %s); decoding on a thread instead",
                    type(exc).__name__, exc)
        return (yield from _thread_frames(source, settings))
    child_conn.close()  # only the child holds it now: its death reads as EOF here
    started = True
    try:
        try:
            started = parent_conn.recv() == ("ready",)
        except (EOFError, ConnectionError):  # died before running any of our code: the platform, not the video
            process.join(timeout=1.0)
            log.warning("the decoding process exited at start-up (exit code %s); decoding on a thread instead",
                        process.exitcode)
            started = False
        if started:
            yield from _relay(parent_conn, process, shm, slot_bytes, pin=_pins(settings))
    finally:
        _stop(parent_conn, process)
        shm.close()
        try:
            shm.unlink()
        except FileNotFoundError:
            pass
    if not started:  # nothing was yielded yet, so the thread can start from the first frame
        yield from _thread_frames(source, settings)


def shared_memory_room() -> int | None:
    """Free bytes where POSIX shared memory lives (/dev/shm; small in containers: Docker gives 64 MB),
    None where that cannot be known."""
    try:
        st = os.statvfs("/dev/shm")
    except (AttributeError, OSError):
        return None
    return st.f_bavail * st.f_frsize


def _pins(settings: PrepareSettings) -> bool:
    """Raw frames bound for a GPU are read out of the ring into page-locked memory (an asynchronous upload)."""
    return settings.device is not None and torch.device(settings.device).type == "cuda"


def _relay(conn, process, shm: shared_memory.SharedMemory, slot_bytes: int, pin: bool) -> Iterator[ReadyFrame]:
    """Turn the child's messages into `ReadyFrame`s."""
    while True:
        try:
            message = conn.recv()
        except (EOFError, ConnectionError):
            process.join(timeout=1.0)
            raise PrefetchError(f"the decoding process died (exit code {process.exitcode})") from None
        kind = message[0]
        if kind == "frame":
            _, index, time_s, slot, layout, geometry, decode_s, prepare_s = message
            arrays = read_slot(shm.buf, slot * slot_bytes, layout, pin=pin and geometry is None)
            try:
                conn.send(("free", slot))
            except OSError:
                pass  # the child has sent everything and left; a death shows at the next recv
            yield ReadyFrame(index, time_s, _item(geometry, arrays), decode_s, prepare_s)
        elif kind == "frame_inline":
            _, index, time_s, geometry, arrays, decode_s, prepare_s = message
            yield ReadyFrame(index, time_s, _item(geometry, arrays), decode_s, prepare_s)
        elif kind == "video_error":
            _, code, text, path, frame_index = message
            raise VideoError(code, text, path=path, frame_index=frame_index)
        elif kind == "bad_frame":
            raise ValueError(message[1])  # as preprocessing raises it in this process
        elif kind == "error":
            raise PrefetchError(f"decoding/preprocessing failed: {message[1]}")
        elif kind == "end":
            return
        else:  # pragma: no cover - both ends are this package
            raise PrefetchError(f"unexpected message from the decoding process: {kind!r}")


def _item(geometry, arrays: list) -> PreparedFrame | RawFrame:
    """The frame the child sent: a `RawFrame` (no geometry) or a `PreparedFrame` (img, img_mhmr, colors)."""
    if geometry is None:
        return RawFrame(arrays[0])
    img, img_mhmr, colors = arrays
    return PreparedFrame(img=torch.from_numpy(img), img_mhmr=torch.from_numpy(img_mhmr), true_shape=tuple(img.shape[-2:]),
                         orig_size=geometry.orig_size, geometry=geometry, colors=colors)


def _stop(conn, process) -> None:
    """Ask the child to stop, wait for it, kill it if it does not; never raises."""
    try:
        conn.send(("stop",))
    except (OSError, ValueError):
        pass  # already gone
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while process.is_alive() and time.monotonic() < deadline:
        try:  # keep reading: a child blocked on sending a large message must get through to the stop
            if conn.poll(0.05):
                conn.recv()
        except (EOFError, OSError):
            process.join(timeout=max(0.0, deadline - time.monotonic()))
            break
    if process.is_alive():
        log.warning("decoding process did not stop within %.0f s; killing it", STOP_TIMEOUT_S)
        process.kill()
        process.join(timeout=STOP_TIMEOUT_S)
    conn.close()
    if not process.is_alive():  # else its handle stays open rather than raise here
        process.close()
