"""Sidebar section "Retarget": source person, target armature, preset, in-place, Retarget, and the bone map list."""
from __future__ import annotations

import bpy

from .panel_base import SubPanel
from .retarget_ops import source_person


class HUMAN3R_UL_bone_map(bpy.types.UIList):
    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index=0):
        row = layout.row(align=True)
        row.label(text=item.target, icon="BONE_DATA")
        row.prop(item, "source", text="", emboss=True)


class HUMAN3R_PT_retarget(SubPanel, bpy.types.Panel):
    bl_label = "Retarget"

    def draw(self, context):
        layout = self.layout
        s = context.scene.human3r_retarget
        layout.prop(s, "source")
        source = source_person(context)
        if s.source is None and source is not None:
            layout.label(text=f"Using the active person: {source.name}", icon="INFO")
        layout.prop(s, "target")
        layout.prop(s, "preset")
        col = layout.column()  # stacked: side by side they clip to "Keep foot con…" in the default sidebar
        col.prop(s, "in_place")
        col.prop(s, "keep_contacts")
        row = layout.row()
        row.scale_y = 1.3
        row.enabled = source is not None and s.target is not None
        row.operator("human3r.retarget", icon="ARMATURE_DATA")
        box = layout.box()
        box.label(text="Bone map (target bone → SMPL-X joint)")
        box.template_list("HUMAN3R_UL_bone_map", "", s, "entries", s, "active", rows=6)
        box.prop(s, "hips", text="Hips")
        box.operator("human3r.bone_map_fill", icon="PRESET")
        row = box.row(align=True)
        row.operator("human3r.bone_map_load", icon="FILEBROWSER", text="Load…")
        row.operator("human3r.bone_map_save", icon="FILE_TICK", text="Save…")


CLASSES = (HUMAN3R_UL_bone_map, HUMAN3R_PT_retarget)
