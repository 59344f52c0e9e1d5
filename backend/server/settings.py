"""Server settings: one frozen dataclass with every limit and timing the server enforces.

All times are seconds, all sizes bytes unless the name says otherwise. `human3r serve` builds one
from its command line; tests build one directly with small values.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_BIND = "tcp://127.0.0.1:5555"


def default_results_dir() -> Path:
    """Where job result files go unless --results-dir says otherwise: ~/.human3r/results."""
    return Path.home() / ".human3r" / "results"


def default_media_roots() -> tuple[Path, ...]:
    """Directories videos may come from unless --media-root is given: the user's home directory.

    Only the home directory (not the current directory: a server started from / would otherwise
    expose the whole file system). Pass --media-root to serve videos from elsewhere.
    """
    return (Path.home(),)


@dataclass(frozen=True)
class ServerSettings:
    """Everything the server enforces; defaults suit a GPU box left running for days."""

    bind: str = DEFAULT_BIND
    media_roots: tuple[Path, ...] = field(default_factory=default_media_roots)
    results_dir: Path = field(default_factory=default_results_dir)
    # CurveZMQ: secret/public key of the server (z85 bytes) and the allowed client public keys.
    curve_secret_key: bytes | None = None
    curve_public_key: bytes | None = None
    allowed_client_keys: frozenset[bytes] = frozenset()
    # liveness: the server sends a heartbeat every `heartbeat_s` and drops a peer silent for longer
    # than `peer_timeout_s` (its queued and running jobs are cancelled). A client process that dies
    # is noticed at once (its TCP connection closes: EHOSTUNREACH on the next send), so the timeout
    # only covers hung clients and lost networks; 30 s leaves room for Blender blocking its timers
    # during a long operation (rendering, a big import).
    heartbeat_s: float = 2.0
    peer_timeout_s: float = 30.0
    # a job whose client keeps its stream full without granting credits this long is stopped
    stall_timeout_s: float = 600.0
    # ... and this long while another client's job waits for the device (a client that heartbeats but
    # never reads must not hold the device for everyone)
    busy_stall_timeout_s: float = 30.0
    # limits
    max_request_bytes: int = 1024 * 1024  # larger client messages are answered with 'too_large'
    max_socket_message_bytes: int = 64 * 1024 * 1024  # ZMQ_MAXMSGSIZE: peers above it are disconnected
    max_frames_per_job: int = 100_000  # options end - start is capped to this
    max_size: int = 1024  # largest model input long side (options.size) a job may ask for; cost ~ size^2
    max_jobs_per_client: int = 8  # queued + running
    max_queue: int = 64  # queued + running, all clients
    max_fetches_per_client: int = 2
    stream_queue_messages: int = 64  # per-job outbound buffer; the producer blocks when it is full
    max_credit_grant: int = 100_000  # credits a client may hold per job
    # every client sees, fetches and cancels only its own jobs unless this is True (trusted users who
    # share results, e.g. one team on a loopback-only server)
    shared_results: bool = False
    finished_jobs_kept: int = 1000  # finished jobs listed by `status` (their files stay on disk)
    # result files (see retention.py): deleted after this many days, and oldest first above this
    # total size; 0 = no limit
    results_keep_days: float = 30.0
    results_max_gb: float = 50.0
    # cameras/streams clients may ask for by name (`backend.server.live_sources`): name -> LiveSpec
    live_sources: dict = field(default_factory=dict)

    @property
    def curve_enabled(self) -> bool:
        return self.curve_secret_key is not None
