"""The placement every Human3R panel shares (a module of its own, so that feature modules can
subclass it without importing the main panel and what it draws)."""
from __future__ import annotations

import bpy


class SidebarPanel:
    """Where every Human3R panel lives: the 3D View's sidebar, tab "Human3R"."""
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Human3R"


class SubPanel(SidebarPanel):
    """A closed-by-default section under the main Human3R panel (feature modules use it too)."""
    bl_parent_id = "HUMAN3R_PT_main"
    bl_options = {"DEFAULT_CLOSED"}


def redraw_sidebars() -> None:
    """Redraw every 3D View (where these panels live): state that changes outside a draw, shown now."""
    for window in getattr(bpy.context.window_manager, "windows", ()):
        for area in window.screen.areas:
            if area.type == "VIEW_3D":
                area.tag_redraw()
