"""`core.server_probe.ServerProbe` against a real loopback server: reachable with the server's hello,
cached for its TTL (no new connection meanwhile), 'not answering' once the server is gone, and a bad
address answered at once. Never blocks: each step polls with a zero timeout."""
from __future__ import annotations

import time

from backend.server.app import Server
from backend.server.settings import ServerSettings
from blender_addon.client import Human3RClient
from blender_addon.core.server_probe import ServerProbe


def drive(probe: ServerProbe, address: str, want, limit_s: float = 10.0) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        t0 = time.perf_counter()
        probe.step(address)
        assert time.perf_counter() - t0 < 0.5  # a step never waits for the server
        if want(probe.answer):
            return
        time.sleep(0.02)
    raise AssertionError(f"probe answer stayed {probe.answer}")


def test_probe_reports_reachable_caches_and_notices_a_stop(tmp_path):
    server = Server(ServerSettings(bind="tcp://127.0.0.1:0", media_roots=(tmp_path,), results_dir=tmp_path / "r"),
                    lambda *a: iter(()), None, info={"device": "cpu", "model": {"name": "tiny"}})
    server.start()
    made = []

    def make(address):
        made.append(address)
        return Human3RClient(address, timeout_s=5.0)

    probe = ServerProbe(make, ttl_s=1.0, timeout_s=1.0)
    drive(probe, server.endpoint, lambda a: a.reachable is True)
    assert probe.answer.info.get("device") == "cpu" and probe.answer.address == server.endpoint
    assert not probe.in_flight  # the short-lived client is closed once it answered
    assert probe.step(server.endpoint) is False and len(made) == 1  # cached: no new connection
    server.stop()
    time.sleep(1.1)  # past the TTL
    drive(probe, server.endpoint, lambda a: a.reachable is False)
    assert "no answer within 1 s" in probe.answer.problem and len(made) == 2


def test_a_malformed_address_is_answered_at_once():
    probe = ServerProbe(lambda address: Human3RClient(address))
    assert probe.step("not an address") is True
    assert probe.answer.reachable is False and probe.answer.problem and not probe.in_flight
