"""File operators for exports: "Export person…", "Export camera…" and "Import FBX motion" (NTSC fix-up).

Script use: bpy.ops.human3r.export_person(object="clip person 1", filepath="/out/p1.fbx", format='FBX').
Formats: FBX, BVH (skeleton only), GLB, glTF (separate .gltf + .bin). Settings are fixed to the ones that
round-trip (see `export.py`); the frame rate is the scene's.
"""
from __future__ import annotations

import bpy
from bpy.props import EnumProperty, StringProperty
from bpy_extras.io_utils import ExportHelper, ImportHelper

from . import export
from .panel_base import SubPanel

FORMAT_ITEMS = [("FBX", "FBX", "Armature + skinned body (Unity, Unreal, Maya)"),
                ("GLB", "glTF binary (.glb)", "Armature + skinned body, one file"),
                ("GLTF", "glTF separate (.gltf + .bin)", "Armature + skinned body, JSON + binary"),
                ("BVH", "BVH", "Skeleton motion only")]


class _ExportBase(ExportHelper):
    filename_ext = ".fbx"
    object: StringProperty(name="Object", description="Name of the object to export (default: the active one)")
    format: EnumProperty(name="Format", items=FORMAT_ITEMS, default="FBX")

    def _object(self, context):
        return bpy.data.objects.get(self.object) if self.object else context.active_object

    def check(self, context):
        self.filename_ext = export.FORMATS[self.format]
        return super().check(context)


class HUMAN3R_OT_export_person(bpy.types.Operator, _ExportBase):
    """Export one person's armature (and skinned body) with only its own motion"""

    bl_idname = "human3r.export_person"
    bl_label = "Export person…"

    def execute(self, context):
        try:
            report = export.export_person(self._object(context), self.filepath, self.format)
        except export.ExportError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, f"Exported frames {report.frames[0]}-{report.frames[1]} at {report.fps:.3f} fps "
                              f"to {report.path}")
        return {"FINISHED"}


class HUMAN3R_OT_export_camera(bpy.types.Operator, _ExportBase):
    """Export the animated camera (FBX or glTF)"""

    bl_idname = "human3r.export_camera"
    bl_label = "Export camera…"

    def execute(self, context):
        try:
            report = export.export_camera(self._object(context), self.filepath, self.format)
        except export.ExportError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, f"Exported the camera to {report.path}")
        return {"FINISHED"}


class HUMAN3R_OT_import_fbx_motion(bpy.types.Operator, ImportHelper):
    """Import an FBX with Blender's importer and put keys back on whole frames at NTSC rates (29.97, 23.976, 59.94)"""

    bl_idname = "human3r.import_fbx_motion"
    bl_label = "Import FBX motion"
    bl_options = {"REGISTER", "UNDO"}
    filename_ext = ".fbx"
    filter_glob: StringProperty(default="*.fbx", options={"HIDDEN"})

    def execute(self, context):
        try:
            objects = export.import_fbx_motion(self.filepath)
        except (export.ExportError, RuntimeError) as exc:
            self.report({"ERROR"}, f"FBX not imported: {exc}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Imported {len(objects)} object(s) from {self.filepath}")
        return {"FINISHED"}


class HUMAN3R_PT_export(SubPanel, bpy.types.Panel):
    bl_label = "Export"

    def draw(self, context):
        layout = self.layout
        obj = context.active_object
        col = layout.column(align=True)
        row = col.row()
        row.enabled = obj is not None and obj.type == "ARMATURE"
        row.operator("human3r.export_person", icon="ARMATURE_DATA")
        row = col.row()
        row.enabled = obj is not None and obj.type == "CAMERA"
        row.operator("human3r.export_camera", icon="CAMERA_DATA")
        col.operator("human3r.import_fbx_motion", icon="IMPORT")
        if obj is None or obj.type not in {"ARMATURE", "CAMERA"}:
            layout.label(text="Select a person's armature or the camera", icon="INFO")


CLASSES = (HUMAN3R_OT_export_person, HUMAN3R_OT_export_camera, HUMAN3R_OT_import_fbx_motion, HUMAN3R_PT_export)
