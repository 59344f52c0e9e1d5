"""The Server box's reachability line: is a Human3R server answering at the configured address?

A main-thread timer drives `core.server_probe.ServerProbe` (a hello on a short-lived client, the
answer cached for a few seconds) and redraws the sidebar when the answer changes, so a server started
by hand shows as reachable even when the add-on did not start it. Timers never fire in the `bpy`
module (background): tests call `tick()` directly.
"""
from __future__ import annotations

import time

import bpy

from ..core.server_probe import ServerProbe
from . import live
from .panel_base import redraw_sidebars
from .prefs import get_prefs

FAST_S = 0.2  # timer interval while a probe waits for its reply
WANTED_S = 15.0  # probe only while the Server box was drawn this recently (no traffic for a hidden box)
_probe: ServerProbe | None = None
_wanted_at = float("-inf")


def wanted() -> None:
    """The Server box is being drawn: keep its answer fresh for the next `WANTED_S` seconds."""
    global _wanted_at
    _wanted_at = time.monotonic()


def _make_client(address: str):
    prefs = get_prefs()
    return live.make_client(address, prefs.curve_server_key, prefs.curve_client_key_file)


def probe() -> ServerProbe:
    global _probe
    if _probe is None:
        _probe = ServerProbe(_make_client)
    return _probe


def tick() -> float:
    """One non-blocking probe step for the configured address; returns the next timer interval."""
    p = probe()
    if not p.in_flight and time.monotonic() - _wanted_at > WANTED_S:
        return max(FAST_S, p.ttl_s / 2)
    try:
        changed = p.step(get_prefs().server_address)
    except Exception as exc:  # a timer that raises is dropped by Blender: record it as the answer
        p.close()
        p.answer.reachable, p.answer.problem = False, f"probe failed: {exc}"
        changed = True
    if changed:
        redraw_sidebars()
    return FAST_S if p.in_flight else max(FAST_S, p.ttl_s / 2)


def status_lines(address: str) -> list[tuple[str, str]]:
    """(text, icon) lines for the Server box: reachability first, then the add-on's own server."""
    answer = probe().answer
    session = live.current()
    if answer.address != address or answer.reachable is None:
        known = session.server_info if session is not None and session.address == address else {}
        lines = [(f"{_describe(known)} (checking…)" if known else f"Checking {address}…", "TIME")]
    elif answer.reachable:
        lines = [(f"Reachable: {_describe(answer.info)}", "CHECKMARK")]
    else:
        lines = [(f"Not answering: {answer.problem}", "ERROR")]
    state = live.local_server.state()
    if state == "stopped":  # say who runs the reachable server, not just that ours is stopped
        lines.append(("Started outside Blender" if answer.reachable and answer.address == address
                      else "No server started from Blender", "BLANK1"))
    else:
        lines.append((f"Started from Blender: {state}", "BLANK1"))
    return lines


def _describe(info: dict) -> str:
    """'<model name> on <device>' from a server's hello (never the raw map)."""
    what = _model_name(info.get("model")) if info.get("model") else "server"
    return what + (f" on {info['device']}" if info.get("device") else "")


def _model_name(model) -> str:
    """The model's name from the server's hello (a map with 'name', or a plain string)."""
    if isinstance(model, dict):
        return str(model.get("name") or "model")
    return str(model or "model")


CLASSES = ()


def attach() -> None:
    if not bpy.app.timers.is_registered(tick):
        bpy.app.timers.register(tick, first_interval=0.5, persistent=True)


def detach() -> None:
    global _probe
    if bpy.app.timers.is_registered(tick):
        bpy.app.timers.unregister(tick)
    if _probe is not None:
        _probe.close()
        _probe = None
