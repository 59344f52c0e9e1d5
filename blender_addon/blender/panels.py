"""The Human3R tab of the 3D View sidebar: video, Run/Cancel, progress, options, local server.

Panels only draw: they read `scene.human3r` (settings) and `live.current()` (the job's state) and
place operators. The main panel shows the state; the sub-panels (collapsed by default) hold options.
"""
from __future__ import annotations

import bpy

from ..core.session import State
from . import live
from .prefs import get_prefs

_STATE_ICONS = {State.CONNECTING: "URL", State.RUNNING: "PLAY", State.DONE: "CHECKMARK",
                State.CANCELLED: "CANCEL", State.ERROR: "ERROR", State.IDLE: "INFO"}


class _SidebarPanel:
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Human3R"


class HUMAN3R_PT_main(_SidebarPanel, bpy.types.Panel):
    bl_label = "Human3R"
    bl_idname = "HUMAN3R_PT_main"

    def draw(self, context):
        layout = self.layout
        settings = context.scene.human3r
        layout.prop(settings, "video_path", text="")
        row = layout.row(align=True)
        row.prop(settings, "frame_start")
        row.prop(settings, "frame_end")
        row.prop(settings, "stride")

        session = live.current()
        row = layout.row(align=True)
        row.scale_y = 1.4
        if session is not None and session.active:
            row.operator("human3r.cancel", icon="CANCEL")
        else:
            row.operator("human3r.run", icon="PLAY")
        layout.operator("human3r.import_result", icon="IMPORT", text="Import .h3r…")

        if session is None:
            return
        box = layout.box()
        fraction = session.progress.fraction
        if session.active and fraction is not None and hasattr(box, "progress"):
            box.progress(factor=fraction, type="BAR", text=session.status_line().split(" — ", 1)[-1])
        # long messages (errors) are wrapped over several labels
        lines = _wrap(session.status_line(), max(20, int(context.region.width / 7) if context.region else 40))
        icon = _STATE_ICONS.get(session.state, "INFO")
        for i, line in enumerate(lines):
            box.label(text=line, icon=icon if i == 0 else "BLANK1")
        if not session.active:
            box.operator("human3r.clear_status", text="Clear", icon="X")


class HUMAN3R_PT_model(_SidebarPanel, bpy.types.Panel):
    bl_label = "Model Options"
    bl_parent_id = "HUMAN3R_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        settings = context.scene.human3r
        col = self.layout.column()
        col.use_property_split = True
        col.prop(settings, "reset_interval")
        col.prop(settings, "ttt3r")
        col.prop(settings, "detection_threshold")
        col.prop(settings, "precision")
        col.prop(settings, "input_size")


class HUMAN3R_PT_scene(_SidebarPanel, bpy.types.Panel):
    bl_label = "Scene Import"
    bl_parent_id = "HUMAN3R_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        settings = context.scene.human3r
        col = self.layout.column()
        col.use_property_split = True
        col.prop(settings, "scene_frame_start")
        col.prop(settings, "point_mode")
        sub = col.column()
        sub.active = settings.point_mode != "NONE"
        sub.prop(settings, "point_radius")
        sub.prop(settings, "point_stride")
        sub.prop(settings, "max_points_per_frame")
        sub.prop(settings, "point_conf_threshold")
        sub.prop(settings, "remove_humans_from_points")
        col.prop(settings, "import_meshes")
        sub = col.column()
        sub.active = settings.import_meshes
        sub.prop(settings, "import_expressions")
        sub.prop(settings, "pose_correctives")
        col.prop(settings, "import_camera")
        sub = col.column()
        sub.active = settings.import_camera
        sub.prop(settings, "video_background")


class HUMAN3R_PT_server(_SidebarPanel, bpy.types.Panel):
    bl_label = "Server"
    bl_parent_id = "HUMAN3R_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        layout = self.layout
        prefs = get_prefs(context)
        layout.label(text=prefs.server_address, icon="URL")
        info = getattr(live.current(), "server_info", None) or {}
        if info.get("device") or info.get("model"):
            layout.label(text=f"{info.get('model', '')} on {info.get('device', '?')}")
        row = layout.row(align=True)
        row.operator("human3r.start_server", icon="PLAY")
        row.operator("human3r.stop_server", icon="PAUSE")
        layout.label(text=f"Local server: {live.local_server.state()}")


def _wrap(text: str, width: int) -> list[str]:
    """Split `text` into lines of at most about `width` characters at spaces."""
    lines: list[str] = []
    current = ""
    for word in text.split():
        if current and len(current) + 1 + len(word) > width:
            lines.append(current)
            current = word
        else:
            current = f"{current} {word}" if current else word
    if current:
        lines.append(current)
    return lines or [""]


CLASSES = (HUMAN3R_PT_main, HUMAN3R_PT_model, HUMAN3R_PT_scene, HUMAN3R_PT_server)
