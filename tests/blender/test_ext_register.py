"""Registration of the extension: classes, settings, preferences and menus come and go cleanly."""
from __future__ import annotations

import importlib
import shutil
import sys
import types
from pathlib import Path

import pytest

bpy = pytest.importorskip("bpy")

pytestmark = pytest.mark.bpy

REPO = Path(__file__).resolve().parents[2]
OPERATORS = ("run", "cancel", "clear_status", "import_result", "start_server", "stop_server", "report_message")
PANELS = ("HUMAN3R_PT_main", "HUMAN3R_PT_model", "HUMAN3R_PT_scene", "HUMAN3R_PT_server")


def registered_names() -> set[str]:
    names = {name for name in dir(bpy.types) if name.startswith("HUMAN3R_")}
    return names


def import_menu_has_entry() -> bool:
    menu = bpy.types.TOPBAR_MT_file_import
    return any(getattr(fn, "__name__", "") == "menu_import" for fn in getattr(menu, "_dyn_ui_initialize")())


def assert_registered():
    assert hasattr(bpy.types.Scene, "human3r")
    settings = bpy.context.scene.human3r
    assert settings.reset_interval == 100 and settings.ttt3r and settings.stride == 1
    for op in OPERATORS:
        assert hasattr(bpy.ops.human3r, op) and getattr(bpy.ops.human3r, op).idname() == f"HUMAN3R_OT_{op}"
    for panel in PANELS:
        assert hasattr(bpy.types, panel)
    assert import_menu_has_entry()


def assert_unregistered():
    assert not hasattr(bpy.types.Scene, "human3r")
    assert not registered_names(), registered_names()
    assert not import_menu_has_entry()


def test_register_unregister_twice(factory_scene):
    import blender_addon
    from blender_addon.blender import timers

    for _ in range(2):
        blender_addon.register()
        assert_registered()
        assert timers._on_load_pre in bpy.app.handlers.load_pre
        timers.kill_local_server_later()  # a "Stop Local Server" just before the add-on is disabled
        assert bpy.app.timers.is_registered(timers._kill_local_server)
        blender_addon.unregister()
        assert_unregistered()
        assert timers._on_load_pre not in bpy.app.handlers.load_pre
        assert not bpy.app.timers.is_registered(timers._kill_local_server)


def test_job_options_match_the_servers_option_names(addon):
    settings = bpy.context.scene.human3r
    settings.frame_start, settings.frame_end, settings.stride = 5, 50, 2
    settings.precision = "bf16"
    options = settings.job_options()
    assert options["start"] == 5 and options["end"] == 50 and options["stride"] == 2
    assert options["precision"] == "bf16" and options["ttt3r"] is True
    settings.frame_end = 0
    assert settings.job_options()["end"] is None
    # backend.engine.options needs neither torch nor bpy, and the repo root is on pytest's pythonpath:
    # it imports under every bpy interpreter, so a failure here is a real break, not a missing backend
    from backend.engine.options import JobOptions

    parsed = JobOptions.from_dict(options)  # every key is one the server knows (unknown keys raise)
    assert (parsed.start, parsed.end, parsed.stride, parsed.precision) == (5, 50, 2, "bf16")


def test_import_options_are_the_builders_option_names(addon):
    import dataclasses

    from blender_addon.core.scene_plan import ImportOptions

    known = {f.name for f in dataclasses.fields(ImportOptions)}
    options = bpy.context.scene.human3r.import_options()
    assert set(options) <= known, f"unknown to the scene builder: {sorted(set(options) - known)}"
    assert ImportOptions(**options).scene_frame_start == 1


def test_preferences_through_the_addon_system(addon):
    prefs = bpy.context.preferences.addons["blender_addon"].preferences
    assert type(prefs).bl_idname == "blender_addon"
    assert prefs.server_address == "tcp://127.0.0.1:5555"
    from blender_addon.blender.prefs import get_prefs

    prefs.server_address = "tcp://127.0.0.1:6123"
    assert get_prefs().server_address == "tcp://127.0.0.1:6123"


def test_panel_draws_without_errors(addon):
    # Panels cannot be drawn without a window in background mode; call draw on a minimal stand-in layout
    # to catch attribute errors (wrong property names) in every state the panel can show.
    from blender_addon.blender import live, panels
    from blender_addon.core.session import LiveSession, State

    class Layout:
        def __getattr__(self, name):
            return lambda *a, **k: Layout()

        def prop(self, data, name, **kwargs):
            assert hasattr(data, name), f"panel draws missing property {name!r}"
            return Layout()

    class Ctx:
        scene = bpy.context.scene
        preferences = bpy.context.preferences
        region = None
        active_object = None

    for cls in panels.CLASSES:
        panel = types.SimpleNamespace(layout=Layout())
        cls.draw(panel, Ctx())
    session = LiveSession(client=types.SimpleNamespace(close=lambda: None), sink=None)
    session.state, session.message = State.ERROR, "No Human3R server is answering at tcp://x:1. " * 3
    live._session = session
    try:
        panels.HUMAN3R_PT_main.draw(types.SimpleNamespace(layout=Layout()), Ctx())
    finally:
        live.forget()


def test_installed_as_an_extension_package_name(tmp_path, factory_scene):
    """Import the add-on under a dotted extension-style name (relative imports only) and register it."""
    pkg_root = tmp_path / "h3r_ext_test" / "user_default"
    pkg_root.mkdir(parents=True)
    shutil.copytree(REPO / "blender_addon", pkg_root / "human3r",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy(REPO / "blender_manifest.toml", pkg_root / "human3r")
    sys.path.insert(0, str(tmp_path))
    # make sure the repo's copy cannot be picked up by an absolute import
    hidden = {k: v for k, v in sys.modules.items() if k == "blender_addon" or k.startswith("blender_addon.")}
    for k in hidden:
        sys.modules[k] = None
    try:
        mod = importlib.import_module("h3r_ext_test.user_default.human3r")
        mod.register()
        from h3r_ext_test.user_default.human3r.blender import prefs

        assert prefs.HUMAN3R_AP_preferences.bl_idname == "h3r_ext_test.user_default.human3r"
        assert hasattr(bpy.types.Scene, "human3r")
        mod.unregister()
        assert not hasattr(bpy.types.Scene, "human3r")
    finally:
        sys.path.remove(str(tmp_path))
        for k in [k for k in sys.modules if k.startswith("h3r_ext_test")]:
            del sys.modules[k]
        sys.modules.update(hidden)
