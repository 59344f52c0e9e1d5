"""Long text in a sidebar panel: wrapped at spaces to the region's width, never clipped mid-word.

Blender labels do not wrap; a label wider than the panel is cut off with an ellipsis. The width in
characters is estimated from the region's width in pixels and the UI scale (about 7 px per character
of the default font at scale 1, less the icon column); a word longer than a line (a file path) is
split over lines rather than cut.
"""
from __future__ import annotations

import textwrap

import bpy

PX_PER_CHAR = 7.0  # average width of a character of Blender's UI font at scale 1.0
ICON_PX = 40  # the icon and the panel's margins


def chars_per_line(context, minimum: int = 20) -> int:
    """How many characters fit on one label of `context.region` (40 when there is no region)."""
    region = getattr(context, "region", None)
    if region is None or not region.width:
        return 40
    scale = getattr(getattr(context, "preferences", None), "view", None)
    scale = getattr(scale, "ui_scale", 1.0) or 1.0
    return max(minimum, int((region.width - ICON_PX * scale) / (PX_PER_CHAR * scale)))


def wrap(text: str, width: int) -> list[str]:
    """`text` as lines of at most `width` characters, split at spaces (long words split too)."""
    return textwrap.wrap(text, width=max(1, width), break_long_words=True, break_on_hyphens=False) or [""]


def wrapped_labels(layout: bpy.types.UILayout, context, text: str, icon: str = "NONE") -> None:
    """`text` as consecutive labels: the first with `icon`, the rest indented to match it."""
    for i, line in enumerate(wrap(text, chars_per_line(context))):
        layout.label(text=line, icon=icon if i == 0 or icon == "NONE" else "BLANK1")
