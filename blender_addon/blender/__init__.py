"""The Blender layer of the extension: the only package that imports bpy.

`register()` / `unregister()` add and remove every class, the `scene.human3r` settings, the
File > Import entry and the load handler; both can run any number of times in a row.
"""
from __future__ import annotations

import bpy

from . import live, operators, panels, prefs, props, timers

# Registration order: property groups before the pointers to them, operators before panels that use them.
CLASSES = (*props.CLASSES, *prefs.CLASSES, *operators.CLASSES, *panels.CLASSES)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    props.attach()
    operators.register_menus()
    timers.register()


def unregister() -> None:
    timers.unregister()
    live.shutdown("Stopped: the Human3R add-on was disabled")
    live.forget()
    operators.unregister_menus()
    props.detach()
    for cls in reversed(CLASSES):
        if getattr(cls, "is_registered", True):
            bpy.utils.unregister_class(cls)
