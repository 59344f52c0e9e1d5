"""Per-job outbound message streams between producer threads and the socket thread.

A producer (the job worker, or a fetch thread re-reading a result file) encodes each message and
`put`s its frames into the job's `OutboundStream`. The stream is bounded: when it holds
`capacity` messages, `put` blocks, so a client that grants no credits stalls the producer instead
of making the server buffer without bound. The socket thread takes messages in order with
`take_sendable(credits)`: `frame` messages need a credit each, every other kind goes out freely but
never overtakes a frame that is still waiting (the per-job order is the protocol's `seq` order).

`Waker` lets producers wake the socket thread's poll without touching its ZeroMQ socket.
"""
from __future__ import annotations

import collections
import socket
import threading
import time
from dataclasses import dataclass

FRAME = "frame"


@dataclass
class Outgoing:
    """One encoded message: its type (for credit accounting) and its ZeroMQ frames."""

    type: str
    frames: list
    terminal: bool = False


class StreamClosed(Exception):
    """The stream's consumer went away (client gone); the producer should stop feeding it."""


class OutboundStream:
    """Bounded FIFO of `Outgoing` messages for one job and one client, with credit accounting.

    Thread use: one producer thread calls `put`/`finish`; only the socket thread calls
    `take_sendable`, `grant`, `close` and reads `credits`.
    """

    def __init__(self, job: str, peer: bytes, capacity: int, waker: "Waker", credits: int = 0):
        self.job = job
        self.peer = peer
        self.capacity = max(1, capacity)
        self.credits = max(0, credits)
        self._waker = waker
        self._items: collections.deque[Outgoing] = collections.deque()
        self._cond = threading.Condition()
        self._closed = False
        self.ended = False  # the terminal message has been taken for sending
        self.full_since: float | None = None  # monotonic time the buffer became full
        self.blocked_since: float | None = None  # monotonic time a frame began waiting for credits (stall watch)
        self.max_depth = 0  # largest buffered count seen (tests check the bound)

    # producer side ---------------------------------------------------------------------------
    def put(self, item: Outgoing, timeout: float | None = None) -> None:
        """Append, blocking while the buffer is full. Raises StreamClosed if the consumer left,
        TimeoutError if `timeout` seconds pass while full."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while len(self._items) >= self.capacity and not self._closed:
                if self.full_since is None:
                    self.full_since = time.monotonic()
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TimeoutError(f"stream of job {self.job} stayed full")
                self._cond.wait(remaining if remaining is not None else 1.0)
            if self._closed:
                raise StreamClosed(self.job)
            self._items.append(item)
            self.max_depth = max(self.max_depth, len(self._items))
        self._waker.wake()

    # socket-thread side ----------------------------------------------------------------------
    def take_sendable(self, limit: int) -> list[Outgoing]:
        """Pop up to `limit` messages that may be sent now (frames consume credits)."""
        out: list[Outgoing] = []
        with self._cond:
            while self._items and len(out) < limit:
                head = self._items[0]
                if head.type == FRAME:
                    if self.credits <= 0:
                        if self.blocked_since is None:
                            self.blocked_since = time.monotonic()
                        break
                    self.credits -= 1
                self._items.popleft()
                out.append(head)
                if head.terminal:
                    self.ended = True
            if out:
                self.full_since = None
                if self.credits > 0 or not self._items:
                    self.blocked_since = None
                self._cond.notify_all()
        return out

    def push_front(self, items: list[Outgoing]) -> None:
        """Put back messages that could not be sent (peer's queue full), keeping their order."""
        with self._cond:
            for item in reversed(items):
                if item.type == FRAME:
                    self.credits += 1
                if item.terminal:
                    self.ended = False
                self._items.appendleft(item)

    def grant(self, credits: int, cap: int) -> None:
        self.credits = min(cap, self.credits + max(0, credits))

    def close(self) -> None:
        """Consumer gone: drop what is buffered and make the producer's `put` raise StreamClosed."""
        with self._cond:
            self._closed = True
            self._items.clear()
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)


class Waker:
    """A socketpair the socket thread polls; any thread may `wake` it (never blocks)."""

    def __init__(self):
        self._recv, self._send = socket.socketpair()
        self._recv.setblocking(False)
        self._send.setblocking(False)

    def fileno(self) -> int:
        return self._recv.fileno()

    def wake(self) -> None:
        try:
            self._send.send(b"\0")
        except (BlockingIOError, OSError):
            pass  # already awake (buffer full) or shutting down

    def drain(self) -> None:
        try:
            while self._recv.recv(4096):
                pass
        except (BlockingIOError, OSError):
            pass

    def close(self) -> None:
        self._recv.close()
        self._send.close()
