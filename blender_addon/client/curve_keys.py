"""Read CurveZMQ key files written by `human3r keys` (ZeroMQ certificate format): the one reader for the
server, the remote command line and the add-on.

`NAME.key` holds a public key, `NAME.key_secret` the public and the secret key; both are z85 text
(40 characters) on lines `public-key = "..."` / `secret-key = "..."`. No bpy, no backend import, no
pyzmq needed to read: the add-on ships this.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

_KEY_LINE = re.compile(r'^\s*(public-key|secret-key)\s*=\s*"([^"]{40})"', re.MULTILINE)


def read_key_file(path: str | os.PathLike) -> tuple[str, str | None]:
    """Return (public_key, secret_key or None) from a certificate file.

    Raises ValueError (naming the file and what to pass instead) when it is missing or holds no public key.
    """
    try:
        text = Path(path).read_text(encoding="ascii", errors="replace")
    except OSError as exc:
        raise ValueError(f"Cannot read the key file {path}: {exc.strerror or exc}") from None
    keys = dict(_KEY_LINE.findall(text))
    if "public-key" not in keys:
        raise ValueError(f"{path} is not a CurveZMQ key file (no public-key line); use a file written by "
                         f"`human3r keys`")
    return keys["public-key"], keys.get("secret-key")


def read_keypair(path: str | os.PathLike) -> tuple[str, str]:
    """(public, secret) keys from a NAME.key_secret file; ValueError when the file holds no secret key."""
    public, secret = read_key_file(path)
    if secret is None:
        raise ValueError(f"{path} is not a CurveZMQ key pair (use the .key_secret file from `human3r keys`)")
    return public, secret


def client_curve_options(server_key: str | os.PathLike, client_secret_file: str | os.PathLike) -> dict:
    """Keyword arguments for `Human3RClient`: the server's public key (z85 text or a .key file) and this
    client's key pair (its .key_secret file)."""
    server_key = os.fspath(server_key)
    if not (len(server_key) == 40 and not os.path.exists(server_key)):
        server_key, _ = read_key_file(server_key)
    return {"curve_server_key": server_key, "curve_keys": read_keypair(client_secret_file)}
