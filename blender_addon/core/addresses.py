"""Whether a ZeroMQ address stays on this machine: the one rule for the server's bind check and the
panel (a local server and a local video path need a loopback address).

Loopback: `ipc://` and `inproc://`, and `tcp://` to 127.0.0.0/8, ::1 or `localhost`. For the
`tcp://source;dest` form the bound (source) side is judged. `*`, 0.0.0.0, interface and host names
are not loopback (they may reach other machines).
"""
from __future__ import annotations

import ipaddress

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


def is_loopback_address(address: str) -> bool:
    """True when `address` (e.g. 'tcp://127.0.0.1:5555', 'ipc:///tmp/h3r') only reaches this machine."""
    address = address.strip()
    if address.startswith(("ipc://", "inproc://")):
        return True
    if not address.startswith("tcp://"):
        return False
    host = address[len("tcp://"):].split(";", 1)[0]
    if not host.endswith("]") and ":" in host:  # drop the port ('[::1]' alone has none)
        host = host.rsplit(":", 1)[0]
    host = host.lower()
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
