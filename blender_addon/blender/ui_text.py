"""Long text in a sidebar panel: wrapped at spaces to the region's width, never clipped mid-word.

Blender labels do not wrap; a label wider than the panel is cut off with an ellipsis. Lines are
measured with Blender's UI font (`blf`, the size of the UI style's widget text) against the region's
width less what is not text: the sidebar's tab column, panel and box padding and the icon (measured
in Blender 4.3's GUI: a 291 px sidebar shows 192 px of a boxed label's text). A word longer than a
line (a file path) is split over lines rather than cut.
"""
from __future__ import annotations

from typing import Callable

import bpy

MARGIN_PX = 100  # sidebar tabs, panel and box padding and the icon, at UI scale 1
SIDEBAR_PX = 291  # the default sidebar's width at UI scale 1 (when there is no region to ask)
FONT_POINTS = 11  # Blender's default widget text size
BUTTON_PX = 28  # an icon-only button beside a label, at UI scale 1


def _scale(context) -> float:
    system = getattr(getattr(context, "preferences", None), "system", None)
    return float(getattr(system, "ui_scale", 1.0) or 1.0)


def label_width_px(context, reserve_px: float = 0.0) -> float:
    """Pixels of text one label of `context.region` shows (the default sidebar's when there is no region),
    less `reserve_px` (at UI scale 1) taken by buttons on the same row."""
    scale = _scale(context)
    region = getattr(context, "region", None)
    width = region.width if region is not None and region.width else SIDEBAR_PX * scale
    return max(60.0 * scale, width - (MARGIN_PX + reserve_px) * scale)


def text_px(text: str, scale: float = 1.0) -> float:
    """Width in pixels of `text` in Blender's UI font at `scale`."""
    import blf

    blf.size(0, FONT_POINTS * scale)
    return blf.dimensions(0, text)[0]


def wrap(text: str, width: float, measure: Callable[[str], float] = len) -> list[str]:
    """`text` as lines no wider than `width` in `measure`'s unit (characters by default), split at
    spaces; a word wider than a line is split over lines."""
    lines: list[str] = []
    line = ""
    for word in text.split():
        candidate = f"{line} {word}" if line else word
        if measure(candidate) <= width:
            line = candidate
            continue
        if line:
            lines.append(line)
        while len(word) > 1 and measure(word) > width:
            cut = 1  # the longest prefix that fits (widths grow with length: stop at the first that does not)
            while cut + 1 < len(word) and measure(word[:cut + 1]) <= width:
                cut += 1
            lines.append(word[:cut])
            word = word[cut:]
        line = word
    if line:
        lines.append(line)
    return lines or [""]


def lines_for(context, text: str, reserve_px: float = 0.0) -> list[str]:
    """`text` wrapped to what one label of `context.region` shows (less `reserve_px`, see label_width_px)."""
    scale = _scale(context)
    return wrap(text, label_width_px(context, reserve_px), lambda s: text_px(s, scale))


def wrapped_labels(layout: bpy.types.UILayout, context, text: str, icon: str = "NONE") -> None:
    """`text` as consecutive labels: the first with `icon`, the rest indented to match it."""
    for i, line in enumerate(lines_for(context, text)):
        layout.label(text=line, icon=icon if i == 0 or icon == "NONE" else "BLANK1")
