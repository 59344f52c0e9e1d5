"""The decoding process behind `ready_frames` (mode ``process``): decode and preprocess frames ahead of the model.

Why a process: on a CPU the model's Python-heavy loop and a decoding *thread* fight over the GIL
(every torch op hands it over), which costs the model far more than the decoding itself. A child
process has its own interpreter; only small messages and one memory copy per frame cross over.

Wire (one duplex `multiprocessing.Connection`; tensors go through a shared-memory ring of slots):

    child -> parent  ("ready",)                     # started: a death before this is the platform's
                     ("frame", index, time, slot, layout, geometry, decode_s, prepare_s)
                     ("frame_inline", index, time, geometry, arrays, decode_s, prepare_s)
                         # too big for a slot: numpy arrays in the message (tensors would pickle as
                         # file descriptors fetched from this process, which may be gone by then)
                         # geometry None = a raw uint8 frame (`RawFrame`: preprocessing on a device)
                     ("video_error", code, message, path, frame_index)
                     ("bad_frame", message)        # preprocessing refused a frame (ValueError)
                     ("error", description)        # anything else, with its traceback
                     ("end",)
    parent -> child  ("free", slot) | ("stop",)

The child fills a slot only after the parent has freed it, so the parent may read a slot until it
sends ("free", slot). The child stops at ("stop",), at the end of the source, or when the parent
is gone (its end of the connection closes).
"""
from __future__ import annotations

import signal
import time
import traceback
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing import shared_memory

import numpy as np
import torch

from backend.video.preprocess import PreparedFrame, PrepareSettings, RawFrame, crop_box, resized_size
from backend.video.reader import FrameSource, VideoError

_FLOAT = np.dtype(np.float32)
_UINT8 = np.dtype(np.uint8)


@dataclass(frozen=True)
class SlotLayout:
    """Shapes and dtypes of the arrays of one frame in a slot, in order: img float32, img_mhmr float32,
    colors uint8 (a `PreparedFrame`), or rgb uint8 alone (a `RawFrame`, for preprocessing on a device)."""

    shapes: tuple[tuple[int, ...], ...]
    dtypes: tuple[str, ...]

    @property
    def sizes(self) -> tuple[int, ...]:
        """Bytes of each array."""
        return tuple(np.dtype(d).itemsize * int(np.prod(s)) for s, d in zip(self.shapes, self.dtypes))

    @property
    def nbytes(self) -> int:
        return sum(self.sizes)

    @classmethod
    def of(cls, item: PreparedFrame | RawFrame) -> "SlotLayout":
        arrays = _arrays(item)
        return cls(tuple(a.shape for a in arrays), tuple(a.dtype.str for a in arrays))

    @classmethod
    def expected(cls, width: int, height: int, settings: PrepareSettings) -> "SlotLayout":
        """Layout for an upright width x height frame (what `settings.on_decoder` will produce)."""
        if settings.device is not None:
            return cls(((height, width, 3),), (_UINT8.str,))
        new_w, new_h = resized_size(width, height, settings.size)
        left, top, right, bottom = crop_box(new_w, new_h)
        w, h = max(1, right - left), max(1, bottom - top)
        r = settings.mhmr_res
        return cls(((1, 3, h, w), (1, 3, r, r), (h, w, 3)), (_FLOAT.str, _FLOAT.str, _UINT8.str))


def _arrays(item: PreparedFrame | RawFrame) -> tuple[np.ndarray, ...]:
    if isinstance(item, RawFrame):
        return (np.asarray(item.rgb),)
    return item.img.numpy(), item.img_mhmr.numpy(), item.colors


def write_slot(buf: memoryview, offset: int, item: PreparedFrame | RawFrame) -> SlotLayout:
    """Copy a frame's arrays into `buf` at `offset`; returns their layout."""
    layout = SlotLayout.of(item)
    for array, nbytes in zip(_arrays(item), layout.sizes):
        target = np.ndarray(array.shape, array.dtype, buffer=buf, offset=offset)
        np.copyto(target, array)
        del target  # no exported pointers may outlive the segment
        offset += nbytes
    return layout


def read_slot(buf: memoryview, offset: int, layout: SlotLayout, pin: bool = False) -> list:
    """Copies of the arrays in `buf` at `offset` (the slot may be reused afterwards): numpy arrays,
    or with `pin` page-locked tensors, ready for an asynchronous upload (a tensor, not a numpy view
    of one: the pinned-memory cache keeps a block from reuse until its queued copies are done only
    when the copy is made from the tensor that owns it)."""
    arrays = []
    for shape, dtype, nbytes in zip(layout.shapes, layout.dtypes, layout.sizes):
        view = np.ndarray(shape, np.dtype(dtype), buffer=buf, offset=offset)
        if pin:
            host = torch.empty(shape, dtype=torch.from_numpy(view[:0]).dtype, pin_memory=True)
            host.numpy()[...] = view
            arrays.append(host)
        else:
            arrays.append(view.copy())
        del view
        offset += nbytes
    return arrays


def run_worker(conn: Connection, source: FrameSource, settings: PrepareSettings, shm_name: str | None,
               slot_bytes: int, n_slots: int, torch_threads: int) -> None:
    """Child process entry point (see the module docstring).

    `torch_threads`: the parent's intra-op thread count. At least two are used here: torch's bilinear
    resize (the Multi-HMR input) rounds differently on one thread than on several, and several is
    what the reference ran with. The parent's model often runs on a single thread to leave this
    process a core; its preprocessing still matches the reference bit for bit.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the parent decides
    torch.set_num_threads(max(2, torch_threads))
    shm = _attach(shm_name) if shm_name else None
    free = list(range(n_slots)) if shm is not None else []
    try:
        conn.send(("ready",))
        _serve(conn, source, settings, shm, slot_bytes, free)
    except (EOFError, BrokenPipeError, ConnectionResetError):
        pass  # the parent is gone or stopped listening: nothing left to do
    finally:
        source.close()
        if shm is not None:
            shm.close()


def _serve(conn: Connection, source: FrameSource, settings: PrepareSettings, shm, slot_bytes: int,
           free: list[int]) -> None:
    frames = iter(source)
    while True:
        t0 = time.perf_counter()
        try:
            frame = next(frames, None)
        except VideoError as exc:
            conn.send(("video_error", exc.code, str(exc), exc.path, exc.frame_index))
            return
        except Exception as exc:
            conn.send(("error", _describe(exc)))
            return
        if frame is None:
            conn.send(("end",))
            return
        t1 = time.perf_counter()
        try:
            item = settings.on_decoder(frame.rgb)
        except ValueError as exc:  # e.g. a frame too small for the crop
            conn.send(("bad_frame", str(exc)))
            return
        except Exception as exc:
            conn.send(("error", _describe(exc)))
            return
        t2 = time.perf_counter()
        if shm is None or SlotLayout.of(item).nbytes > slot_bytes:
            geometry = item.geometry if isinstance(item, PreparedFrame) else None
            conn.send(("frame_inline", frame.index, frame.time, geometry, _arrays(item), t1 - t0, t2 - t1))
            if not _drain(conn, free, block=False):
                return
            continue
        if not free and not _drain(conn, free, block=True):
            return
        slot = free.pop(0)
        layout = write_slot(shm.buf, slot * slot_bytes, item)
        geometry = item.geometry if isinstance(item, PreparedFrame) else None
        conn.send(("frame", frame.index, frame.time, slot, layout, geometry, t1 - t0, t2 - t1))
        if not _drain(conn, free, block=False):
            return


def _drain(conn: Connection, free: list[int], block: bool) -> bool:
    """Read the parent's messages (all waiting ones; at least one if `block`). False = stop."""
    while block or conn.poll():
        message = conn.recv()
        if message[0] == "stop":
            return False
        free.append(message[1])
        block = False
    return True


def _attach(name: str) -> shared_memory.SharedMemory:
    # the parent created the segment and unlinks it; attaching registers the same name with the same
    # resource tracker (a set), which the parent's unlink clears again
    return shared_memory.SharedMemory(name=name)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}\n{''.join(traceback.format_exception(exc, limit=6))}"
