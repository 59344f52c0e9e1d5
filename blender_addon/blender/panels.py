"""The Human3R tab of the 3D View sidebar: video, Run/Cancel, progress, options, local server.

Panels only draw: they read `scene.human3r` (settings) and `live.current()` (the job's state) and
place operators. The main panel shows the state; the sub-panels (collapsed by default) hold options.
"""
from __future__ import annotations

import bpy

from ..core.session import State
from . import file_import, live, server_status, ui_text
from .build_camera import VIDEO_FRAME_START
from .prefs import get_prefs
from .panel_base import SidebarPanel, SubPanel

_STATE_ICONS = {State.CONNECTING: "URL", State.RUNNING: "PLAY", State.DONE: "CHECKMARK",
                State.CANCELLED: "CANCEL", State.ERROR: "ERROR", State.IDLE: "INFO"}


class HUMAN3R_PT_main(SidebarPanel, bpy.types.Panel):
    bl_label = "Human3R"
    bl_idname = "HUMAN3R_PT_main"

    def draw(self, context):
        layout = self.layout
        settings = context.scene.human3r
        layout.prop(settings, "video_path", text="Video")
        row = layout.row(align=True)
        row.prop(settings, "frame_start")
        row.prop(settings, "frame_end")
        row.prop(settings, "stride")
        if settings.frame_end <= settings.frame_start:  # say what End 0 means where it is set
            layout.label(text="End: to the end of the video", icon="INFO")

        session = live.current()
        active = session is not None and session.active
        # Run and Cancel never share a spot: a late click on Cancel must not start a new job
        row = layout.row(align=True)
        row.scale_y = 1.4
        row.operator("human3r.run", icon="PLAY", text="Running…" if active else "Run Human3R")  # greyed while active
        layout.operator("human3r.import_result", icon="IMPORT", text="Import .h3r…")
        for job in file_import.in_progress:  # a file import in steps: its progress here, not only on the cursor
            box = layout.box()
            if hasattr(box, "progress"):
                box.progress(factor=job.fraction, type="BAR", text=f"{int(100 * job.fraction)} %")
            ui_text.wrapped_labels(box, context, job.status_line(), "IMPORT")
            box.label(text="Esc stops it and keeps what is built", icon="BLANK1")
        ob = context.active_object
        if ob is not None and ob.type == "CAMERA" and VIDEO_FRAME_START in ob and not ob.data.background_images:
            layout.operator("human3r.locate_video", icon="FILE_MOVIE")

        if session is None:
            return
        box = layout.box()
        fraction = session.progress.fraction
        if session.active and fraction is not None and hasattr(box, "progress"):
            box.progress(factor=fraction, type="BAR", text=session.status_line().split(" — ", 1)[-1])
        # long messages (errors) are wrapped over several labels, never clipped mid-word
        # the first line of a finished job shares its row with Clear
        lines = ui_text.lines_for(context, session.status_line(), 0 if session.active else ui_text.BUTTON_PX)
        icon = _STATE_ICONS.get(session.state, "INFO")
        for i, line in enumerate(lines):
            if i == 0 and not session.active:  # Clear sits beside the first line, away from where Cancel was
                head = box.row()
                head.label(text=line, icon=icon)
                head.operator("human3r.clear_status", text="", icon="X")
            else:
                box.label(text=line, icon=icon if i == 0 else "BLANK1")
        if session.active:
            box.operator("human3r.cancel", icon="CANCEL")


class HUMAN3R_PT_model(SubPanel, bpy.types.Panel):
    bl_label = "Model Options"

    def draw(self, context):
        settings = context.scene.human3r
        col = self.layout.column()
        col.use_property_split = True
        col.prop(settings, "reset_interval")
        col.prop(settings, "ttt3r")
        col.prop(settings, "detection_threshold", text="Detection")
        col.prop(settings, "precision")
        col.prop(settings, "input_size")


class HUMAN3R_PT_scene(SubPanel, bpy.types.Panel):
    bl_label = "Scene Import"
    # Labels are short enough for the default sidebar (the full names are in the tooltips)

    def draw(self, context):
        settings = context.scene.human3r
        col = self.layout.column()
        col.use_property_split = True
        col.prop(settings, "scene_frame_start")
        col.prop(settings, "keep_frame_range", text="Keep Range")
        col.prop(settings, "min_track_frames")
        col.prop(settings, "point_mode")
        sub = col.column()
        sub.active = settings.point_mode != "NONE"
        sub.prop(settings, "point_radius")
        sub.prop(settings, "point_stride")
        sub.prop(settings, "max_points_per_frame", text="Max Points")
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
        sub.prop(settings, "video_background", text="Video")
        sub = sub.column()
        sub.active = settings.import_camera and settings.video_background
        sub.prop(settings, "footage_in_renders", text="In Renders")
        col.prop(settings, "rerun")


class HUMAN3R_PT_server(SubPanel, bpy.types.Panel):
    bl_label = "Server"

    def draw(self, context):
        layout = self.layout
        prefs = get_prefs(context)
        layout.label(text=prefs.server_address, icon="URL")
        server_status.wanted()  # the probe runs while the box is on screen
        col = layout.column(align=True)
        for text, icon in server_status.status_lines(prefs.server_address):
            ui_text.wrapped_labels(col, context, text, icon)
        # one button at full width (two side by side clip to "Start Local Ser…" in the default sidebar)
        if live.local_server.running:
            layout.operator("human3r.stop_server", icon="PAUSE")
        else:
            layout.operator("human3r.start_server", icon="PLAY")


CLASSES = (HUMAN3R_PT_main, HUMAN3R_PT_model, HUMAN3R_PT_scene, HUMAN3R_PT_server)
