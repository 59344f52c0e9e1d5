"""Who a client is, which jobs are its own, and whose limits a request counts against.

- *Owner* of a job: the submitting client's CurveZMQ public key when Curve is on (stable across
  reconnects and restarts), else its connection (ZeroMQ routing id). Every job also gets a secret
  token, returned once in `accepted`; without Curve, presenting it proves ownership from a new
  connection (after a reconnect or a server restart).
- *Account* for limits: the CurveZMQ key when Curve is on, else the peer's network address, so one
  process opening many sockets still counts as one client.
- Ownership outlives the job table in a sidecar `<job id>.owner` next to the result file (the owner
  and the token's SHA-256, never the token itself).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from pathlib import Path

OWNER_SUFFIX = ".owner"


def peer_owner(identity: bytes, curve_key: str | None) -> str:
    """The owner name of a connection: 'key:<z85>' with Curve, else 'conn:<routing id hex>'."""
    return f"key:{curve_key}" if curve_key else f"conn:{identity.hex()}"


def peer_account(identity: bytes, curve_key: str | None, address: str | None) -> str:
    """What per-client limits count against: the Curve key, else the peer address, else the connection."""
    if curve_key:
        return f"key:{curve_key}"
    if address:
        return f"addr:{address}"
    return f"conn:{identity.hex()}"


def new_token() -> str:
    """An unguessable per-job secret (128 bits, URL-safe text)."""
    return secrets.token_urlsafe(16)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class Ownership:
    """Who owns one job: the owner name and the SHA-256 of its secret token."""

    owner: str
    token_sha256: str

    def allows(self, owner: str, token: object, tokens_count: bool) -> bool:
        """True for the owner itself, or (when `tokens_count`) for whoever presents the job's token."""
        if hmac.compare_digest(owner, self.owner):
            return True
        return tokens_count and isinstance(token, str) and hmac.compare_digest(token_digest(token), self.token_sha256)

    def save(self, result_path: Path) -> None:
        path = sidecar(result_path)
        path.write_text(json.dumps({"owner": self.owner, "token_sha256": self.token_sha256}))

    @classmethod
    def load(cls, result_path: Path) -> "Ownership | None":
        """The sidecar of a result file, or None when it is missing or unreadable."""
        try:
            data = json.loads(sidecar(result_path).read_text())
            return cls(str(data["owner"]), str(data["token_sha256"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None


def sidecar(result_path: Path) -> Path:
    return result_path.with_suffix(OWNER_SUFFIX)
