"""Operators of the Human3R panel: run/cancel a live job, import a .h3r file, start/stop a local server.

Each operator checks its inputs, reports problems with `self.report` in words a user can act on and
hands the work to `live.py` (live jobs) or the scene builder (files). None of them blocks: a live job
continues in the timer after `execute` returns.
"""
import logging
import os

import bpy
from bpy.props import EnumProperty, StringProperty
from bpy_extras.io_utils import ImportHelper

from ..core.addresses import is_loopback_address
from . import file_import, live, plate_timing, timers
from .build_camera import VIDEO_FRAME_START, attach_video
from .panel_base import redraw_sidebars
from .prefs import get_prefs, server_command

log = logging.getLogger(__name__)


class HUMAN3R_OT_run(bpy.types.Operator):
    """Send the video to the Human3R server and stream the results into the scene"""

    bl_idname = "human3r.run"
    bl_label = "Run Human3R"
    bl_options = {"REGISTER"}

    @classmethod
    def poll(cls, context):
        return not live.is_active()

    def execute(self, context):
        from .cleanup import cleanup_options

        settings = context.scene.human3r
        prefs = get_prefs(context)
        address = prefs.server_address.strip()
        video = live.video_path_for_server(settings.video_path)
        if not video:
            self.report({"ERROR"}, "Choose a video first")
            return {"CANCELLED"}
        loopback = is_loopback_address(address)
        if loopback and not os.path.isfile(video):
            self.report({"ERROR"}, f"Video not found: {video}")
            return {"CANCELLED"}
        if not loopback and not bpy.app.online_access:
            self.report({"ERROR"}, f"The server {address} is not on this computer and online access is "
                                   f"disabled (Preferences > System > Network > Allow Online Access)")
            return {"CANCELLED"}
        try:
            session = live.start(video, settings.job_options(), settings.import_options(), address=address,
                                 curve_server_key=prefs.curve_server_key,
                                 curve_client_key_file=prefs.curve_client_key_file, timeout_s=prefs.timeout_s,
                                 cleanup=cleanup_options(context))
        except (ImportError, RuntimeError, ValueError) as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        if not session.active:  # failed before any message (bad address or key)
            self.report({"ERROR"}, session.message)
            return {"CANCELLED"}
        timers.ensure_polling()
        self.report({"INFO"}, f"Human3R: submitted {os.path.basename(video)} to {address}")
        return {"FINISHED"}


class HUMAN3R_OT_cancel(bpy.types.Operator):
    """Stop the running Human3R job; what was imported so far stays in the scene"""

    bl_idname = "human3r.cancel"
    bl_label = "Cancel"
    bl_options = {"REGISTER"}

    @classmethod
    def poll(cls, context):
        return live.is_active()

    def execute(self, context):
        live.cancel()
        self.report({"INFO"}, "Human3R: cancelling…")
        return {"FINISHED"}


class HUMAN3R_OT_clear_status(bpy.types.Operator):
    """Forget the last job's status message"""

    bl_idname = "human3r.clear_status"
    bl_label = "Clear Status"
    bl_options = {"INTERNAL"}

    @classmethod
    def poll(cls, context):
        return live.current() is not None and not live.is_active()

    def execute(self, context):
        live.forget()
        return {"FINISHED"}


class HUMAN3R_OT_import_result(bpy.types.Operator, ImportHelper):
    """Import a Human3R result file (.h3r): camera, people and points. Esc stops the import and keeps
    what is built so far"""

    bl_idname = "human3r.import_result"
    bl_label = "Import Human3R (.h3r)"
    bl_options = {"REGISTER", "UNDO"}

    filename_ext = ".h3r"
    filter_glob: StringProperty(default="*.h3r", options={"HIDDEN"})

    STEP_S = 0.1  # work per modal timer event: the UI redraws the progress between steps

    def execute(self, context):
        from ..core.resultfile import ResultFileError
        from .cleanup import cleanup_options

        path = bpy.path.abspath(self.filepath)
        if not os.path.isfile(path):
            self.report({"ERROR"}, f"No such file: {path}")
            return {"CANCELLED"}
        options = context.scene.human3r.import_options() if hasattr(context.scene, "human3r") else {}
        try:
            self._job = file_import.FileImport(path, options, cleanup=cleanup_options(context))
        except ResultFileError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        if bpy.app.background or context.window is None:  # no event loop: import at once
            return self._finish() if self._run_guarded(self._job.run) else {"CANCELLED"}
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.01, window=context.window)
        wm.progress_begin(0, 100)
        wm.modal_handler_add(self)
        file_import.in_progress.append(self._job)
        self._show_progress(context)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        if event.type == "ESC":
            self._cleanup(context)
            self._job.cancel()
            return self._finish()
        if event.type != "TIMER":
            return {"RUNNING_MODAL"}
        more = self._run_guarded(lambda: self._job.step(self.STEP_S))
        if more is None:
            self._cleanup(context)
            return {"CANCELLED"}
        self._show_progress(context)
        if more:
            return {"RUNNING_MODAL"}
        self._cleanup(context)
        return self._finish()

    def _run_guarded(self, fn):
        """fn() or None after reporting: anything the builder raises keeps Blender up and says what happened."""
        try:
            result = fn()
            return True if result is None else result
        except (ValueError, OSError) as exc:
            self.report({"ERROR"}, str(exc))
        except Exception as exc:
            log.exception("importing %s failed", self._job.path)
            self.report({"ERROR"}, f"Importing {os.path.basename(self._job.path)} failed: "
                                   f"{type(exc).__name__}: {exc}")
        if self._job.builder is not None and not self._job.done:
            self._job.cancel()
        return None

    def _show_progress(self, context) -> None:
        """The cursor's percentage, the status bar's and the panel's line (the cursor alone is easy to miss)."""
        context.window_manager.progress_update(int(100 * self._job.fraction))
        context.workspace.status_text_set(f"{self._job.status_line()} — Esc to stop")
        redraw_sidebars()

    def _cleanup(self, context) -> None:
        wm = context.window_manager
        wm.event_timer_remove(self._timer)
        wm.progress_end()
        context.workspace.status_text_set(None)
        if self._job in file_import.in_progress:
            file_import.in_progress.remove(self._job)
        redraw_sidebars()

    def _finish(self) -> set[str]:
        summary = self._job.summary
        for level, text in import_report(os.path.basename(self._job.path), summary):
            self.report({level}, text)
        return {"FINISHED"}


def import_report(name: str, summary: dict) -> list[tuple[str, str]]:
    """(level, text) lines of an import's report: what came in, what was left out, what is wrong."""
    people = summary.get("people") or []
    head = f"Imported {name}: {summary.get('frames', 0)} frame(s), {len(people)} people"
    dropped = summary.get("tracks_dropped") or 0
    if dropped:
        head += f" ({dropped} short track(s) left out)"
    if summary.get("status") == "cancelled":
        lines = [("WARNING", f"Stopped importing {name}: {summary.get('frames', 0)} frame(s) and "
                             f"{len(people)} people are in the scene")]
    elif summary.get("problem"):
        lines = [("WARNING", f"{name} is incomplete ({summary['problem']}); imported everything up to that point")]
    else:
        lines = [("INFO", head)]
    if summary.get("replaced"):
        lines.append(("INFO", f"Replaced the earlier run(s): {', '.join(summary['replaced'])}"))
    if summary.get("video_retimed"):
        lines.append(("INFO", summary["video_retimed"]))
    lines += [("WARNING", w) for w in summary.get("warnings") or []]
    return lines


class HUMAN3R_OT_locate_video(bpy.types.Operator, ImportHelper):
    """Choose the video of the active Human3R camera (its file moved or was made on another computer)
    and show it as the camera's background, in sync with the keys"""

    bl_idname = "human3r.locate_video"
    bl_label = "Locate Video…"
    bl_options = {"REGISTER", "UNDO"}

    filter_glob: StringProperty(default="*.mp4;*.mov;*.mkv;*.avi;*.webm;*.m4v", options={"HIDDEN"})

    @classmethod
    def poll(cls, context):
        ob = context.active_object
        return ob is not None and ob.type == "CAMERA" and VIDEO_FRAME_START in ob

    def execute(self, context):
        cam = context.active_object
        for bg in list(cam.data.background_images):
            if bg.source == "MOVIE_CLIP":
                cam.data.background_images.remove(bg)
        first_frame = int(cam[VIDEO_FRAME_START])
        warning = attach_video(cam.data, self.filepath, first_frame, context.scene)
        if warning:
            self.report({"ERROR"}, warning)
            return {"CANCELLED"}
        # VFR or odd-rate footage: the same retiming as an import with the video present
        retimed = plate_timing.retime_located(cam, cam.data.background_images[-1].clip, first_frame)
        if context.scene.human3r.footage_in_renders:  # the import could not composite a missing video
            from .render_footage import show_footage_in_renders

            show_footage_in_renders(context.scene, cam)
        shown = f"{cam.name} shows {os.path.basename(self.filepath)}"
        self.report({"INFO"}, f"{shown}. {retimed}" if retimed else shown)
        return {"FINISHED"}


class HUMAN3R_OT_start_server(bpy.types.Operator):
    """Start `human3r serve` on this computer with the paths from the add-on preferences"""

    bl_idname = "human3r.start_server"
    bl_label = "Start Local Server"
    bl_options = {"REGISTER"}

    @classmethod
    def poll(cls, context):
        return not live.local_server.running

    def execute(self, context):
        prefs = get_prefs(context)
        if not is_loopback_address(prefs.server_address):
            self.report({"ERROR"}, "A local server needs a loopback address such as tcp://127.0.0.1:5555 "
                                   "(binding beyond loopback needs CurveZMQ keys; start that server by hand)")
            return {"CANCELLED"}
        settings = getattr(context.scene, "human3r", None)
        video = live.video_path_for_server(settings.video_path) if settings is not None else ""
        # the server's default root is the home folder; add the chosen video's folder if it lies elsewhere
        roots = tuple(dict.fromkeys(r for r in (os.path.expanduser("~"), os.path.dirname(video)) if r))
        try:
            live.local_server.start(server_command(prefs, media_roots=roots))
        except (OSError, RuntimeError) as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, f"Started the Human3R server (pid {live.local_server.pid}); "
                              f"output in {live.local_server.log_path}")
        return {"FINISHED"}


class HUMAN3R_OT_stop_server(bpy.types.Operator):
    """Stop the `human3r serve` process started from this panel"""

    bl_idname = "human3r.stop_server"
    bl_label = "Stop Local Server"
    bl_options = {"REGISTER"}

    @classmethod
    def poll(cls, context):
        return live.local_server.running

    def execute(self, context):
        # SIGTERM lets the server cancel its jobs and close its files; a timer kills it if it hangs
        live.local_server.terminate()
        timers.kill_local_server_later()
        self.report({"INFO"}, "Stopping the local Human3R server")
        return {"FINISHED"}


class HUMAN3R_OT_report_message(bpy.types.Operator):
    """Show a message from the Human3R timer in Blender's status bar and info log"""

    bl_idname = "human3r.report_message"
    bl_label = "Human3R Message"
    bl_options = {"INTERNAL"}

    level: EnumProperty(items=[("INFO", "Info", ""), ("WARNING", "Warning", ""), ("ERROR", "Error", "")])
    message: StringProperty()

    def execute(self, context):
        self.report({self.level}, self.message)
        return {"FINISHED"}


def menu_import(self, context):
    self.layout.operator(HUMAN3R_OT_import_result.bl_idname, text="Human3R (.h3r)")


CLASSES = (HUMAN3R_OT_run, HUMAN3R_OT_cancel, HUMAN3R_OT_clear_status, HUMAN3R_OT_import_result,
           HUMAN3R_OT_locate_video,
           HUMAN3R_OT_start_server, HUMAN3R_OT_stop_server, HUMAN3R_OT_report_message)


def register_menus() -> None:
    bpy.types.TOPBAR_MT_file_import.append(menu_import)


def unregister_menus() -> None:
    bpy.types.TOPBAR_MT_file_import.remove(menu_import)
