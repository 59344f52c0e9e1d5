"""The Blender layer of the extension: the only package that imports bpy.

`register()` / `unregister()` add and remove every class, the `scene.human3r` settings, the
File > Import entry and the load handler; both can run any number of times in a row.
"""
from __future__ import annotations

import bpy

from . import live, live_sources, operators, panels, prefs, props, timers

# Registration order: property groups before the pointers to them, operators before panels that use them.
CLASSES = (*props.CLASSES, *prefs.CLASSES, *operators.CLASSES, *panels.CLASSES)
# Feature modules with their own classes and scene properties (registered after the core UI).
FEATURES = (live_sources,)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    props.attach()
    for feature in FEATURES:
        for cls in feature.CLASSES:
            bpy.utils.register_class(cls)
        feature.attach()
    operators.register_menus()
    timers.register()


def unregister() -> None:
    if bpy.app.timers.is_registered(operators._kill_local_server):
        bpy.app.timers.unregister(operators._kill_local_server)
    timers.unregister()
    live.shutdown("Stopped: the Human3R add-on was disabled")
    live.forget()
    operators.unregister_menus()
    for feature in reversed(FEATURES):
        feature.detach()
        for cls in reversed(feature.CLASSES):
            if getattr(cls, "is_registered", True):
                bpy.utils.unregister_class(cls)
    props.detach()
    for cls in reversed(CLASSES):
        if getattr(cls, "is_registered", True):
            bpy.utils.unregister_class(cls)
