"""Live sources in the panel: list the server's cameras/streams, Run one into the scene, Stop it.

The list comes from the server's `hello` (`live_sources`: names and kinds; the server never tells
URLs). `refresh()` starts a short-lived client and returns at once; `poll_refresh()` (called by a
0.1 s timer, or by tests directly: timers never fire in the `bpy` module) finishes it without ever
blocking Blender. Run starts a live job through `live.start` in one of two modes:

- PREVIEW: rigs and camera follow the newest result with no keys written (`live_preview`);
- RECORD: every received frame is keyed into a new collection, "<name> take" ("<name> take v2", ... for the
  next takes), at the frames of the stream's timestamps.

Stop is the panel's usual cancel (`human3r.cancel`): the server ends the job within one model step
and what was received stays in the scene. Per-frame point clouds are not kept for live jobs (they
would grow without bound); the accumulated scene cloud arrives if the stream ends by itself.
"""
from __future__ import annotations

import logging
import time

import bpy
from bpy.props import EnumProperty, PointerProperty

from . import live
from .prefs import get_prefs
from .panel_base import SubPanel

log = logging.getLogger(__name__)

REFRESH_TIMEOUT_S = 5.0
REFRESH_INTERVAL_S = 0.1

_sources: list[dict] = []  # the last server's live sources: [{"name", "kind"}]
_source_address = ""
_refresh: dict | None = None  # {"client", "address", "deadline"} while a refresh runs
_refresh_error = ""
_enum_items: list[tuple[str, str, str]] = []  # Blender needs Python to keep enum item strings alive

MODES = [
    ("PREVIEW", "Preview", "Drive the rigs and the camera with the newest result, without keys"),
    ("RECORD", "Record", "Key every received frame into a new collection (a take)"),
]


def sources() -> list[dict]:
    return list(_sources)


def refresh(address: str, curve_server_key: str = "", curve_client_key_file: str = "", *, client=None) -> None:
    """Ask the server at `address` for its live sources (answer via `poll_refresh`)."""
    global _refresh, _refresh_error
    _stop_refresh()
    _refresh_error = ""
    client = client or live.make_client(address, curve_server_key, curve_client_key_file)
    client.connect()
    _refresh = {"client": client, "address": address, "deadline": time.monotonic() + REFRESH_TIMEOUT_S}
    if not bpy.app.timers.is_registered(_tick):
        bpy.app.timers.register(_tick, first_interval=REFRESH_INTERVAL_S)


def poll_refresh() -> bool:
    """One non-blocking look at the refresh; True while it still waits for the server."""
    global _sources, _source_address, _refresh_error
    if _refresh is None:
        return False
    client = _refresh["client"]
    try:
        client.poll(max_messages=10, timeout_ms=0)
    except Exception as exc:  # a UI timer must survive anything the network does
        log.exception("live source refresh failed")
        _refresh_error = f"Could not ask {_refresh['address']}: {exc}"
        _stop_refresh()
        return False
    info = client.server_info
    if info is not None:
        _sources = [{"name": str(s.get("name")), "kind": str(s.get("kind", ""))}
                    for s in info.get("live_sources") or [] if isinstance(s, dict)]
        _source_address = _refresh["address"]
        _refresh_error = "" if _sources else "The server has no live sources (start it with --live NAME=URL)"
        _stop_refresh()
        _redraw()
        return False
    if time.monotonic() > _refresh["deadline"]:
        _refresh_error = f"No answer from {_refresh['address']} within {REFRESH_TIMEOUT_S:g} s"
        _stop_refresh()
        _redraw()
        return False
    return True


def _stop_refresh() -> None:
    global _refresh
    if _refresh is not None:
        try:
            _refresh["client"].close()
        finally:
            _refresh = None


def _tick() -> float | None:
    return REFRESH_INTERVAL_S if poll_refresh() else None


def _redraw() -> None:
    if bpy.app.background or bpy.context.window_manager is None:
        return
    for window in bpy.context.window_manager.windows:
        for area in window.screen.areas:
            if area.type == "VIEW_3D":
                area.tag_redraw()


def start(name: str, mode: str, job_options: dict, import_options: dict, *, address: str, **client_args):
    """Start streaming live source `name` into the scene in `mode` ('PREVIEW' or 'RECORD');
    returns the `LiveSession` (see `live.start`)."""
    from .live_preview import PreviewBuilder
    from .scene_builder import SceneBuilder

    import_options = dict(import_options)
    if import_options.get("point_mode") in ("PER_FRAME", "BOTH"):
        import_options["point_mode"] = "ACCUMULATED"
    if mode == "PREVIEW":
        sink = PreviewBuilder(f"{name} preview", import_options)
    else:
        sink = SceneBuilder(f"{name} take", import_options)
    return live.start("", job_options, import_options, address=address, live_source=name, sink=sink, **client_args)


# ----------------------------------------------------------------------------------------------------
# UI


def _source_items(self, context):
    _enum_items[:] = [(s["name"], s["name"], f"{s['kind']} stream on the server") for s in _sources] or [
        ("", "(none)", "Press Refresh to ask the server for its live sources")]
    return _enum_items


class HUMAN3R_PG_live(bpy.types.PropertyGroup):
    """Live settings of the scene (`scene.human3r_live`)."""

    source: EnumProperty(name="Source", items=_source_items, description="A camera or stream the server offers")
    mode: EnumProperty(name="Mode", items=MODES, default="PREVIEW")


class HUMAN3R_OT_live_refresh(bpy.types.Operator):
    """Ask the server which cameras and streams it offers"""

    bl_idname = "human3r.live_refresh"
    bl_label = "Refresh Live Sources"

    def execute(self, context):
        prefs = get_prefs(context)
        try:
            refresh(prefs.server_address.strip(), prefs.curve_server_key, prefs.curve_client_key_file)
        except (ImportError, ValueError, OSError) as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        return {"FINISHED"}


class HUMAN3R_OT_live_run(bpy.types.Operator):
    """Stream the chosen live source into the scene until Stop"""

    bl_idname = "human3r.live_run"
    bl_label = "Run Live"

    @classmethod
    def poll(cls, context):
        return not live.is_active() and bool(_sources)

    def execute(self, context):
        settings, live_settings = context.scene.human3r, context.scene.human3r_live
        name = live_settings.source
        if not name:
            self.report({"ERROR"}, "Choose a live source first (Refresh asks the server)")
            return {"CANCELLED"}
        prefs = get_prefs(context)
        try:
            session = start(name, live_settings.mode, settings.job_options(), settings.import_options(),
                            address=prefs.server_address.strip(), curve_server_key=prefs.curve_server_key,
                            curve_client_key_file=prefs.curve_client_key_file, timeout_s=prefs.timeout_s)
        except (ImportError, RuntimeError, ValueError) as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        if not session.active:
            self.report({"ERROR"}, session.message)
            return {"CANCELLED"}
        self.report({"INFO"}, f"Human3R: live from {name} ({live_settings.mode.lower()})")
        return {"FINISHED"}


class HUMAN3R_PT_live(SubPanel, bpy.types.Panel):
    bl_label = "Live"

    def draw(self, context):
        layout = self.layout
        live_settings = context.scene.human3r_live
        row = layout.row(align=True)
        row.prop(live_settings, "source", text="Source")
        row.operator("human3r.live_refresh", text="", icon="FILE_REFRESH")
        layout.prop(live_settings, "mode", expand=True)
        session = live.current()
        if session is not None and session.active:
            layout.operator("human3r.cancel", text="Stop", icon="CANCEL")
        else:
            layout.operator("human3r.live_run", icon="PLAY")
        if _refresh is not None:
            layout.label(text="Asking the server…", icon="TIME")
        elif _refresh_error:
            layout.label(text=_refresh_error, icon="ERROR")


CLASSES = (HUMAN3R_PG_live, HUMAN3R_OT_live_refresh, HUMAN3R_OT_live_run, HUMAN3R_PT_live)


def attach() -> None:
    bpy.types.Scene.human3r_live = PointerProperty(type=HUMAN3R_PG_live)


def detach() -> None:
    if bpy.app.timers.is_registered(_tick):
        bpy.app.timers.unregister(_tick)
    _stop_refresh()
    if hasattr(bpy.types.Scene, "human3r_live"):
        del bpy.types.Scene.human3r_live
