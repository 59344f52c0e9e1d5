"""Is a Human3R server answering at an address? A cheap, non-blocking check, cached for a while.

The panel asks on every redraw; `ServerProbe.step()` (called from a main-thread timer) opens a
short-lived client that says `hello`, checks the reply without waiting and closes the client once
the server answered or `timeout_s` passed. The answer is kept for `ttl_s` seconds, so a server
started by hand shows as reachable, and a stopped one as not answering, within a few seconds. No
thread and no blocking call: a probe costs one socket and a few polls.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

TTL_S = 5.0  # seconds an answer is trusted before the next probe
TIMEOUT_S = 2.0  # seconds without a hello reply after which the server counts as not answering


@dataclass
class ProbeAnswer:
    """What the last finished probe found. `reachable` is None before the first answer."""

    address: str = ""
    reachable: bool | None = None
    info: dict = field(default_factory=dict)  # the server's hello (device, model, ...) when reachable
    problem: str = ""  # why the server counts as not answering (timeout, incompatible, bad address)
    checked_at: float = float("-inf")  # clock time of the answer


class ServerProbe:
    """One probe at a time against the address that `address()` returns.

    `make_client(address)` returns an unconnected client with `connect()`, `poll(timeout_ms=0)`,
    `state` ('ready' after the handshake, 'incompatible'/'lost' on failure), `server_info` and `close()`.
    """

    def __init__(self, make_client: Callable[[str], Any], *, ttl_s: float = TTL_S, timeout_s: float = TIMEOUT_S,
                 clock: Callable[[], float] = time.monotonic):
        self.make_client = make_client
        self.ttl_s, self.timeout_s = ttl_s, timeout_s
        self._clock = clock
        self.answer = ProbeAnswer()
        self._client = None
        self._target = ""
        self._started = 0.0

    @property
    def in_flight(self) -> bool:
        return self._client is not None

    def stale(self, address: str) -> bool:
        """Whether the cached answer is too old (or about another address) to show as current."""
        return self.answer.address != address or self._clock() - self.answer.checked_at > self.ttl_s

    def step(self, address: str) -> bool:
        """Advance without blocking: start a probe when the answer is stale, read the reply of one in
        flight. Returns True when the answer changed (the panel should redraw)."""
        if self._client is not None and self._target != address:
            self._close()
        if self._client is None:
            if not self.stale(address):
                return False
            return self._start(address)
        try:
            self._client.poll(max_messages=10, timeout_ms=0)
        except Exception as exc:  # a socket error is an answer too
            return self._finish(False, f"{type(exc).__name__}: {exc}")
        state = str(self._client.state)
        if state == "ready":
            return self._finish(True, "", dict(self._client.server_info or {}))
        if state in ("incompatible", "lost", "closed"):
            return self._finish(False, f"the server at {address} refused the handshake ({state})")
        if self._clock() - self._started > self.timeout_s:
            return self._finish(False, f"no answer within {self.timeout_s:g} s")
        return False

    def close(self) -> None:
        """Drop a probe in flight (the add-on is being disabled)."""
        self._close()

    def _start(self, address: str) -> bool:
        self._target, self._started = address, self._clock()
        try:
            self._client = self.make_client(address)
            self._client.connect()
        except Exception as exc:  # a malformed address or key file: answered at once
            self._close()
            return self._finish(False, str(exc), target=address)
        return False

    def _finish(self, reachable: bool, problem: str, info: dict | None = None, *, target: str | None = None) -> bool:
        before = (self.answer.address, self.answer.reachable)
        self.answer = ProbeAnswer(address=target or self._target, reachable=reachable, info=info or {},
                                  problem=problem, checked_at=self._clock())
        self._close()
        return before != (self.answer.address, self.answer.reachable)

    def _close(self) -> None:
        if self._client is not None:
            try:
                self._client.close()
            finally:
                self._client = None
