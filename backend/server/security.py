"""What the server lets in: bind addresses, CurveZMQ keys, client allow-list and video paths.

- Binding beyond loopback is opt-in and needs CurveZMQ: `check_bind` refuses otherwise.
- Keys are z85 strings in ZeroMQ's certificate format (`NAME.key` public, `NAME.key_secret`
  public + secret), written with 0600 permissions and readable with `zmq.auth.load_certificate`.
- Video paths come from clients, so they are checked before FFmpeg ever sees them: no URLs or
  FFmpeg pseudo-protocols, no playlists (by name or by content), the resolved real path must lie
  under a configured media root and be a regular file.
"""
from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Iterable

from blender_addon.client.curve_keys import read_key_file
from blender_addon.core.addresses import is_loopback_address
from blender_addon.core.protocol import ErrorCode, ProtocolError

log = logging.getLogger(__name__)

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
    return is_loopback_address(endpoint)


def check_bind(endpoint: str, curve_enabled: bool) -> None:
    """Raise SecurityError when `endpoint` reaches beyond this machine and CurveZMQ is off (or is no
    ZeroMQ endpoint at all)."""
    if not endpoint.startswith(("tcp://", "ipc://", "inproc://")):
        raise SecurityError(f"{endpoint!r} is not a ZeroMQ endpoint; give one like tcp://127.0.0.1:5555 "
                            "(port 0 picks a free one) or ipc:///tmp/human3r.sock")
    if not is_loopback_endpoint(endpoint) and not curve_enabled:
        raise SecurityError(
            f"refusing to bind {endpoint}: it is reachable from other machines, and without encryption "
            "anyone there could submit jobs. Make keys with `human3r keys -o KEYDIR`, then start with "
            "`--curve-secret KEYDIR/server.key_secret --allow-client-key CLIENT.key`, or bind "
            "tcp://127.0.0.1:PORT (and reach it through an SSH tunnel).")


def check_bindable(endpoint: str) -> None:
    """Bind `endpoint` once and let it go, so a malformed address or a port in use is told before
    the model loads (raises SecurityError with what to do)."""
    import zmq

    ctx = zmq.Context()
    sock = ctx.socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        sock.bind(endpoint[:-2] + ":*" if endpoint.startswith("tcp://") and endpoint.endswith(":0") else endpoint)
    except zmq.ZMQError as exc:
        if exc.errno == zmq.EADDRINUSE:
            raise SecurityError(f"cannot bind {endpoint}: the port is already in use (another `human3r serve`?). "
                                "Stop that server or pick another port, e.g. --bind tcp://127.0.0.1:5556") from None
        raise SecurityError(f"cannot bind {endpoint}: {exc.strerror}. Give an endpoint like tcp://127.0.0.1:5555 "
                            "(port 0 picks a free one) or ipc:///tmp/human3r.sock") from None
    finally:
        sock.close(0)
        ctx.term()


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
    try:
        public, secret = read_key_file(path)
    except ValueError as exc:
        raise SecurityError(str(exc)) from None
    _check_z85(public.encode("ascii"), str(path))
    return public.encode("ascii"), None if secret is None else secret.encode("ascii")


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


MAX_PATH_BYTES = 4096  # Linux PATH_MAX; longer paths cannot be opened at all
MAX_NAME_BYTES = 255  # one folder or file name


def check_video_path(path: str, media_roots: Iterable[Path], live_sources: Iterable[str] = ()) -> Path:
    """Resolve a client's video path (a video file or a folder of images); return the real path or
    raise ProtocolError.

    Codes: 'path_not_allowed' for URLs, FFmpeg protocols ("http:", "concat:", "pipe:", "file:", ...),
    playlists, paths too long for the file system, and anything whose real path is outside every
    media root (for an image folder: any of its images); 'not_found' for a path under a root that
    is missing or neither a regular file nor a folder of images. The root check comes first so that
    clients cannot probe which files exist elsewhere. `live_sources`: names of the configured live
    sources, offered in the refusal of a URL (streams are opened only by name).
    """
    if not path or "\x00" in path:
        raise ProtocolError(ErrorCode.PATH_NOT_ALLOWED, "empty path or NUL byte in the video path; send the "
                            "absolute path of a video file or image folder on the server")
    raw = os.fsencode(path)
    longest = max((len(part) for part in raw.split(b"/")), default=0)
    if len(raw) > MAX_PATH_BYTES or longest > MAX_NAME_BYTES:
        raise ProtocolError(ErrorCode.PATH_NOT_ALLOWED,
                            f"the video path is {len(raw)} bytes long with a name of {longest} bytes; the file system "
                            f"allows at most {MAX_PATH_BYTES} and {MAX_NAME_BYTES}: move or rename the video to a "
                            "shorter path")
    try:
        return _check_real_path(path, media_roots, live_sources)
    except OSError as exc:  # a race with the file system, a loop of links, an unreadable folder...
        raise ProtocolError(ErrorCode.NOT_FOUND, f"{path!r} cannot be opened ({exc.strerror or exc}); check that "
                            "the server's user can read it") from None


def _check_real_path(path: str, media_roots: Iterable[Path], live_sources: Iterable[str]) -> Path:
    if _SCHEME.match(path) and not re.match(r"^[A-Za-z]:[\\/]", path):  # allow C:\ drive letters
        names = ", ".join(sorted(live_sources))
        live = (f"; for a camera or stream, ask for a live source by name (this server offers: {names})" if names
                else "; cameras and streams must be configured on the server (human3r serve --live NAME=URL)")
        raise ProtocolError(ErrorCode.PATH_NOT_ALLOWED,
                            f"{path!r} looks like a URL or an FFmpeg protocol; only local files are accepted "
                            f"(copy the video to the server's machine and send its path){live}")
    if Path(path).suffix.lower() in PLAYLIST_SUFFIXES:
        raise ProtocolError(ErrorCode.PATH_NOT_ALLOWED, f"{path!r}: playlists and concat lists are not accepted; "
                            "send the path of the video file itself")
    if not os.path.isabs(path):
        raise ProtocolError(ErrorCode.PATH_NOT_ALLOWED, f"{path!r} is not an absolute path; send the full path as the "
                            "server's machine sees it (starting with /)")
    real = Path(os.path.realpath(path))
    roots = [Path(os.path.realpath(r)) for r in media_roots]
    if not any(real == root or root in real.parents for root in roots):
        raise ProtocolError(ErrorCode.PATH_NOT_ALLOWED,
                            f"{path!r} is outside the server's media roots ({', '.join(map(str, roots))}); move the "
                            "video under one of them, or ask the operator to add its folder with --media-root")
    if real.suffix.lower() in PLAYLIST_SUFFIXES:
        raise ProtocolError(ErrorCode.PATH_NOT_ALLOWED, f"{path!r} links to a playlist; send the path of a video file")
    if real.is_dir():
        _check_image_folder(path, real, roots)
        return real
    if not real.is_file():
        raise ProtocolError(ErrorCode.NOT_FOUND, f"{path!r} does not exist or is not a regular file or image folder; "
                            "check the path as the server's machine sees it")
    _check_not_playlist(path, real)
    return real


def _check_image_folder(path: str, real: Path, roots: list[Path]) -> None:
    """Every image `open_source` would read from the folder must itself pass the file checks."""
    from backend.video.reader import IMAGE_EXTENSIONS

    images = [real / n for n in sorted(os.listdir(real))
              if not n.startswith(".") and Path(n).suffix.lower() in IMAGE_EXTENSIONS]
    if not images:
        raise ProtocolError(ErrorCode.NOT_FOUND, f"{path!r} is a folder without images "
                            f"({', '.join(sorted(IMAGE_EXTENSIONS))}); send a video file or a folder of images")
    for image in images:
        image_real = Path(os.path.realpath(image))
        if not any(image_real == root or root in image_real.parents for root in roots):
            raise ProtocolError(ErrorCode.PATH_NOT_ALLOWED,
                                f"{str(image)!r} links outside the server's media roots; copy the image into the folder")
        if image_real.is_file():
            _check_not_playlist(str(image), image_real)


def _check_not_playlist(path: str, real: Path) -> None:
    try:
        with open(real, "rb") as f:
            head = f.read(64).lstrip(b"\xef\xbb\xbf \t\r\n")
    except OSError as exc:
        raise ProtocolError(ErrorCode.NOT_FOUND, f"{path!r} cannot be read: {exc.strerror}; check that the "
                            "server's user may read it") from None
    if head.startswith(_PLAYLIST_MAGIC):
        raise ProtocolError(ErrorCode.PATH_NOT_ALLOWED, f"{path!r} is a playlist or concat list, not a video; send the "
                            "path of a video file")


def file_identity(path: Path) -> tuple[int, int]:
    """(st_dev, st_ino) of an admitted video: what the worker compares before decoding it."""
    st = os.stat(path)
    return st.st_dev, st.st_ino


def recheck_video_path(path: str, identity: tuple[int, int] | None, media_roots: Iterable[Path]) -> None:
    """Refuse to decode `path` unless it still is the very file admitted at submit.

    The path was checked when the job was queued; by the time the worker starts, a folder on the way
    may have been swapped for a link leading out of the media roots. The path is resolved and checked
    again and the file found must have the device and inode recorded at admission.
    """
    try:
        real = check_video_path(path, media_roots)
        same = identity is None or file_identity(real) == identity
    except OSError:
        same = False
    except ProtocolError as exc:
        raise ProtocolError(exc.code, f"{exc.message} (it changed while the job was queued; submit it again)") from None
    if not same or str(real) != path:
        raise ProtocolError(ErrorCode.PATH_NOT_ALLOWED,
                            f"{path!r} was replaced while the job was queued (it is no longer the file that was "
                            "admitted); submit it again")
