"""What the server lets in: bind addresses, CurveZMQ keys, client allow-list and video paths.

- Binding beyond loopback is opt-in and needs CurveZMQ: `check_bind` refuses otherwise.
- Keys are z85 strings in ZeroMQ's certificate format (`NAME.key` public, `NAME.key_secret`
  public + secret), written with 0600 permissions and readable with `zmq.auth.load_certificate`.
- Video paths come from clients, so they are checked before FFmpeg ever sees them: no URLs or
  FFmpeg pseudo-protocols, no playlists (by name or by content), the resolved real path must lie
  under a configured media root and be a regular file.
"""
from __future__ import annotations

import ipaddress
import logging
import os
import re
from pathlib import Path
from typing import Iterable

from blender_addon.core.protocol import ErrorCode, ProtocolError

log = logging.getLogger(__name__)

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
# "scheme:" prefixes FFmpeg treats as protocols (any "word:" prefix is rejected, these are examples
# for the message) and extensions of playlist/concat formats that make FFmpeg open other files/URLs.
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")
PLAYLIST_SUFFIXES = frozenset({".m3u8", ".m3u", ".pls", ".ffconcat", ".sdp", ".xspf", ".asx", ".cue"})
# first bytes of text formats whose demuxers follow links (HLS, concat, PLS, SDP, XSPF, ASX)
_PLAYLIST_MAGIC = (b"#EXTM3U", b"ffconcat", b"[playlist]", b"v=0", b"<?xml", b"<asx", b"file ")


class SecurityError(Exception):
    """A configuration the server refuses to start with (message says how to fix it)."""


# ------------------------------------------------------------------------------------------------
# bind addresses


def is_loopback_endpoint(endpoint: str) -> bool:
    """True for tcp://127.x/localhost/[::1] endpoints and for ipc:// and inproc:// (local only)."""
    if endpoint.startswith(("ipc://", "inproc://")):
        return True
    if not endpoint.startswith("tcp://"):
        return False
    host = endpoint[len("tcp://"):].rsplit(":", 1)[0]
    if ";" in host:  # "source;dest" form: judge the bound (source) side
        host = host.split(";", 1)[0]
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # '*', interface names, host names


def check_bind(endpoint: str, curve_enabled: bool) -> None:
    """Raise SecurityError when `endpoint` reaches beyond this machine and CurveZMQ is off."""
    if not is_loopback_endpoint(endpoint) and not curve_enabled:
        raise SecurityError(
            f"refusing to bind {endpoint}: it is reachable from other machines, and without encryption "
            "anyone there could submit jobs. Make keys with `human3r keys -o KEYDIR`, then start with "
            "`--curve-secret KEYDIR/server.key_secret --allow-client-key CLIENT.key`, or bind "
            "tcp://127.0.0.1:PORT (and reach it through an SSH tunnel).")


# ------------------------------------------------------------------------------------------------
# CurveZMQ keys


def write_keypair(directory: str | os.PathLike, name: str = "server") -> tuple[Path, Path]:
    """Make a CurveZMQ key pair; write DIR/NAME.key (public) and DIR/NAME.key_secret, both 0600.

    Returns (public_path, secret_path). Refuses to overwrite existing files.
    """
    import zmq

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    public, secret = zmq.curve_keypair()
    public_path, secret_path = directory / f"{name}.key", directory / f"{name}.key_secret"
    _write_private(public_path, _certificate_text(public, None))
    _write_private(secret_path, _certificate_text(public, secret))
    return public_path, secret_path


def _certificate_text(public: bytes, secret: bytes | None) -> str:
    lines = ["#   ****  Human3R CurveZMQ certificate (ZeroMQ ZPL format)  ****",
             "metadata", "curve", f'    public-key = "{public.decode("ascii")}"']
    if secret is not None:
        lines.append(f'    secret-key = "{secret.decode("ascii")}"')
    return "\n".join(lines) + "\n"


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def load_keypair(path: str | os.PathLike) -> tuple[bytes, bytes]:
    """Read (public, secret) z85 keys from a NAME.key_secret certificate file."""
    public, secret = _read_certificate(Path(path))
    if secret is None:
        raise SecurityError(f"{path} holds no secret key (pass the .key_secret file)")
    return public, secret


def load_public_key(value: str) -> bytes:
    """A public key given as a 40-character z85 string or as a certificate file path."""
    if len(value) == 40 and not os.path.exists(value):
        key = value.encode("ascii")
    else:
        key, _ = _read_certificate(Path(value))
    _check_z85(key, value)
    return key


def load_public_keys(values: Iterable[str]) -> frozenset[bytes]:
    """Keys from z85 strings, certificate files, or directories of *.key files."""
    keys: set[bytes] = set()
    for value in values:
        if os.path.isdir(value):
            keys.update(load_public_key(str(p)) for p in sorted(Path(value).glob("*.key")))
        else:
            keys.add(load_public_key(value))
    return frozenset(keys)


def _read_certificate(path: Path) -> tuple[bytes, bytes | None]:
    if not path.is_file():
        raise SecurityError(f"key file {path} does not exist")
    found: dict[str, bytes] = {}
    for line in path.read_text(encoding="ascii", errors="replace").splitlines():
        m = re.match(r'\s*(public-key|secret-key)\s*=\s*"([^"]{40})"', line)
        if m:
            found[m.group(1)] = m.group(2).encode("ascii")
    if "public-key" not in found:
        raise SecurityError(f"{path} is not a CurveZMQ certificate (no public-key line)")
    _check_z85(found["public-key"], str(path))
    return found["public-key"], found.get("secret-key")


def _check_z85(key: bytes, origin: str) -> None:
    import zmq.utils.z85 as z85

    try:
        if len(z85.decode(key)) != 32:
            raise ValueError
    except Exception:
        raise SecurityError(f"{origin}: not a 40-character z85 CurveZMQ key") from None


class _AllowList:
    """ZAP credentials provider: accept exactly the configured client public keys."""

    def __init__(self, keys: frozenset[bytes]):
        self.keys = keys

    def callback(self, domain: str, key: bytes) -> bool:
        allowed = key in self.keys
        if not allowed:
            log.warning("refused a CurveZMQ client with unknown public key %s", key.decode("ascii", "replace"))
        return allowed


def start_authenticator(context, allowed_client_keys: frozenset[bytes]):
    """Start a ZAP handler on `context` that lets in only `allowed_client_keys` (stop() it at exit)."""
    from zmq.auth.thread import ThreadAuthenticator

    auth = ThreadAuthenticator(context, log=logging.getLogger(__name__ + ".zap"))
    auth.start()
    auth.configure_curve_callback(domain="*", credentials_provider=_AllowList(allowed_client_keys))
    return auth


# ------------------------------------------------------------------------------------------------
# video paths


def check_video_path(path: str, media_roots: Iterable[Path], live_sources: Iterable[str] = ()) -> Path:
    """Resolve a client's video path; return the real path or raise ProtocolError.

    Codes: 'path_not_allowed' for URLs, FFmpeg protocols ("http:", "concat:", "pipe:", "file:", ...),
    playlists and anything whose real path is outside every media root; 'not_found' for a path
    under a root that is missing or not a regular file. The root check comes first so that
    clients cannot probe which files exist elsewhere. `live_sources`: names of the configured live
    sources, offered in the refusal of a URL (streams are opened only by name).
    """
    if not path or "\x00" in path:
        raise ProtocolError(ErrorCode.PATH_NOT_ALLOWED, "empty path or NUL byte in the video path")
    if _SCHEME.match(path) and not re.match(r"^[A-Za-z]:[\\/]", path):  # allow C:\ drive letters
        names = ", ".join(sorted(live_sources))
        live = (f"; for a camera or stream, ask for a live source by name (this server offers: {names})" if names
                else "; cameras and streams must be configured on the server (human3r serve --live NAME=URL)")
        raise ProtocolError(ErrorCode.PATH_NOT_ALLOWED,
                            f"{path!r} looks like a URL or an FFmpeg protocol; only local files are accepted{live}")
    if Path(path).suffix.lower() in PLAYLIST_SUFFIXES:
        raise ProtocolError(ErrorCode.PATH_NOT_ALLOWED, f"{path!r}: playlists and concat lists are not accepted")
    if not os.path.isabs(path):
        raise ProtocolError(ErrorCode.PATH_NOT_ALLOWED, f"{path!r} is not an absolute path")
    real = Path(os.path.realpath(path))
    roots = [Path(os.path.realpath(r)) for r in media_roots]
    if not any(real == root or root in real.parents for root in roots):
        raise ProtocolError(ErrorCode.PATH_NOT_ALLOWED,
                            f"{path!r} is outside the server's media roots ({', '.join(map(str, roots))})")
    if real.suffix.lower() in PLAYLIST_SUFFIXES:
        raise ProtocolError(ErrorCode.PATH_NOT_ALLOWED, f"{path!r} links to a playlist")
    if not real.is_file():
        raise ProtocolError(ErrorCode.NOT_FOUND, f"{path!r} does not exist or is not a regular file")
    try:
        with open(real, "rb") as f:
            head = f.read(64).lstrip(b"\xef\xbb\xbf \t\r\n")
    except OSError as exc:
        raise ProtocolError(ErrorCode.NOT_FOUND, f"{path!r} cannot be read: {exc.strerror}") from None
    if head.startswith(_PLAYLIST_MAGIC):
        raise ProtocolError(ErrorCode.PATH_NOT_ALLOWED, f"{path!r} is a playlist or concat list, not a video")
    return real
