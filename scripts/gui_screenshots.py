"""Screenshots of the Human3R extension in a real Blender GUI (run by `scripts/gui_screenshots.sh`).

    blender --python scripts/gui_screenshots.py -- --out DIR --h3r RESULT.h3r --moved MOVED.h3r \
        --crowd CROWD.h3r --server tcp://127.0.0.1:PORT --video VIDEO

Runs inside Blender with a window (Xvfb is enough) and the extension installed and enabled. A timer
walks through the scenario below as a user would (sidebar tab, sections, imports, a run on the
server), lets Blender redraw, then grabs the X display (`import -window root`, ImageMagick) into
DIR/NN_name.png plus DIR/NN_name_sidebar.png (the Human3R sidebar only, full resolution), writes
DIR/INDEX.md and quits. Sub-panels are opened by registering them again without DEFAULT_CLOSED under
a fresh name (Blender has no Python call that opens a panel); their content and order are unchanged.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import traceback

import bpy

SUBPANELS = ("HUMAN3R_PT_model", "HUMAN3R_PT_scene", "HUMAN3R_PT_server", "HUMAN3R_PT_cleanup",
             "HUMAN3R_PT_retarget", "HUMAN3R_PT_export", "HUMAN3R_PT_live")  # registration order


def parse_args() -> argparse.Namespace:
    argv = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else []
    parser = argparse.ArgumentParser(prog="gui_screenshots.py")
    parser.add_argument("--out", required=True, help="folder for the PNGs and INDEX.md")
    parser.add_argument("--h3r", required=True, help="a result file whose video exists")
    parser.add_argument("--moved", required=True, help="a result file whose video is missing")
    parser.add_argument("--crowd", required=True, help="a result file large enough to catch the import's progress")
    parser.add_argument("--server", required=True, help="address of a running `human3r serve` (tiny model)")
    parser.add_argument("--video", required=True, help="a video under the server's media root, for Run")
    return parser.parse_args(argv)


ARGS = parse_args()
INDEX: list[tuple[str, str]] = []


def addon_module():
    name = next(n for n in bpy.context.preferences.addons.keys() if n.split(".")[-1] == "human3r")
    return name, sys.modules[name]


ADDON_NAME, ADDON = addon_module()
PANEL_CLASSES = {}  # original idname -> class, for re-registration


def prefs():
    return bpy.context.preferences.addons[ADDON_NAME].preferences


def main_area():
    window = bpy.context.window_manager.windows[0]
    area = max((a for a in window.screen.areas if a.type == "VIEW_3D"), key=lambda a: a.width * a.height)
    return window, area


def sidebar(area):
    return next(r for r in area.regions if r.type == "UI")


def redraw() -> None:
    window, _ = main_area()
    for area in window.screen.areas:
        area.tag_redraw()
    with bpy.context.temp_override(window=window):
        bpy.ops.wm.redraw_timer(type="DRAW_WIN_SWAP", iterations=1)


_generation = 0


def open_sections(*labels: str) -> None:
    """Show the sub-panels whose bl_label is in `labels` open and the others closed (same order)."""
    global _generation
    _generation += 1
    if not PANEL_CLASSES:
        for name in SUBPANELS:
            PANEL_CLASSES[name] = getattr(bpy.types, name)
    for cls in reversed(list(PANEL_CLASSES.values())):
        if cls.is_registered:
            bpy.utils.unregister_class(cls)
    for name, cls in PANEL_CLASSES.items():
        cls.bl_idname = f"{name}_shot{_generation}"  # a fresh name: Blender remembers open/closed per name
        cls.bl_options = set() if cls.bl_label in labels else {"DEFAULT_CLOSED"}
        bpy.utils.register_class(cls)


def shot(name: str, what: str, sidebar_crop: bool = True) -> None:
    """Grab the display into OUT/name.png (and the sidebar into name_sidebar.png)."""
    redraw()
    window, area = main_area()
    path = os.path.join(ARGS.out, f"{name}.png")
    subprocess.run(["import", "-window", "root", path], check=True)
    if sidebar_crop and area.spaces.active.show_region_ui:
        region = sidebar(area)
        top = window.height - (region.y + region.height)
        crop = f"{region.width}x{region.height}+{region.x}+{top}"
        subprocess.run(["convert", path, "-crop", crop, "+repage",
                        os.path.join(ARGS.out, f"{name}_sidebar.png")], check=True)
    INDEX.append((name, what))
    print(f"[gui_screenshots] {name}: {what}", flush=True)


def wait_until(predicate, timeout_s: float, step_s: float = 0.25):
    """Yield timer intervals until predicate() is true or timeout_s passes."""
    deadline = time.monotonic() + timeout_s
    while not predicate() and time.monotonic() < deadline:
        yield step_s


def server_line() -> str:
    blender = ADDON.blender
    return blender.server_status.status_lines(prefs().server_address)[0][0]


def override():
    window, area = main_area()
    return bpy.context.temp_override(window=window, area=area, region=sidebar(area))


def xdotool(*args) -> bool:
    try:
        subprocess.run(["xdotool", *map(str, args)], check=True)
        return True
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"[gui_screenshots] xdotool {args}: {exc}", flush=True)
        return False


def park_mouse():
    """Rest the pointer over an empty part of the viewport (over a button it shows a tooltip)."""
    window, area = main_area()
    xdotool("mousemove", area.x + 60, window.height - (area.y + 60))


def info_area_from_timeline(height: int = 240):
    """Turn the timeline at the bottom into the Info log and drag its top edge up to `height` pixels, as a
    user would (screen.area_move runs only from a real event); each step lets Blender handle the events."""
    window = bpy.context.window_manager.windows[0]
    area = next(a for a in window.screen.areas if a.type == "DOPESHEET_EDITOR" or a.ui_type == "TIMELINE")
    area.type = "INFO"
    yield 0.3
    x, edge_y = area.x + area.width // 2, window.height - (area.y + area.height) - 1
    for args in (("mousemove", x, edge_y), ("mousedown", 1), ("mousemove", x, edge_y - 10),
                 ("mousemove", x, edge_y - (height - area.height)), ("mouseup", 1)):
        if not xdotool(*args):
            break
        yield 0.2
    park_mouse()
    print(f"[gui_screenshots] Info log {area.height} px tall", flush=True)


def select_only(ob) -> None:
    for other in bpy.context.view_layer.objects:
        other.select_set(False)
    ob.select_set(True)
    bpy.context.view_layer.objects.active = ob


def importing_done() -> bool:
    return not ADDON.blender.file_import.in_progress


def camera_of_last_import():
    cams = [ob for ob in bpy.context.scene.objects if ob.type == "CAMERA" and "human3r_video_frame_start" in ob]
    return cams[-1] if cams else None


def scenario():
    os.makedirs(ARGS.out, exist_ok=True)
    window, area = main_area()
    space = area.spaces.active
    space.show_region_ui = True
    park_mouse()
    yield 0.5
    sidebar(area).active_panel_category = "Human3R"
    settings = bpy.context.scene.human3r
    settings.input_size = 112  # the tiny checkpoint's size (the CLI's default 512 is for the real model)
    settings.frame_end = 0

    # 1. no server at the address
    prefs().server_address = "tcp://127.0.0.1:9"  # the discard port: nothing answers there
    open_sections("Server")
    yield from wait_until(lambda: server_line().startswith("Not answering"), 20)
    shot("01_panel_no_server", "Main panel and Server box with no server at the address: the reachability line")

    # 2. a server started outside Blender answers
    prefs().server_address = ARGS.server
    yield from wait_until(lambda: server_line().startswith("Reachable"), 30)
    shot("02_server_box_reachable", "Server box with `human3r serve` (tiny model) started outside Blender")

    # 3. option sections
    open_sections("Model Options", "Scene Import")
    yield 0.5
    shot("03_model_scene_options", "Model Options and Scene Import sections (defaults = the CLI's)")
    open_sections("Clean-up")
    yield 0.5
    shot("04_cleanup", "Clean-up section")
    open_sections("Live")
    with override():
        bpy.ops.human3r.live_refresh()
    yield from wait_until(lambda: ADDON.blender.live_sources._refresh is None, 15)
    yield 0.5
    shot("05_live", "Live section after Refresh (sources named by the server's --live)")

    # 4. import a crowd file: the progress while it runs
    open_sections()
    with override():
        bpy.ops.human3r.import_result("EXEC_DEFAULT", filepath=ARGS.crowd)
    yield from wait_until(lambda: ADDON.blender.file_import.in_progress and
                          ADDON.blender.file_import.in_progress[0].fraction > 0.3, 120, 0.05)
    shot("06_import_progress", "Importing a 40-person result file: progress in the panel and the status bar")
    yield from wait_until(importing_done, 300)
    yield 1.0
    for coll in list(bpy.data.collections):  # keep the next shots about one result
        if coll.name.startswith("crowd"):
            coll.hide_viewport = True
            bpy.context.view_layer.layer_collection.children[coll.name].exclude = True

    # 5. import a result whose video exists: camera view with the plate
    yield from info_area_from_timeline()
    with override():
        bpy.ops.human3r.import_result("EXEC_DEFAULT", filepath=ARGS.h3r)
    yield 1.0
    yield from wait_until(importing_done, 120)
    yield 1.0
    cam = camera_of_last_import()
    bpy.context.scene.camera = cam
    space.region_3d.view_perspective = "CAMERA"
    bpy.context.scene.frame_set(bpy.context.scene.frame_start + 20)
    select_only(cam)
    open_sections("Retarget", "Export")
    yield 1.0
    shot("07_import_camera_view", "tennis.h3r imported: camera view with the footage, Info log with the report")

    # 6. retarget / export with a person active
    arm = next(ob for ob in cam.users_collection[0].all_objects if ob.type == "ARMATURE")
    select_only(arm)
    yield 0.5
    shot("08_retarget_export", "Retarget and Export sections with an imported person active")

    # 7. a result whose video is missing: warning in the Info log, Locate Video…
    with override():
        bpy.ops.human3r.import_result("EXEC_DEFAULT", filepath=ARGS.moved)
    yield 1.0
    yield from wait_until(importing_done, 120)
    yield 1.0
    select_only(camera_of_last_import())
    open_sections()
    yield 1.0
    shot("09_missing_video_warning", "Result whose video is missing: warning in the Info log, Locate Video… offered")
    cam = camera_of_last_import()
    window, area = main_area()
    with bpy.context.temp_override(window=window, area=area, active_object=cam, object=cam):
        # through the file browser, as a click does (reports of an operator called from Python only reach
        # the terminal): Return accepts the file named in it
        bpy.ops.human3r.locate_video("INVOKE_DEFAULT", filepath=ARGS.video)
    yield 2.0
    browser = bpy.context.window_manager.windows[-1]  # the file browser opens as its own window
    xdotool("mousemove", browser.x + browser.width // 2, window.height - (browser.y + browser.height // 2))
    yield 0.3
    shot("10_locate_video_browser", "Locate Video… opens a file browser", sidebar_crop=False)
    xdotool("key", "Return")  # keys go to the window under the pointer (no window manager)
    yield 1.5
    park_mouse()
    yield 0.5
    shot("10_locate_video_done", "Locate Video… given the video: the plate is back, retimed like an import (Info log)")

    # 8. Run on the server: progress while inferring and importing
    for coll in bpy.data.collections:
        if coll.name.startswith("tennis"):
            bpy.context.view_layer.layer_collection.children[coll.name].exclude = True
    settings.video_path = ARGS.video
    settings.frame_end = 40
    with override():
        bpy.ops.human3r.run()
    session = ADDON.blender.live.current
    yield from wait_until(lambda: session() is not None and (session().progress.frames_done or 0) >= 5, 120, 0.1)
    shot("11_run_progress", "Run Human3R on the server: inferred / imported progress, Cancel apart from Run")
    yield from wait_until(lambda: session() is not None and not session().active, 300)
    yield 1.0
    shot("12_run_done", "Run finished: end message in the panel and the Info log")
    write_index()


def write_index() -> None:
    with open(os.path.join(ARGS.out, "INDEX.md"), "w") as f:
        f.write(f"# Human3R GUI screenshots (Blender {bpy.app.version_string})\n\n")
        f.write("Each NN_name.png is the whole window; NN_name_sidebar.png the Human3R sidebar only.\n\n")
        for name, what in INDEX:
            f.write(f"- `{name}.png`: {what}\n")


_steps = scenario()


def _tick():
    try:
        return next(_steps)
    except StopIteration:
        bpy.ops.wm.quit_blender()
    except Exception:
        traceback.print_exc()
        write_index()
        os._exit(1)
    return None


bpy.app.timers.register(_tick, first_interval=2.0)
