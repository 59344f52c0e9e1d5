"""Run a producer on a worker thread, a bounded number of items ahead of its consumer.

The engine's model half (decode wait, model step, the frame's one device->host copy, tracking)
runs here while the caller post-processes, encodes, writes and sends the previous frame: on a GPU
the host work then hides behind the device's work instead of adding to it.

Order is kept (one queue); an exception raised by the producer reaches the consumer after every
item produced before it, as if the two ran in one thread; closing the consumer stops the producer
and closes it on its own thread.
"""
from __future__ import annotations

import queue
import threading
from typing import Iterator, TypeVar

T = TypeVar("T")
_ITEM, _ERROR, _END = "item", "error", "end"
_POLL_S = 0.05  # how often a blocked producer looks for a stop


def run_ahead(produce: Iterator[T], depth: int = 1, name: str = "run-ahead") -> Iterator[T]:
    """Items of `produce`, computed on a worker thread at most `depth` (>= 1) items ahead."""
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    slots: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(entry) -> bool:
        while not stop.is_set():
            try:
                slots.put(entry, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in produce:
                if not put((_ITEM, item)):
                    return
            put((_END, None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, in order
            put((_ERROR, exc))
        finally:
            close = getattr(produce, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=work, name=name, daemon=True)
    worker.start()
    try:
        while True:
            kind, value = slots.get()
            if kind == _END:
                return
            if kind == _ERROR:
                raise value
            yield value
    finally:
        stop.set()
        worker.join()
