"""The ZeroMQ inference server: one ROUTER socket, owned by one thread, serving many DEALER clients.

Threads:
- the *socket thread* (`Server._serve`) owns the ROUTER socket: it decodes requests, answers them,
  sends heartbeats, drops silent peers and pumps every job's `OutboundStream` to its client as far
  as the client's credits allow. No other thread touches the socket;
- the *worker* (`jobs.Worker`) runs jobs one at a time on the device and writes each job's .h3r;
- short-lived *fetch threads* re-read finished result files for `fetch` requests.

Producers wake the socket thread through a `Waker`; everything the socket thread sends goes out
with NOBLOCK under ROUTER_MANDATORY, so a vanished client (EHOSTUNREACH) is noticed at once and a
full client pipe (EAGAIN) is retried later instead of blocking the loop.
"""
from __future__ import annotations

import collections
import logging
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import zmq

from blender_addon.core import protocol
from blender_addon.core.protocol import ErrorCode, MessageType, ProtocolError

from . import live_sources, security
from .ownership import Ownership, new_token, peer_account, peer_owner, token_digest
from .jobs import FINISHED_STATES, Job, JobBoard, JobRunner, Worker, FetchThread, new_job_id, write_cancelled_file
from .retention import prune_results
from .settings import ServerSettings
from .streams import Outgoing, OutboundStream, Waker

log = logging.getLogger(__name__)

SOFTWARE = "human3r-server/0.1"
_JOB_ID = re.compile(r"^[A-Za-z0-9_.\-]{1,80}$")
_MAX_RECV_PER_TURN = 200  # bound the work of one loop turn so sends and heartbeats keep flowing
_MAX_SEND_PER_STREAM = 64
_MAX_OUTBOX = 1000  # control replies queued for one peer whose pipe is full; older ones are dropped


@dataclass
class Peer:
    """A connected client as the ROUTER sees it (one DEALER socket = one routing id)."""

    identity: bytes
    last_seen: float
    owner: str = ""  # whose jobs it may see and touch (ownership.peer_owner)
    account: str = ""  # what its limits count against (ownership.peer_account)
    last_sent: float = 0.0
    hello: dict | None = None
    bad_messages: int = 0  # malformed messages so far (logged loudly only for the first few)
    outbox: collections.deque = field(default_factory=collections.deque)
    streams: dict[str, OutboundStream] = field(default_factory=dict)  # job id -> its stream to this peer

    @property
    def name(self) -> str:
        return self.identity.hex()[:12]


class Server:
    """The ZeroMQ server. `start()` binds and returns; `stop()` cancels jobs and joins the threads.

    Args:
        settings: limits, timings, roots, keys (`ServerSettings`).
        job_runner: callable with the signature of `backend.engine.job.iter_job_messages`.
        engine: passed through to `job_runner` as its first argument.
        options_parser: turns a client's options map into what `job_runner` takes; raises ValueError
            naming the bad option (production: `JobOptions.from_dict`). Default: the map itself.
        info: extra fields for the server's `hello` (device, model, ...).
    """

    def __init__(self, settings: ServerSettings, job_runner: JobRunner, engine: Any = None, *,
                 options_parser: Callable[[dict], Any] | None = None, info: dict | None = None):
        security.check_bind(settings.bind, settings.curve_enabled)
        self.settings = settings
        self.board = JobBoard(settings.finished_jobs_kept)
        self.worker = Worker(self.board, live_sources.resolving_runner(job_runner, settings.live_sources), engine,
                             after_job=self.prune_results, before_job=self._recheck_video)
        self.options_parser = options_parser or (lambda d: d)
        self.info = dict(info or {})
        self.endpoint: str | None = None
        self._peers: dict[bytes, Peer] = {}
        self._waker = Waker()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._startup_error: BaseException | None = None
        self._fetch_threads: list[threading.Thread] = []
        Path(settings.results_dir).mkdir(parents=True, exist_ok=True)
        self.prune_results()

    # lifecycle -----------------------------------------------------------------------------------
    def start(self, timeout: float = 10.0) -> str:
        """Bind the socket and start serving in background threads; return the bound endpoint."""
        self._thread = threading.Thread(target=self._serve, name="human3r-socket", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("the server socket did not come up in time")
        if self._startup_error is not None:
            raise self._startup_error
        self.worker.start()
        return self.endpoint

    def stop(self, timeout: float = 10.0) -> None:
        """Cancel every job, stop the threads, close the socket and terminate its context."""
        for job in self.board.active_jobs():
            job.cancel.set()
        self.board.stop()
        self._stop.set()
        self._waker.wake()
        if self._thread is not None:
            self._thread.join(timeout)
        if self.worker.is_alive():
            self.worker.join(timeout)
        self._waker.close()

    @property
    def serving(self) -> bool:
        """True while the socket thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def wait(self) -> None:
        """Block until the socket thread ends (after `stop`, or a fatal error)."""
        while self._thread is not None and self._thread.is_alive():
            self._thread.join(0.5)

    # socket thread -------------------------------------------------------------------------------
    def _serve(self) -> None:
        ctx = zmq.Context()
        auth = None
        sock = None
        try:
            sock = ctx.socket(zmq.ROUTER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
            sock.setsockopt(zmq.MAXMSGSIZE, self.settings.max_socket_message_bytes)
            if self.settings.curve_enabled:
                auth = security.start_authenticator(ctx, self.settings.allowed_client_keys)
                sock.setsockopt(zmq.CURVE_SERVER, 1)
                sock.setsockopt(zmq.CURVE_SECRETKEY, self.settings.curve_secret_key)
                if self.settings.curve_public_key:
                    sock.setsockopt(zmq.CURVE_PUBLICKEY, self.settings.curve_public_key)
            bind = self.settings.bind
            if bind.startswith("tcp://") and bind.endswith(":0"):
                bind = bind[:-2] + ":*"  # ask the OS for a free port
            sock.bind(bind)
            self.endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
        except BaseException as exc:
            self._startup_error = exc
            self._ready.set()
            if sock is not None:
                sock.close(0)
            if auth is not None:
                auth.stop()
            ctx.term()
            return
        log.info("listening on %s (curve %s)", self.endpoint, "on" if auth else "off")
        self._ready.set()
        try:
            self._loop(sock)
        except Exception:
            log.exception("socket thread failed")
            raise
        finally:
            for job in self.board.active_jobs():
                job.cancel.set()
            self._say_stopping(sock)
            for peer in list(self._peers.values()):
                for stream in peer.streams.values():
                    stream.close()
            self.board.stop()
            sock.close(linger=500)  # give the `server_stopping` notes a moment to leave
            if auth is not None:
                auth.stop()
            ctx.term()
            log.info("server stopped")

    def _say_stopping(self, sock: zmq.Socket) -> None:
        """Tell every client the server is going away: one `server_stopping` error per job it was
        receiving (its end) and one for the connection, so nobody waits for a heartbeat timeout."""
        text = "the server is shutting down; {what}. Submit again once it is back (`human3r serve`)"
        for peer in list(self._peers.values()):
            notes = [protocol.error_message(ErrorCode.SERVER_STOPPING, text.format(
                what=f"job {job_id} was cancelled (its frames so far are in the server's result file)"), job=job_id)
                for job_id, stream in peer.streams.items() if not stream.ended]
            notes.append({**protocol.error_message(ErrorCode.SERVER_STOPPING, text.format(what="it takes no new jobs")),
                          "reply": True})
            for note in notes:
                if self._send(sock, peer, protocol.encode(note)) != "ok":
                    break

    def _loop(self, sock: zmq.Socket) -> None:
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        poller.register(self._waker.fileno(), zmq.POLLIN)
        next_housekeeping = 0.0
        backlog = False
        while not self._stop.is_set():
            # short polls only while some peer's pipe was full (EAGAIN) and must be retried
            timeout_ms = 10 if backlog else int(1000 * min(0.25, self.settings.heartbeat_s / 2))
            events = dict(poller.poll(timeout_ms))
            if self._waker.fileno() in events:
                self._waker.drain()
            if sock in events:
                for _ in range(_MAX_RECV_PER_TURN):
                    try:
                        frames = sock.recv_multipart(zmq.NOBLOCK, copy=False)
                    except zmq.Again:
                        break
                    self._on_message(frames)
            backlog = self._pump(sock)
            now = time.monotonic()
            if now >= next_housekeeping:
                self._housekeeping(sock, now)
                next_housekeeping = now + min(0.25, self.settings.heartbeat_s / 4)

    # receiving -----------------------------------------------------------------------------------
    def _on_message(self, frames: list[zmq.Frame]) -> None:
        identity, body = frames[0].bytes, frames[1:]
        now = time.monotonic()
        peer = self._peers.get(identity)
        if peer is None:
            peer = self._peers[identity] = self._new_peer(identity, body[0] if body else frames[0], now)
            log.info("peer %s connected (%s)", peer.name, peer.account)
        peer.last_seen = now
        size = sum(len(f) for f in body)
        if size > self.settings.max_request_bytes:
            self._reply_error(peer, ErrorCode.TOO_LARGE,
                              f"request of {size} bytes (this server accepts at most {self.settings.max_request_bytes}); "
                              "send the video's path, not its contents")
            return
        try:
            msg = protocol.decode(body)
        except ProtocolError as exc:
            peer.bad_messages += 1
            log.log(logging.WARNING if peer.bad_messages <= 10 else logging.DEBUG,
                    "peer %s: rejected message (%s): %s", peer.name, exc.code, exc.message)
            self._reply_error(peer, exc.code, exc.message)
            return
        handler = self._HANDLERS.get(msg["type"])
        if handler is None:
            self._reply_error(peer, ErrorCode.BAD_MESSAGE, f"'{msg['type']}' is not a request a client may send")
            return
        try:
            handler(self, peer, msg)
        except ProtocolError as exc:
            log.warning("peer %s: %s refused (%s): %s", peer.name, msg["type"], exc.code, exc.message)
            self._reply_error(peer, exc.code, exc.message, request=msg.get("request"),
                              job=msg.get("job") if msg["type"] in ("fetch",) else None)
        except Exception as exc:  # a bug in one request must not stop the server
            log.exception("peer %s: %s failed", peer.name, msg["type"])
            self._reply_error(peer, ErrorCode.INTERNAL, f"server error: {exc}", request=msg.get("request"))

    def _new_peer(self, identity: bytes, frame: zmq.Frame, now: float) -> Peer:
        """A peer named by what ZeroMQ vouches for: its Curve key (ZAP User-Id) and network address."""
        curve_key = _frame_property(frame, "User-Id") if self.settings.curve_enabled else None
        address = _frame_property(frame, "Peer-Address")
        return Peer(identity, now, owner=peer_owner(identity, curve_key),
                    account=peer_account(identity, curve_key, address))

    def _on_hello(self, peer: Peer, msg: dict) -> None:
        peer.hello = {"software": msg.get("software"), "role": msg.get("role")}
        s = self.settings
        limits = {"max_request_bytes": s.max_request_bytes, "max_frames_per_job": s.max_frames_per_job,
                  "max_size": s.max_size,
                  "max_jobs_per_client": s.max_jobs_per_client, "max_queue": s.max_queue,
                  "stream_queue_messages": s.stream_queue_messages}
        self._send_control(peer, protocol.make_message(
            MessageType.HELLO, software=SOFTWARE, role="server", limits=limits, heartbeat_s=s.heartbeat_s,
            timeout_s=s.peer_timeout_s, live_sources=live_sources.describe(s.live_sources), **self.info))

    def _on_ping(self, peer: Peer, msg: dict) -> None:
        self._send_control(peer, protocol.make_message(MessageType.PONG, request=msg.get("request")))

    def _on_pong(self, peer: Peer, msg: dict) -> None:
        pass  # liveness already recorded

    def _on_submit(self, peer: Peer, msg: dict) -> None:
        s = self.settings
        request = msg.get("request")
        if request is not None and not isinstance(request, str):
            raise ProtocolError(ErrorCode.BAD_MESSAGE, "'submit'.request must be a string")
        credits = _optional_int(msg, "credits", 0)
        active = self.board.active_jobs()
        if len(active) >= s.max_queue:
            raise ProtocolError(ErrorCode.QUEUE_FULL, f"the server already has {len(active)} jobs queued or running "
                                f"(max {s.max_queue}); try again later")
        mine = sum(1 for j in active if j.account == peer.account)
        if mine >= s.max_jobs_per_client:
            raise ProtocolError(ErrorCode.TOO_MANY_JOBS, f"you already have {mine} jobs queued or running "
                                f"(max {s.max_jobs_per_client} per client, counted over all your connections); "
                                "wait for one to finish or cancel one")
        if msg.get("live") is not None:  # a configured camera/stream: runs until cancelled, no frame cap
            video = live_sources.check_request(msg["live"], s.live_sources).label
            identity = None  # nothing on disk to re-check when it starts
            options_dict = dict(msg["options"])
        else:
            video = security.check_video_path(msg["video"], s.media_roots, s.live_sources)
            identity = security.file_identity(video)
            options_dict = _cap_frames(dict(msg["options"]), s.max_frames_per_job)
        options_dict = _check_size(options_dict, s.max_size)
        try:
            options = self.options_parser(options_dict)
        except (ValueError, TypeError, KeyError) as exc:
            raise ProtocolError(ErrorCode.BAD_OPTIONS, f"bad options: {exc}; fix that option and submit again") from None
        job_id = new_job_id()
        token = new_token()
        stream = OutboundStream(job_id, peer.identity, s.stream_queue_messages, self._waker,
                                credits=min(credits, s.max_credit_grant))
        job = Job(job_id, peer.identity, str(video), options, options_dict,
                  Path(s.results_dir) / f"{job_id}.h3r", stream, request=request,
                  ownership=Ownership(peer.owner, token_digest(token)), account=peer.account,
                  video_identity=identity,
                  frame_limit=s.max_frames_per_job if options_dict.get("end") != msg["options"].get("end") else None)
        job.ownership.save(job.result_path)
        peer.streams[job_id] = stream
        # accepted goes to the outbox before the worker can see the job, so it precedes the header
        position = len(active)
        self._send_control(peer, protocol.make_message(
            MessageType.ACCEPTED, job_id, 0, queue_position=position, result_path=str(job.result_path),
            request=request, video=str(video), options=options_dict, token=token, frame_limit=job.frame_limit))
        self.board.add(job)
        log.info("peer %s: job %s queued at position %d (%s)", peer.name, job_id, position, video)

    def _on_cancel(self, peer: Peer, msg: dict) -> None:
        job = self.board.get(msg["job"])
        if job is None:
            path = self._result_path(msg["job"])
            if not path.is_file() or not self._may_access(peer, Ownership.load(path), msg):
                raise ProtocolError(ErrorCode.UNKNOWN_JOB, _not_yours(msg["job"]))
            return  # finished long ago: nothing to cancel
        if not self._may_access(peer, job.ownership, msg):
            raise ProtocolError(ErrorCode.UNKNOWN_JOB, _not_yours(job.id))
        self._cancel_job(job, why=f"cancel from peer {peer.name}")
        stream = peer.streams.get(job.id)
        if stream is not None:  # let what is buffered drain so the `cancelled` message can follow
            stream.grant(self.settings.max_credit_grant, self.settings.max_credit_grant)

    def _on_status(self, peer: Peer, msg: dict) -> None:
        jobs = []
        for job, summary in self.board.summaries_with_jobs():
            mine = job.ownership is not None and job.ownership.allows(peer.owner, None, tokens_count=False)
            if mine or self.settings.shared_results:
                jobs.append({**summary, "mine": mine})
            elif summary["state"] in ("queued", "running"):  # others' jobs only show the queue
                jobs.append(_anonymous(summary))
        self._send_control(peer, protocol.make_message(
            MessageType.STATUS, request=msg.get("request"), jobs=jobs, peers=len(self._peers),
            live_sources=live_sources.describe(self.settings.live_sources)))

    def _on_fetch(self, peer: Peer, msg: dict) -> None:
        job_id = msg["job"]
        if job_id in peer.streams:
            raise ProtocolError(ErrorCode.BAD_MESSAGE, f"job {job_id} is already streaming to you")
        fetching = sum(1 for t in self._fetch_threads if t.is_alive() and t.stream.peer == peer.identity)
        if fetching >= self.settings.max_fetches_per_client:
            raise ProtocolError(ErrorCode.TOO_MANY_JOBS, f"{fetching} fetches already running for you; "
                                "wait for one to end")
        job = self.board.get(job_id)
        path = job.result_path if job is not None else self._result_path(job_id)
        ownership = job.ownership if job is not None else Ownership.load(path)
        if not self._may_access(peer, ownership, msg):
            raise ProtocolError(ErrorCode.UNKNOWN_JOB, _not_yours(job_id))
        if job is not None and job.state not in FINISHED_STATES:
            raise ProtocolError(ErrorCode.UNKNOWN_JOB, f"job {job_id} has not finished yet (state {job.state}); "
                                "fetch it once its stream has ended")
        if not path.is_file():
            raise ProtocolError(ErrorCode.UNKNOWN_JOB, f"no results for job {job_id!r} on this server (deleted by "
                                "the results retention limits); run the video again")
        credits = _optional_int(msg, "credits", 0)
        stream = OutboundStream(job_id, peer.identity, self.settings.stream_queue_messages, self._waker,
                                credits=min(credits, self.settings.max_credit_grant))
        peer.streams[job_id] = stream
        thread = FetchThread(path, job_id, stream)
        self._fetch_threads = [t for t in self._fetch_threads if t.is_alive()] + [thread]
        thread.start()
        log.info("peer %s: fetching job %s from %s", peer.name, job_id, path)

    def _on_credit(self, peer: Peer, msg: dict) -> None:
        stream = peer.streams.get(msg["job"])
        if stream is None:
            return  # the stream ended already; late credits are harmless
        if msg["credits"] < 0:
            raise ProtocolError(ErrorCode.BAD_MESSAGE, "credits must be >= 0")
        stream.grant(msg["credits"], self.settings.max_credit_grant)

    def _on_heartbeat(self, peer: Peer, msg: dict) -> None:
        pass  # liveness already recorded

    _HANDLERS = {"hello": _on_hello, "ping": _on_ping, "pong": _on_pong, "submit": _on_submit,
                 "cancel": _on_cancel, "status": _on_status, "fetch": _on_fetch, "credit": _on_credit,
                 "heartbeat": _on_heartbeat}

    # jobs ------------------------------------------------------------------------------------------
    def _may_access(self, peer: Peer, ownership: Ownership | None, msg: dict) -> bool:
        """May `peer` see, fetch or cancel a job owned as `ownership`? Without Curve, the job's
        secret token (field `token` of the request) also proves ownership."""
        if self.settings.shared_results:
            return True
        if ownership is None:
            return False
        return ownership.allows(peer.owner, msg.get("token"), tokens_count=not self.settings.curve_enabled)

    def _recheck_video(self, job) -> None:
        """Before a job starts: its file must still be the one admitted (a live source has no file)."""
        if job.video_identity is not None:
            security.recheck_video_path(job.video, job.video_identity, self.settings.media_roots)

    def prune_results(self) -> list[Path]:
        """Delete result files past the settings' age and size limits (never those of queued,
        running or currently fetched jobs); see `retention.py`."""
        s = self.settings
        protected = [job.result_path for job in self.board.active_jobs()]
        protected += [t.path for t in list(self._fetch_threads) if t.is_alive()]
        return prune_results(Path(s.results_dir), s.results_keep_days * 86400.0, int(s.results_max_gb * 1e9),
                             protected)

    def _result_path(self, job_id: str) -> Path:
        if not _JOB_ID.match(job_id):
            raise ProtocolError(ErrorCode.UNKNOWN_JOB, f"{job_id!r} is not a job id")
        return Path(self.settings.results_dir) / f"{job_id}.h3r"

    def _cancel_job(self, job: Job, why: str) -> None:
        """Cancel a queued job at once (it never runs) or ask the running one to stop."""
        if job.state in FINISHED_STATES:
            return
        if self.board.take_queued(job):
            frames = write_cancelled_file(job.result_path, job.id)
            self.board.finish(job, "cancelled")
            if job.stream is not None and not job.stream.closed:
                job.stream.put(Outgoing("cancelled", frames, True), timeout=0)
            log.info("job %s: cancelled before it started (%s)", job.id, why)
        else:
            job.cancel.set()
            log.info("job %s: cancel requested (%s)", job.id, why)

    def _drop_peer(self, peer: Peer, why: str, sock: zmq.Socket | None = None) -> None:
        """Forget a peer and cancel its jobs. With `sock` (the peer may still be there, just silent),
        tell it first: one 'timeout' error per job it was receiving, best effort."""
        jobs = self.board.active_jobs(peer.identity)
        if jobs or peer.streams:  # work was lost: worth a warning
            log.warning("peer %s dropped: %s; its %d unfinished job(s) are cancelled", peer.name, why,
                        max(len(jobs), len(peer.streams)))
        else:  # a client that finished and went away: the normal end of a connection
            log.info("peer %s left: %s, with no job running", peer.name, why)
        if sock is not None:
            for job_id in list(peer.streams):
                note = protocol.error_message(ErrorCode.TIMEOUT, f"no message from you for more than "
                                              f"{self.settings.peer_timeout_s:g} s; job {job_id} was cancelled",
                                              job=job_id)
                self._send(sock, peer, protocol.encode({**note, "reply": True}))
        self._peers.pop(peer.identity, None)
        for job in jobs:
            self._cancel_job(job, why=f"its client is gone ({why})")
        for stream in peer.streams.values():
            stream.close()
        peer.streams.clear()

    # sending ---------------------------------------------------------------------------------------
    def _send_control(self, peer: Peer, msg: dict) -> None:
        """Queue a connection-level reply; `_pump` sends it before any stream message."""
        if len(peer.outbox) >= _MAX_OUTBOX:
            peer.outbox.popleft()
            log.warning("peer %s is not reading; dropped an old reply", peer.name)
        peer.outbox.append(protocol.encode(msg))

    def _reply_error(self, peer: Peer, code, message: str, *, request=None, job=None) -> None:
        msg = protocol.error_message(code, message, job=job if isinstance(job, str) else None)
        msg["request"] = request if isinstance(request, str) else None
        msg["reply"] = True  # answers a request; not the end of a job's stream unless `job` is set
        self._send_control(peer, msg)

    def _send(self, sock: zmq.Socket, peer: Peer, frames: list) -> str:
        """Send one message; 'ok', 'again' (peer's pipe full) or 'gone' (peer unreachable)."""
        try:
            sock.send_multipart([peer.identity, *frames], flags=zmq.NOBLOCK, copy=False)
        except zmq.Again:
            return "again"
        except zmq.ZMQError as exc:
            if exc.errno == zmq.EHOSTUNREACH:
                return "gone"
            raise
        peer.last_sent = time.monotonic()
        return "ok"

    def _pump(self, sock: zmq.Socket) -> bool:
        """Send what each peer may receive now; True if some peer's pipe was full (retry soon)."""
        backlog = False
        for peer in list(self._peers.values()):
            status = "ok"
            while peer.outbox and status == "ok":
                status = self._send(sock, peer, peer.outbox[0])
                if status == "ok":
                    peer.outbox.popleft()
            for job_id, stream in list(peer.streams.items()):
                if status != "ok":
                    break
                items = stream.take_sendable(_MAX_SEND_PER_STREAM)
                for i, item in enumerate(items):
                    status = self._send(sock, peer, item.frames)
                    if status != "ok":
                        stream.push_front(items[i:])
                        break
                if stream.ended and not len(stream):
                    del peer.streams[job_id]
            if status == "gone":
                self._drop_peer(peer, "unreachable (EHOSTUNREACH)")
            elif status == "again":
                backlog = True
        return backlog

    def _housekeeping(self, sock: zmq.Socket, now: float) -> None:
        s = self.settings
        for peer in list(self._peers.values()):
            if now - peer.last_seen > s.peer_timeout_s:
                self._drop_peer(peer, f"silent for {now - peer.last_seen:.1f} s", sock)
                continue
            if now - peer.last_sent >= s.heartbeat_s and not peer.outbox:
                if self._send(sock, peer, protocol.encode(protocol.make_message(MessageType.HEARTBEAT))) == "gone":
                    self._drop_peer(peer, "unreachable (EHOSTUNREACH)")
                    continue
            for stream in peer.streams.values():
                if stream.blocked_since is None:
                    continue
                job = self.board.get(stream.job)
                if job is None or job.state in FINISHED_STATES or job.cancel.is_set():
                    continue
                # while another client waits for the device, a job nobody reads gives way quickly
                others_wait = any(j.account != job.account for j in self.board.active_jobs() if j is not job)
                limit = min(s.stall_timeout_s, s.busy_stall_timeout_s) if others_wait else s.stall_timeout_s
                if now - stream.blocked_since > limit:
                    log.warning("job %s: client granted no credits for %.0f s; cancelling", job.id,
                                now - stream.blocked_since)
                    job.cancel_reason = (f"your client granted no credits for {limit:g} s"
                                         f"{' while other clients waited' if others_wait else ''}; read the job's "
                                         "messages as they come (the add-on and `human3r infer --server` do)")
                    self._cancel_job(job, why="stalled stream")
                    stream.grant(s.max_credit_grant, s.max_credit_grant)


def _optional_int(msg: dict, name: str, default: int) -> int:
    value = msg.get(name, default)
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ProtocolError(ErrorCode.BAD_MESSAGE, f"'{msg['type']}'.{name} must be a non-negative integer")
    return value


def _cap_frames(options: dict, max_frames: int) -> dict:
    """Limit the job's source-frame range: end - start <= max_frames (end exclusive, source indices).

    Type errors are left to the options parser (which names the option); only usable numbers are capped.
    """
    start = options.get("start", 0)
    end = options.get("end")
    if start is None:
        start = 0
    if not _is_integral(start) or (end is not None and not _is_integral(end)):
        return options
    if end is None or end - start > max_frames:
        options["end"] = int(start) + max_frames
    return options


def _is_integral(value: Any) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool)) or (
        isinstance(value, float) and value.is_integer())


def _check_size(options: dict, max_size: int) -> dict:
    """Refuse a model input size above the server's policy (cost grows with its square)."""
    size = options.get("size")
    if _is_integral(size) and size > max_size:
        raise ProtocolError(ErrorCode.BAD_OPTIONS, f"size {size} is above this server's limit of {max_size} pixels; "
                            f"submit with size {max_size} or less (the operator sets `human3r serve --max-size`)")
    return options


def _frame_property(frame: zmq.Frame, name: str) -> str | None:
    """A ZeroMQ message property ('User-Id', 'Peer-Address'), or None where the transport has none."""
    try:
        value = frame.get(name)
    except (zmq.ZMQError, AttributeError):
        return None
    return value or None


def _not_yours(job_id: str) -> str:
    return (f"no job {job_id!r} of yours on this server: jobs are seen, fetched and cancelled only by the client "
            "that submitted them (from another connection, send the `token` of its `accepted` reply)")


def _anonymous(summary: dict) -> dict:
    """Another client's job in a `status` reply: its place in the queue, nothing else."""
    return {"job": None, "state": summary["state"], "queue_position": summary["queue_position"], "mine": False}
