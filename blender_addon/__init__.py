"""Human3R for Blender: cameras, SMPL-X people and scene points from a video, streamed into the scene.

Installed as the extension `bl_ext.<repo>.human3r` (see blender_manifest.toml); all imports inside
the package are relative. Layout:

- `core/`    no bpy, no torch: the wire protocol, result files, the live-session state machine,
             conversions and the scene plan (testable in plain Python).
- `client/`  the ZeroMQ client of `human3r serve` (no bpy).
- `blender/` everything that touches bpy: settings, operators, panels, the poll timer, the builder.

bpy is imported only inside `register()` / `unregister()`, so `blender_addon.core` and
`blender_addon.client` import in a Python without Blender (the backend shares the protocol module).
"""


def register() -> None:
    from .blender import register as register_blender

    register_blender()


def unregister() -> None:
    from .blender import unregister as unregister_blender

    unregister_blender()
