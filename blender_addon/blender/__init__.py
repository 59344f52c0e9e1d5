"""The Blender layer of the extension: the only package that imports bpy.

`register()` / `unregister()` add and remove every class, the `scene.human3r` settings, the
File > Import entry and the load handler; both can run any number of times in a row.
"""
from __future__ import annotations

import bpy

from . import live, live_sources, operators, panels, prefs, props, timers
from . import cleanup, export_ops, retarget_ops, retarget_panel, server_status

# Feature modules with their own CLASSES and attach()/detach() (registered after the core classes).
FEATURES = (cleanup, retarget_ops, retarget_panel, export_ops, live_sources, server_status)

# Registration order: property groups before the pointers to them, operators before panels that use them.
CLASSES = (*props.CLASSES, *prefs.CLASSES, *operators.CLASSES, *panels.CLASSES,
           *(cls for feature in FEATURES for cls in feature.CLASSES))


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    props.attach()
    for feature in FEATURES:
        getattr(feature, "attach", lambda: None)()
    operators.register_menus()
    timers.register()


def unregister() -> None:
    timers.unregister()
    live.shutdown("Stopped: the Human3R add-on was disabled")
    live.forget()
    operators.unregister_menus()
    for feature in FEATURES:
        getattr(feature, "detach", lambda: None)()
    props.detach()
    for cls in reversed(CLASSES):
        if getattr(cls, "is_registered", True):
            bpy.utils.unregister_class(cls)
