"""Live preview: a live source drives the rigs and the camera without writing a single key.

`PreviewBuilder` is a `SceneBuilder` whose animation targets set the newest value of each channel
on the object itself (`DirectTarget`) instead of appending keys, and which applies only the newest
frame of each batch the timer hands it (older ones are stale by the time Blender draws). The
objects, rest shapes and re-shaping are the scene builder's; only where values go differs.
Record mode is the plain `SceneBuilder`: every received frame keyed into a new collection (a take).
"""
from __future__ import annotations

import bpy

from .scene_builder import SceneBuilder


def split_data_path(data_path: str) -> tuple[str, str]:
    """('pose.bones["a.b"]', 'location') from 'pose.bones["a.b"].location': the owner's path and the
    property name (the last '.' outside quotes and brackets)."""
    depth, quoted = 0, False
    for i in range(len(data_path) - 1, -1, -1):
        c = data_path[i]
        if c == '"':
            quoted = not quoted
        elif not quoted and c == "]":
            depth += 1
        elif not quoted and c == "[":
            depth -= 1
        elif c == "." and depth == 0 and not quoted:
            return data_path[:i], data_path[i + 1:]
    return "", data_path


class DirectTarget:
    """Stands in for `compat.AnimationTarget`: `apply` sets each channel to its last value."""

    def __init__(self, id_data: bpy.types.ID):
        self.id_data = id_data
        self._owners: dict[str, object] = {}

    def apply(self, keys) -> int:
        """Set every `core.keyframes.FCurveKeys` channel to its newest value; returns 0 (no keys)."""
        for k in keys:
            owner_path, prop = split_data_path(k.data_path)
            owner = self._owners.get(owner_path)
            if owner is None:
                owner = self.id_data.path_resolve(owner_path) if owner_path else self.id_data
                self._owners[owner_path] = owner
            value = float(k.co[-1])  # co is (frame, value) interleaved
            current = getattr(owner, prop)
            if hasattr(current, "__setitem__"):
                current[k.index] = value
            else:
                setattr(owner, prop, value)
        return 0

    def remove(self, data_path: str, index: int) -> None:
        pass  # nothing keyed, nothing to remove


class PreviewBuilder(SceneBuilder):
    """A `SceneBuilder` for live preview (see the module docstring)."""

    def _target(self, id_data, action_name: str) -> DirectTarget:
        return DirectTarget(id_data)

    def on_frames(self, msgs: list[dict], budget_s: float | None = None) -> int:
        if not msgs:
            return 0
        # only the newest frame; setting the values tags the objects, so the viewport redraws them
        super().on_frames(list(msgs)[-1:], budget_s=budget_s)
        return len(msgs)
