"""Client of the Human3R inference server: one DEALER socket driven by non-blocking `poll` calls.

No bpy and no torch (stdlib, numpy, msgpack, pyzmq), so the Blender add-on drives it from a
`bpy.app.timers` callback with ``poll(max_messages=N, timeout_ms=0)`` and scripts use `run_job`.

What `poll` does for the caller, with bounded work per call:
- completes the `hello` handshake (see `state` and `server_info`), answers pings, sends heartbeats;
- grants credits: each job starts with `credit_window` credits and is topped up as its `frame`
  messages are handed to the caller, so the server never runs more than one window ahead of what
  the caller has consumed;
- reports a silent server (no message for `timeout_s`) as synthetic `error` messages with code
  'server_gone' (one with job None, plus one per job still running), and a server speaking
  another protocol version as an `error` with code 'version_mismatch'.

Messages are protocol maps (see `blender_addon.core.protocol`); arrays in them are read-only numpy
views of the received bytes. Synthetic messages carry ``synthetic: True``.
"""
from __future__ import annotations

import itertools
import os
import time
from typing import Any, Callable

import zmq

from ..core import protocol
from ..core.protocol import ErrorCode, MessageType, ProtocolError

DISCONNECTED, CONNECTING, READY, LOST, INCOMPATIBLE, CLOSED = (
    "disconnected", "connecting", "ready", "lost", "incompatible", "closed")
_TERMINAL = {t.value for t in protocol.TERMINAL_TYPES}
_INTERNAL = {"hello", "pong", "heartbeat", "ping"}


class Human3RClient:
    """Talks to one `human3r serve` endpoint. Not thread-safe: use it from one thread (Blender's main
    thread via a timer). `state` is one of 'disconnected', 'connecting', 'ready', 'lost',
    'incompatible', 'closed'; after 'lost', `connect()` again opens a fresh socket.

    Args:
        address: the server's ZeroMQ endpoint.
        curve_server_key: the server's CurveZMQ public key (z85 str/bytes) when it uses encryption.
        curve_keys: this client's (public, secret) z85 key pair; an ephemeral pair is made when
            `curve_server_key` is given without one (the server then refuses it unless it allows any).
        heartbeat_s: how often to send a heartbeat while otherwise idle (seconds).
        timeout_s: silence after which the server counts as gone (seconds).
        credit_window: frames the server may send ahead of what the caller has consumed, per job.
    """

    def __init__(self, address: str = "tcp://127.0.0.1:5555", *, curve_server_key: str | bytes | None = None,
                 curve_keys: tuple[str | bytes, str | bytes] | None = None, heartbeat_s: float = 2.0,
                 timeout_s: float = 10.0, credit_window: int = 32):
        self.address = address
        self.curve_server_key = _key_bytes(curve_server_key)
        self.curve_keys = None if curve_keys is None else (_key_bytes(curve_keys[0]), _key_bytes(curve_keys[1]))
        self.heartbeat_s = heartbeat_s
        self.timeout_s = timeout_s
        self.credit_window = max(1, int(credit_window))
        self.state = DISCONNECTED
        self.server_info: dict | None = None  # the server's hello: software, device, model, limits, ...
        self._ctx: zmq.Context | None = None
        self._sock: zmq.Socket | None = None
        self._tokens = itertools.count(1)
        self._prefix = os.urandom(3).hex()
        self._last_recv = 0.0
        self._last_send = 0.0
        self._outstanding: dict[str, int] = {}  # job -> credits granted and not yet used
        self._job_of_request: dict[str, str] = {}  # submit token -> job id
        self._cancel_when_accepted: set[str] = set()
        # job id -> the secret token of its `accepted` reply: proves ownership from a new connection
        # (kept across reconnects)
        self.job_tokens: dict[str, str] = {}

    # connection ------------------------------------------------------------------------------------
    def connect(self) -> None:
        """Open the socket and send `hello` (returns at once; the handshake completes in `poll`).

        Calling it again reconnects with a fresh socket (jobs of the old connection are forgotten).
        """
        self._close_socket()
        if self._ctx is None:
            self._ctx = zmq.Context()
        sock = self._ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        try:
            sock.setsockopt(zmq.SNDTIMEO, 0)
            if self.curve_server_key is not None:
                public, secret = self.curve_keys or zmq.curve_keypair()
                sock.setsockopt(zmq.CURVE_SERVERKEY, self.curve_server_key)
                sock.setsockopt(zmq.CURVE_PUBLICKEY, public)
                sock.setsockopt(zmq.CURVE_SECRETKEY, secret)
            sock.connect(self.address)
        except BaseException:  # a bad address or key: an unclosed socket would make close() hang in term()
            sock.close(linger=0)
            raise
        self._sock = sock
        self.state = CONNECTING
        self.server_info = None
        self._outstanding.clear()
        self._job_of_request.clear()
        self._cancel_when_accepted.clear()
        self._last_recv = time.monotonic()
        self._send(protocol.make_message(MessageType.HELLO, software="human3r-client/0.1", role="client",
                                         heartbeat_s=self.heartbeat_s))

    def close(self) -> None:
        """Close the socket and terminate the client's own ZeroMQ context (safe to call twice)."""
        self._close_socket()
        if self._ctx is not None:
            self._ctx.term()
            self._ctx = None
        self.state = CLOSED

    def _close_socket(self) -> None:
        if self._sock is not None:
            self._sock.close(linger=0)
            self._sock = None

    def __enter__(self) -> "Human3RClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def active_jobs(self) -> list[str]:
        """Ids of the jobs (and fetches) still streaming to this client."""
        return list(self._outstanding)

    def job_for_request(self, token: str) -> str | None:
        """The job id a `submit` token was accepted as (None until `accepted` arrives)."""
        return self._job_of_request.get(token)

    # requests --------------------------------------------------------------------------------------
    def submit(self, video: str, options: dict | None = None, *, live: str | None = None) -> str:
        """Queue a video (a path on the server's machine) with job options; return a request token.

        `live`: instead of a video, the name of one of the server's live sources (its hello lists
        them in `live_sources`); that job runs until cancelled or the stream is gone.
        The `accepted` reply (or an `error`) carries the same token in its `request` field and the
        job id in `job`; the job's stream then follows.
        """
        token = self._token()
        extra = {} if live is None else {"live": str(live)}
        self._send(protocol.make_message(MessageType.SUBMIT, video=str(video), options=dict(options or {}),
                                         request=token, credits=self.credit_window, **extra))
        return token

    def cancel(self, job: str) -> None:
        """Stop a job (by job id, or by the submit token if `accepted` has not arrived yet)."""
        job_id = self._job_of_request.get(job, job)
        if job_id.startswith(f"r{self._prefix}-"):  # still only a token: cancel once accepted
            self._cancel_when_accepted.add(job_id)
            return
        self._send(protocol.make_message(MessageType.CANCEL, job_id, token=self.job_tokens.get(job_id)))

    def request_status(self) -> str:
        """Ask for the status of all jobs; the reply is a `status` message with `jobs`."""
        token = self._token()
        self._send(protocol.make_message(MessageType.STATUS, request=token))
        return token

    def fetch(self, job: str, token: str | None = None) -> None:
        """Re-stream a finished job's results from the server's result file (with credits).

        Servers serve only the submitter's jobs: `token` (default: the one this client was given
        when it submitted the job) proves that from another connection."""
        self._outstanding[job] = self.credit_window
        self._send(protocol.make_message(MessageType.FETCH, job, credits=self.credit_window,
                                         token=token or self.job_tokens.get(job)))

    def ping(self) -> str:
        token = self._token()
        self._send(protocol.make_message(MessageType.PING, request=token))
        return token

    # receiving -------------------------------------------------------------------------------------
    def keep_alive(self) -> None:
        """Send a heartbeat if one is due, without reading (the caller is busy with what it has)."""
        if self._sock is not None and self.state not in (LOST, INCOMPATIBLE) \
                and time.monotonic() - self._last_send >= self.heartbeat_s:
            self._send(protocol.make_message(MessageType.HEARTBEAT))

    def poll(self, max_messages: int = 50, timeout_ms: int = 0) -> list[dict]:
        """Return up to `max_messages` messages for the caller, waiting at most `timeout_ms` ms.

        Never blocks longer than `timeout_ms` (0: not at all). Internal messages (hello, pong,
        heartbeat, ping) are handled here and not returned.
        """
        out: list[dict] = []
        if self._sock is None or self.state in (LOST, INCOMPATIBLE):
            return out
        now = time.monotonic()
        if now - self._last_send >= self.heartbeat_s:
            self._send(protocol.make_message(MessageType.HEARTBEAT))
        deadline = now + max(0, timeout_ms) / 1000.0
        received = 0
        while len(out) < max_messages and received < max_messages * 4:
            wait_ms = 0 if out else max(0, int((deadline - time.monotonic()) * 1000))
            if not self._sock.poll(wait_ms, zmq.POLLIN):
                break
            frames = self._sock.recv_multipart(zmq.NOBLOCK, copy=False)
            received += 1
            self._last_recv = time.monotonic()
            msg = self._decode(frames)
            if msg is not None:
                out.append(msg)
            if self.state == INCOMPATIBLE:
                break
        if self.state in (CONNECTING, READY) and time.monotonic() - self._last_recv > self.timeout_s:
            out.extend(self._server_gone())
        return out

    def _decode(self, frames: list) -> dict | None:
        try:
            msg = protocol.decode(frames)
        except ProtocolError as exc:
            if exc.code == ErrorCode.VERSION_MISMATCH.value:
                self.state = INCOMPATIBLE
                return _synthetic_error(ErrorCode.VERSION_MISMATCH, f"the server speaks another protocol: "
                                        f"{exc.message}; update the add-on or the server", None)
            return _synthetic_error(exc.code, f"undecodable message from the server: {exc.message}", None)
        mtype = msg["type"]
        if mtype in _INTERNAL:
            if mtype == "hello":
                self.server_info = msg
                self.state = READY
            elif mtype == "ping":
                self._send(protocol.make_message(MessageType.PONG, request=msg.get("request")))
            return None
        job = msg.get("job")
        if mtype == "accepted":
            token = msg.get("request")
            self._outstanding[job] = self.credit_window
            if isinstance(msg.get("token"), str):
                self.job_tokens[job] = msg["token"]
            if isinstance(token, str):
                self._job_of_request[token] = job
                if token in self._cancel_when_accepted:
                    self._cancel_when_accepted.discard(token)
                    self._send(protocol.make_message(MessageType.CANCEL, job))
        elif mtype == "frame" and job in self._outstanding:
            self._consume_credit(job)
        elif mtype in _TERMINAL and job is not None:
            self._outstanding.pop(job, None)
        if mtype == "error" and msg.get("code") == ErrorCode.VERSION_MISMATCH.value:
            self.state = INCOMPATIBLE
        if mtype == "error" and msg.get("code") == ErrorCode.SERVER_STOPPING.value and job is None:
            self.state = LOST  # the server said goodbye: no need to wait for its silence
            self._outstanding.clear()
        return msg

    def _consume_credit(self, job: str) -> None:
        left = self._outstanding[job] - 1
        if left <= self.credit_window // 2:  # top up in batches, not one message per frame
            self._send(protocol.make_message(MessageType.CREDIT, job, credits=self.credit_window - left))
            left = self.credit_window
        self._outstanding[job] = left

    def _server_gone(self) -> list[dict]:
        self.state = LOST
        text = (f"no message from the server at {self.address} for {self.timeout_s:g} s "
                "(stopped, crashed, unreachable, or it refused this client's key)")
        out = [_synthetic_error(ErrorCode.SERVER_GONE, text, None)]
        out += [_synthetic_error(ErrorCode.SERVER_GONE, text, job) for job in self._outstanding]
        self._outstanding.clear()
        return out

    # blocking convenience ----------------------------------------------------------------------------
    def run_job(self, video: str, options: dict | None = None,
                on_message: Callable[[dict], Any] | None = None, *, timeout_s: float | None = None) -> dict:
        """Submit a video and block until its stream ends; return the last message.

        `on_message` gets every message of the job (accepted, header, frames, progress, tracks,
        the end) in order. The result is the `done`, `cancelled` or `error` message (errors include
        a refused submit, 'server_gone' and 'version_mismatch'). Ctrl-C cancels the job.
        """
        if self._sock is None or self.state in (LOST, INCOMPATIBLE, CLOSED):
            self.connect()
        token = self.submit(video, options)
        job: str | None = None
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        try:
            while True:
                for msg in self.poll(max_messages=64, timeout_ms=100):
                    if msg["type"] == "accepted" and msg.get("request") == token:
                        job = msg["job"]
                    mine = (msg.get("request") == token or (job is not None and msg.get("job") == job)
                            or (msg["type"] == "error" and msg.get("job") is None
                                and msg.get("code") in (ErrorCode.SERVER_GONE.value, ErrorCode.VERSION_MISMATCH.value,
                                                        ErrorCode.SERVER_STOPPING.value)))
                    if not mine:
                        continue
                    if on_message is not None:
                        on_message(msg)
                    if msg["type"] in _TERMINAL and msg["type"] != "accepted":
                        if msg.get("job") == job or job is None:
                            return msg
                if deadline is not None and time.monotonic() > deadline:
                    if job is not None:
                        self.cancel(job)
                    return _synthetic_error(ErrorCode.TIMEOUT, f"no result within {timeout_s:g} s", job)
        except KeyboardInterrupt:
            self.cancel(job or token)
            raise

    # helpers ----------------------------------------------------------------------------------------
    def _token(self) -> str:
        return f"r{self._prefix}-{next(self._tokens)}"

    def _send(self, msg: dict) -> None:
        if self._sock is None:
            raise RuntimeError("not connected: call connect() first")
        try:
            self._sock.send_multipart(protocol.encode(msg), flags=zmq.NOBLOCK)
        except zmq.Again:
            return  # not connected yet and the pipe is full; heartbeats and the timeout handle it
        self._last_send = time.monotonic()


def _synthetic_error(code: ErrorCode | str, text: str, job: str | None) -> dict:
    msg = protocol.error_message(code, text, job=job)
    msg["synthetic"] = True
    return msg


def _key_bytes(key: str | bytes | None) -> bytes | None:
    if key is None:
        return None
    return key.encode("ascii") if isinstance(key, str) else bytes(key)
