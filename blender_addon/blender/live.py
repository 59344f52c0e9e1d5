"""The one live job of this Blender session: glue between the panel, the client and the scene builder.

All decisions live in `core.session.LiveSession` (bpy-free); this module only creates it with the
add-on's client and a `SceneBuilder`, exposes `poll_once()` for the timer (and for tests, because
timers never fire in the `bpy` module), mirrors the state into the UI and reports the ending once.
It also holds the optional local `human3r serve` process. Nothing here runs on another thread.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import bpy

from ..core.local_server import LocalServer
from ..core.session import LiveSession, State
from . import gc_policy

log = logging.getLogger(__name__)

# Work per timer tick: at most this many messages and about this much time (the UI stays responsive).
MAX_MESSAGES_PER_TICK = 32
BUDGET_S_PER_TICK = 0.010

_session: LiveSession | None = None
_reported: LiveSession | None = None  # the session whose ending was already reported
local_server = LocalServer()


def current() -> LiveSession | None:
    """The running or last finished session (None before the first Run)."""
    return _session


def is_active() -> bool:
    return _session is not None and _session.active


def make_client(address: str, curve_server_key: str = "", curve_client_key_file: str = "", *,
                timeout_s: float | None = None):
    """A `Human3RClient` for `address`.

    Raises ImportError (with advice) when pyzmq is missing, ValueError for an unreadable key file.
    """
    try:
        from ..client import Human3RClient
    except ImportError as exc:
        raise ImportError(f"The Human3R client cannot load ({exc}). Install the extension from its zip, which "
                          f"bundles pyzmq and msgpack for Blender's Python.") from exc
    kwargs = {}
    if curve_server_key.strip():
        kwargs["curve_server_key"] = curve_server_key.strip()
        if curve_client_key_file.strip():
            kwargs["curve_keys"] = read_curve_keypair(bpy.path.abspath(curve_client_key_file.strip()))
    if timeout_s is not None:
        kwargs["timeout_s"] = timeout_s
    return Human3RClient(address, **kwargs)


def read_curve_keypair(path: str) -> tuple[str, str]:
    """(public, secret) z85 keys from a ZeroMQ certificate file (`NAME.key_secret` of `human3r keys`)."""
    from ..client.curve_keys import read_keypair

    return read_keypair(path)


def collection_name_for(video: str) -> str:
    """The collection of a job: the video's file name without extension ('Human3R' if empty)."""
    stem = Path(video.replace("\\", "/")).stem
    return stem or "Human3R"


def start(video: str, job_options: dict, import_options: dict, *, address: str, curve_server_key: str = "",
          curve_client_key_file: str = "", timeout_s: float = 10.0, client=None, live_source: str | None = None,
          sink=None, cleanup: dict | None = None) -> LiveSession:
    """Submit `video` to the server at `address` and stream its results into a new collection.

    Returns the session at once (state CONNECTING, or ERROR when the client could not be made);
    `poll_once()` does the rest: the caller starts the timer that calls it (`timers.ensure_polling`).
    `timeout_s`: silence after which the server counts as gone (the session adds a backstop a few
    seconds later). `client` replaces the default client. `live_source`: the name of one of the
    server's live sources instead of a video (the job runs until cancelled); `sink` replaces the
    default `SceneBuilder` (live preview: `live_preview`). `cleanup` (a `core.motion.CleanupOptions`
    map) runs the causal clean-up on the frames (`cleanup.LiveCleanup`).
    Raises RuntimeError when a job is already running.
    """
    global _session
    if is_active():
        raise RuntimeError("A Human3R job is already running; cancel it first.")
    from .scene_builder import SceneBuilder  # the builder pulls in numpy-heavy helpers: load on first use

    if client is None:
        client = make_client(address, curve_server_key, curve_client_key_file, timeout_s=timeout_s)
    builder = sink or SceneBuilder(collection_name_for(video), import_options)
    if cleanup is not None:
        from .cleanup import LiveCleanup

        builder = LiveCleanup(builder, cleanup)
    _session = LiveSession(client, builder, address=address, connect_timeout_s=timeout_s + 5.0)
    gc_policy.freeze_long_lived()  # full collections would stall the timer's ticks (see gc_policy)
    _session.start(video, job_options, live=live_source)
    _update_ui()
    return _session


def poll_once(max_messages: int = MAX_MESSAGES_PER_TICK, budget_s: float = BUDGET_S_PER_TICK) -> bool:
    """One bounded slice of work: poll the client, apply results, refresh the UI.

    Returns True while the job is active. Never raises (a timer that raises is dropped by Blender).
    """
    session = _session
    if session is None:
        return False
    try:
        active = session.step(max_messages=max_messages, budget_s=budget_s)
    except Exception:  # LiveSession already guards; this is the last line of defence for the UI
        log.exception("Human3R poll failed")
        session.abort("Stopped after an internal error (see the system console)")
        active = False
    _update_ui()
    if not active:
        gc_policy.thaw()
        _report_end(session)
    return active


def cancel() -> None:
    if _session is not None:
        _session.cancel()
        _update_ui()


def shutdown_job(reason: str = "Stopped") -> None:
    """End the job at once without waiting for the server (a file is being loaded)."""
    if _session is not None:
        _session.abort(reason)


def shutdown(reason: str = "Stopped") -> None:
    """Add-on disabled: end the job and stop the local server this add-on started."""
    shutdown_job(reason)
    local_server.stop()


def forget() -> None:
    """Drop the finished session (tests; 'Clear' in the panel)."""
    global _session, _reported
    if _session is not None and _session.active:
        _session.abort()
    _session = _reported = None


# ----------------------------------------------------------------------------------------------------
# UI mirroring


def _update_ui() -> None:
    """Redraw the sidebar and show the status line in the status bar (no-op in background mode)."""
    if bpy.app.background:
        return
    wm = bpy.context.window_manager
    if wm is None:
        return
    text = _session.status_line() if _session is not None and _session.active else None
    for window in wm.windows:
        try:
            window.workspace.status_text_set(text)
        except (AttributeError, RuntimeError):
            pass
        for area in window.screen.areas:
            if area.type == "VIEW_3D":
                area.tag_redraw()


def _report_end(session: LiveSession) -> None:
    """Report the job's ending once, through an operator so it lands in Blender's info log."""
    global _reported
    if _reported is session:
        return
    _reported = session
    for level, message in end_messages(session):
        log.log({"ERROR": logging.ERROR, "WARNING": logging.WARNING}.get(level, logging.INFO), "Human3R: %s", message)
        if not bpy.app.background:
            _report(level, message)


def end_messages(session: LiveSession) -> list[tuple[str, str]]:
    """(level, text) for the Info log when a job ends: its ending, then the scene's warnings."""
    level = {State.ERROR: "ERROR", State.CANCELLED: "WARNING"}.get(session.state, "INFO")
    summary = getattr(session.sink, "summary", None) or {}
    return [(level, session.message)] + [("WARNING", w) for w in summary.get("warnings") or []]


def _report(level: str, message: str) -> None:
    """Through an operator, so the message lands in Blender's Info log (timers have no operator)."""
    wm = bpy.context.window_manager
    window = wm.windows[0] if wm is not None and wm.windows else None
    if window is None:
        return
    try:
        with bpy.context.temp_override(window=window):
            bpy.ops.human3r.report_message(level=level, message=message)
    except (RuntimeError, AttributeError):
        log.debug("could not report through an operator", exc_info=True)


def video_path_for_server(path: str) -> str:
    """Absolute, normalised path of the video ('//' resolved against the .blend)."""
    return os.path.normpath(bpy.path.abspath(path)) if path else ""
