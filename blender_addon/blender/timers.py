"""The main-thread timers (the one that drives the live job, the one that kills a local server that
ignored SIGTERM) and the handler that stops the job when a file loads.

`bpy.app.timers` calls `_tick` on Blender's main thread; each call does one bounded slice of work
(`live.poll_once`: ≤ 32 messages, ~10 ms) and asks to be called again after `POLL_INTERVAL_S`
while the job is active. No thread is involved, so nothing touches bpy off the main thread.
Timers never fire in the `bpy` module (background): tests call `live.poll_once()` directly.
"""
from __future__ import annotations

import bpy
from bpy.app.handlers import persistent

from . import live

POLL_INTERVAL_S = 0.05
KILL_GRACE_S = 5.0  # time a stopping local server gets to cancel its jobs and close its files


def _tick() -> float | None:
    return POLL_INTERVAL_S if live.poll_once() else None


def ensure_polling() -> None:
    """Start the timer unless it is already registered."""
    if not bpy.app.timers.is_registered(_tick):
        bpy.app.timers.register(_tick, first_interval=0.0)


def stop_polling() -> None:
    if bpy.app.timers.is_registered(_tick):
        bpy.app.timers.unregister(_tick)


def _kill_local_server() -> None:
    live.local_server.kill_if_running()


def kill_local_server_later(grace_s: float = KILL_GRACE_S) -> None:
    """Kill the local server after `grace_s` seconds if it is still running (it was sent SIGTERM)."""
    if not bpy.app.timers.is_registered(_kill_local_server):
        bpy.app.timers.register(_kill_local_server, first_interval=grace_s)


@persistent
def _on_load_pre(*_args) -> None:
    # The builder holds datablocks of the file being closed: end the job (the server cancels it).
    live.shutdown_job("Stopped: a new file was loaded")
    stop_polling()


def register() -> None:
    if _on_load_pre not in bpy.app.handlers.load_pre:
        bpy.app.handlers.load_pre.append(_on_load_pre)


def unregister() -> None:
    stop_polling()
    if bpy.app.timers.is_registered(_kill_local_server):
        bpy.app.timers.unregister(_kill_local_server)
    while _on_load_pre in bpy.app.handlers.load_pre:
        bpy.app.handlers.load_pre.remove(_on_load_pre)
