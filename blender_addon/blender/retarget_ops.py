"""Retarget operators and settings: `human3r.retarget` plus the editable bone-map list and its JSON file.

`bpy.ops.human3r.retarget(source="clip person 1", target="Armature", preset='AUTO', in_place=False)`
works from scripts (object names) and from the panel. preset='CUSTOM' uses the bone map edited in the
panel's list (`scene.human3r_retarget.entries`), filled from a preset or loaded from a JSON file.
"""
from __future__ import annotations

import bpy
from bpy.props import BoolProperty, CollectionProperty, EnumProperty, IntProperty, PointerProperty, StringProperty
from bpy_extras.io_utils import ExportHelper, ImportHelper

from ..core.retarget.bonemaps import AUTO, PRESETS, BoneMap, BoneMapError, load_map, preset_map, save_map
from .build_people import is_person
from .build_retarget import RetargetError, retarget_objects

PRESET_ITEMS = [(AUTO, "Auto", "Detect the preset from the target's bone names")] + [
    (p.name, p.label, f"Bone names of {p.label}") for p in PRESETS.values()] + [
    ("CUSTOM", "Custom map", "The bone map edited in the list below (fill it from a preset or load a JSON file)")]


def _is_armature(_self, obj):
    return obj.type == "ARMATURE"


class HUMAN3R_PG_bone_pair(bpy.types.PropertyGroup):
    target: StringProperty(name="Target bone", description="Bone of the target rig")
    source: StringProperty(name="SMPL-X joint", description="SMPL-X joint the bone follows (empty: not driven)")


class HUMAN3R_PG_retarget(bpy.types.PropertyGroup):
    source: PointerProperty(name="Source", type=bpy.types.Object, poll=_is_armature,
                            description="The imported person (SMPL-X armature) whose motion is copied")
    target: PointerProperty(name="Target", type=bpy.types.Object, poll=_is_armature,
                            description="Your character's armature; gets a new action")
    preset: EnumProperty(name="Preset", items=PRESET_ITEMS, default=AUTO)
    in_place: BoolProperty(name="In place", default=False,
                           description="Keep the character over its origin (drop horizontal root motion)")
    keep_contacts: BoolProperty(name="Keep foot contacts", default=True,
                                description="Shift the root so that planted feet stay planted on the character")
    hips: StringProperty(name="Hips bone", description="Target bone that carries the root translation")
    entries: CollectionProperty(type=HUMAN3R_PG_bone_pair)
    active: IntProperty(default=0)


def source_person(context):
    """The person to copy from: the Source field, else the active object when it is an imported person
    (the usual flow: click a person in the viewport, pick your character, Retarget)."""
    chosen = context.scene.human3r_retarget.source
    if chosen is not None:
        return chosen
    return context.active_object if is_person(context.active_object) else None


def custom_map(settings) -> BoneMap:
    bones = {e.target: e.source for e in settings.entries if e.target and e.source}
    if not bones:
        raise BoneMapError("the custom bone map is empty; fill it from a preset or load a JSON file")
    return BoneMap(bones, settings.hips or None, [], "CUSTOM")


def _fill(settings, bone_map: BoneMap) -> None:
    settings.entries.clear()
    for target, source in bone_map.bones.items():
        e = settings.entries.add()
        e.target, e.source = target, source
    settings.hips = bone_map.hips or ""


class HUMAN3R_OT_retarget(bpy.types.Operator):
    """Copy a person's motion onto another armature as a new action (rest poses and proportions handled)"""

    bl_idname = "human3r.retarget"
    bl_label = "Retarget"
    bl_options = {"REGISTER", "UNDO"}

    source: StringProperty(name="Source", description="Name of the person's armature object")
    target: StringProperty(name="Target", description="Name of the character's armature object")
    preset: EnumProperty(name="Preset", items=PRESET_ITEMS, default=AUTO)
    in_place: BoolProperty(name="In place", default=False)
    keep_contacts: BoolProperty(name="Keep foot contacts", default=True)
    map_path: StringProperty(name="Bone map", subtype="FILE_PATH",
                             description="JSON bone map to use instead of the preset")

    def invoke(self, context, event):
        s = context.scene.human3r_retarget
        source = source_person(context)
        self.source = source.name if source else ""
        self.target = s.target.name if s.target else ""
        self.preset, self.in_place, self.keep_contacts = s.preset, s.in_place, s.keep_contacts
        return self.execute(context)

    def execute(self, context):
        # empty names: the panel's choice (called from a script or in the background, invoke is skipped)
        source = bpy.data.objects.get(self.source) if self.source else source_person(context)
        target = bpy.data.objects.get(self.target) if self.target else context.scene.human3r_retarget.target
        if source is None or target is None:
            missing = self.source if source is None else self.target
            role = "source person" if source is None else "target armature"
            what = f"no object named {missing!r}" if missing else f"no {role}"
            self.report({"ERROR"}, f"{what}; pick the source person (or click one) and the target armature")
            return {"CANCELLED"}
        try:
            bone_map = None
            if self.map_path:
                bone_map = load_map(bpy.path.abspath(self.map_path))
            elif self.preset == "CUSTOM":
                bone_map = custom_map(context.scene.human3r_retarget)
            report = retarget_objects(source, target, "AUTO" if self.preset == "CUSTOM" else self.preset, bone_map,
                                      self.in_place, self.keep_contacts)
        except (RetargetError, BoneMapError, OSError) as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        notable = report.unmapped_joints or report.missing_bones or report.resampled or report.name_taken
        self.report({"WARNING"} if notable else {"INFO"}, report.message()
                    + (f"; bones the preset names but {target.name!r} lacks: {', '.join(report.missing_bones)}"
                       if report.missing_bones else ""))
        return {"FINISHED"}


class HUMAN3R_OT_bone_map_fill(bpy.types.Operator):
    """Fill the bone-map list from the chosen preset (Auto: detected) for the target armature"""

    bl_idname = "human3r.bone_map_fill"
    bl_label = "Fill from preset"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        s = context.scene.human3r_retarget
        if s.target is None:
            self.report({"ERROR"}, "pick the target armature first")
            return {"CANCELLED"}
        try:
            bm = preset_map(AUTO if s.preset == "CUSTOM" else s.preset, [b.name for b in s.target.data.bones])
        except BoneMapError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        _fill(s, bm)
        s.preset = "CUSTOM"
        return {"FINISHED"}


class HUMAN3R_OT_bone_map_save(bpy.types.Operator, ExportHelper):
    """Save the bone-map list as a JSON file to share or reuse"""

    bl_idname = "human3r.bone_map_save"
    bl_label = "Save bone map"
    filename_ext = ".json"
    filter_glob: StringProperty(default="*.json", options={"HIDDEN"})

    def execute(self, context):
        try:
            save_map(custom_map(context.scene.human3r_retarget), self.filepath)
        except (BoneMapError, OSError) as exc:
            self.report({"ERROR"}, f"bone map not saved: {exc}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Saved bone map to {self.filepath}")
        return {"FINISHED"}


class HUMAN3R_OT_bone_map_load(bpy.types.Operator, ImportHelper):
    """Load a JSON bone map into the list (preset becomes Custom)"""

    bl_idname = "human3r.bone_map_load"
    bl_label = "Load bone map"
    bl_options = {"REGISTER", "UNDO"}
    filter_glob: StringProperty(default="*.json", options={"HIDDEN"})

    def execute(self, context):
        try:
            bm = load_map(self.filepath)
        except (BoneMapError, OSError) as exc:
            self.report({"ERROR"}, f"bone map not loaded: {exc}")
            return {"CANCELLED"}
        s = context.scene.human3r_retarget
        _fill(s, bm)
        s.preset = "CUSTOM"
        return {"FINISHED"}


CLASSES = (HUMAN3R_PG_bone_pair, HUMAN3R_PG_retarget, HUMAN3R_OT_retarget, HUMAN3R_OT_bone_map_fill,
           HUMAN3R_OT_bone_map_save, HUMAN3R_OT_bone_map_load)


def attach() -> None:
    bpy.types.Scene.human3r_retarget = PointerProperty(type=HUMAN3R_PG_retarget)


def detach() -> None:
    if hasattr(bpy.types.Scene, "human3r_retarget"):
        del bpy.types.Scene.human3r_retarget
