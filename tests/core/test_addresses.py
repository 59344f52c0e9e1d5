"""The loopback rule shared by the server's bind check and the panel's local-server/video checks."""
from __future__ import annotations

import pytest

from blender_addon.core.addresses import is_loopback_address


@pytest.mark.parametrize("address,loopback", [
    ("tcp://127.0.0.1:5555", True), ("tcp://localhost:5555", True), ("tcp://LOCALHOST:1", True),
    ("tcp://[::1]:5555", True), ("tcp://127.0.0.2:1", True), (" tcp://127.0.0.1:5555 ", True),
    ("tcp://127.0.0.1:5555;192.168.1.4:1", True), ("ipc:///tmp/h3r", True), ("inproc://x", True),
    ("tcp://0.0.0.0:5555", False), ("tcp://*:5555", False), ("tcp://eth0:5555", False),
    ("tcp://192.168.1.4:5555", False), ("tcp://[::]:5555", False), ("udp://127.0.0.1:5555", False),
    ("tcp://example.org:5555", False), ("", False)])
def test_loopback_addresses(address, loopback):
    assert is_loopback_address(address) is loopback
