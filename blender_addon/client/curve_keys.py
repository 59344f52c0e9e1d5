"""Read CurveZMQ key files written by `human3r keys` (ZeroMQ certificate format), for client settings.

`NAME.key` holds a public key, `NAME.key_secret` the public and the secret key; both are z85 text
(40 characters). No bpy, no backend import: the add-on ships this.
"""
from __future__ import annotations

import os


def read_key_file(path: str | os.PathLike) -> tuple[str, str | None]:
    """Return (public_key, secret_key or None) from a certificate file; raises ValueError if malformed."""
    import zmq.auth

    try:
        public, secret = zmq.auth.load_certificate(os.fspath(path))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a CurveZMQ key file ({exc})") from None
    if public is None or len(public) != 40:
        raise ValueError(f"{path}: no 40-character public key")
    return public.decode("ascii"), None if secret is None else secret.decode("ascii")


def client_curve_options(server_key: str | os.PathLike, client_secret_file: str | os.PathLike) -> dict:
    """Keyword arguments for `Human3RClient`: the server's public key (z85 text or a .key file) and this
    client's key pair (its .key_secret file)."""
    server_key = os.fspath(server_key)
    if not (len(server_key) == 40 and not os.path.exists(server_key)):
        server_key, _ = read_key_file(server_key)
    public, secret = read_key_file(client_secret_file)
    if secret is None:
        raise ValueError(f"{client_secret_file}: holds no secret key (use the .key_secret file)")
    return {"curve_server_key": server_key, "curve_keys": (public, secret)}
