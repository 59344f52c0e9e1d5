"""Export one person (armature + skinned body) or the camera through Blender's FBX, BVH and glTF exporters.

What the exporters need that the imported scene does not give them as is:
- One action per rig, the right one bound: only the exported objects are selected and the exporters
  are told to write the active action only (FBX: no all-actions/NLA baking; glTF: ACTIVE_ACTIONS), so
  other people's or the camera's actions never land on this rig.
- Hidden frames: people absent from a frame are hidden by drivers on hide_viewport/hide_render (no
  transform channel, so every exporter writes a full-size rig; the pose holds while absent). Blender's
  exporters skip objects that are unselectable or hidden at the current frame, so the exported objects'
  visibility drivers are muted and the objects shown for the duration, then restored, also when the
  exporter fails.
- Time: FBX files are exact at NTSC rates (TimeMode, KeyTime in FBX ticks); Blender's glTF exporter
  writes frame / (fps · fps_base), so the written times are rescaled by fps_base² to frame / true rate;
  BVH writes Frame Time = fps_base / fps and is frame exact (re-import it as Z up).
Settings: metres, Y-up files (FBX -Z forward / Y up, which Unity, UE5 and Maya read), no leaf bones,
every frame keyed (FBX key reduction moved a jittery motion by up to 4 mm), scene frame rate.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass

import addon_utils
import bpy
import numpy as np

from ..core.export.gltf_time import scale_animation_times
from . import compat
from .build_people import shown

FORMATS = {"FBX": ".fbx", "BVH": ".bvh", "GLB": ".glb", "GLTF": ".gltf"}
_ADDONS = {"FBX": "io_scene_fbx", "BVH": "io_anim_bvh", "GLB": "io_scene_gltf2", "GLTF": "io_scene_gltf2"}


class ExportError(Exception):
    """An export that cannot run; the message says what to fix."""


@dataclass
class ExportReport:
    path: str
    frames: tuple[int, int]
    fps: float


def check_path(path: str, fmt: str) -> str:
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    path = bpy.path.abspath(path)
    if not path.lower().endswith(FORMATS[fmt]):
        path += FORMATS[fmt]
    folder = os.path.dirname(path) or "."
    if not os.path.isdir(folder):
        raise ExportError(f"folder {folder} does not exist; pick an existing folder")
    if not os.access(folder, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise ExportError(f"cannot write to {path}; pick a folder you can write to")
    return path


def _frame_range(obj) -> tuple[int, int]:
    curves = compat.fcurves_of(obj) or (compat.fcurves_of(obj.data) if obj.data is not None else [])
    if not curves:
        scene = bpy.context.scene
        return scene.frame_start, scene.frame_end
    return (int(round(min(fc.range()[0] for fc in curves))), int(round(max(fc.range()[1] for fc in curves))))


class _ExportState:
    """Select only `objects` (active: the first), shown (`build_people.shown`), and restore everything
    afterwards."""

    def __init__(self, objects):
        self.objects = objects
        self.shown = shown(objects)

    def __enter__(self):
        vl = bpy.context.view_layer
        self.selected = [o for o in vl.objects if o.select_get()]
        self.active = vl.objects.active
        if self.active is not None and self.active.mode != "OBJECT":
            bpy.ops.object.mode_set(mode="OBJECT")
        for o in self.selected:
            o.select_set(False)
        for o in self.objects:
            if o.name not in vl.objects:
                raise ExportError(f"{o.name!r} is not in the active view layer; show its collection to export it")
        self.shown.__enter__()
        for o in self.objects:
            o.select_set(True)
        vl.objects.active = self.objects[0]
        return self

    def __exit__(self, *exc):
        self.shown.__exit__(None, None, None)
        vl = bpy.context.view_layer
        for o in vl.objects:
            o.select_set(o in self.selected)
        vl.objects.active = self.active
        return False


def _run_exporter(fmt: str, path: str, frames: tuple[int, int], object_types: set[str]) -> None:
    addon_utils.enable(_ADDONS[fmt], default_set=False)
    scene = bpy.context.scene
    old_range = scene.frame_start, scene.frame_end
    scene.frame_start, scene.frame_end = frames
    try:
        if fmt == "FBX":
            result = bpy.ops.export_scene.fbx(
                filepath=path, use_selection=True, object_types=object_types, add_leaf_bones=False,
                use_armature_deform_only=False, bake_anim=True, bake_anim_use_all_bones=True,
                bake_anim_use_nla_strips=False, bake_anim_use_all_actions=False,
                bake_anim_force_startend_keying=True, bake_anim_simplify_factor=0.0, axis_forward="-Z", axis_up="Y",
                apply_scale_options="FBX_SCALE_ALL", mesh_smooth_type="FACE")
        elif fmt == "BVH":
            result = bpy.ops.export_anim.bvh(filepath=path, frame_start=frames[0], frame_end=frames[1],
                                             rotate_mode="NATIVE", root_transform_only=False)
        else:
            result = bpy.ops.export_scene.gltf(
                filepath=path, export_format="GLB" if fmt == "GLB" else "GLTF_SEPARATE", use_selection=True,
                export_animations=True, export_animation_mode="ACTIVE_ACTIONS", export_force_sampling=True,
                export_frame_range=True, export_skins=True, export_cameras="CAMERA" in object_types,
                export_yup=True, export_def_bones=False,
                export_anim_single_armature=False)  # else every armature action of the file is added
    finally:
        scene.frame_start, scene.frame_end = old_range
    if result != {"FINISHED"}:
        raise ExportError(f"Blender's {fmt} exporter did not finish ({result})")
    base = scene.render.fps_base
    if fmt in ("GLB", "GLTF") and abs(base - 1.0) > 1e-9:
        scale_animation_times(path, base * base)


def _write_via_temp(path: str, write) -> None:
    """Run write(temp path) in a temporary folder beside `path`, then move its files into place: a failed
    exporter leaves no partial file (and keeps an older file at `path`)."""
    folder = os.path.dirname(path)
    tmpdir = tempfile.mkdtemp(prefix=".human3r-export-", dir=folder)
    try:
        write(os.path.join(tmpdir, os.path.basename(path)))
        for name in os.listdir(tmpdir):  # the file (and a .gltf's .bin)
            os.replace(os.path.join(tmpdir, name), os.path.join(folder, name))
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def export_person(arm: bpy.types.Object, path: str, fmt: str, with_mesh: bool = True) -> ExportReport:
    """Write one person's rig (+ its skinned meshes unless BVH or with_mesh is False) to `path`."""
    if arm is None or arm.type != "ARMATURE":
        kind = "nothing" if arm is None else f"{arm.name!r} ({arm.type.lower()})"
        raise ExportError(f"select a person's armature to export, not {kind}")
    path = check_path(path, fmt)
    meshes = [c for c in arm.children if c.type == "MESH"] if with_mesh and fmt != "BVH" else []
    frames = _frame_range(arm)
    with _ExportState([arm, *meshes]):
        _write_via_temp(path, lambda tmp: _run_exporter(fmt, tmp, frames, {"ARMATURE", "MESH"}))
    scene = bpy.context.scene
    return ExportReport(path, frames, scene.render.fps / scene.render.fps_base)


def export_camera(cam: bpy.types.Object, path: str, fmt: str) -> ExportReport:
    """Write the animated camera (transform, lens) to FBX or glTF/GLB."""
    if cam is None or cam.type != "CAMERA":
        raise ExportError("select the camera object to export it")
    if fmt == "BVH":
        raise ExportError("BVH holds skeletons only; export the camera as FBX or glTF")
    path = check_path(path, fmt)
    frames = _frame_range(cam)
    with _ExportState([cam]):
        _write_via_temp(path, lambda tmp: _run_exporter(fmt, tmp, frames, {"CAMERA"}))
    scene = bpy.context.scene
    return ExportReport(path, frames, scene.render.fps / scene.render.fps_base)


def scale_key_frames(actions, factor: float, offset: float = 0.0) -> int:
    """f <- offset + (f - offset) · factor for keys and handles of every F-curve of `actions` (all slots);
    returns the number of curves changed. Bulk foreach_get/foreach_set, then one update per curve."""
    import numpy as np

    changed = 0
    for action in actions:
        for fc in compat.action_fcurves(action):
            n = len(fc.keyframe_points)
            for prop in ("co", "handle_left", "handle_right"):
                co = np.empty(2 * n, dtype=np.float64)
                fc.keyframe_points.foreach_get(prop, co)
                co[0::2] = offset + (co[0::2] - offset) * factor
                fc.keyframe_points.foreach_set(prop, co)
            fc.update()
            changed += 1
    return changed


def fix_ntsc_fbx_keys(actions, fps_base: float, offset: float = 1.0) -> int:
    """Blender's FBX importer converts key times with the integer fps, so at NTSC rates key k lands on
    offset + (k - offset)·fps_base; this puts them back on whole frames."""
    return scale_key_frames(actions, 1.0 / fps_base, offset)


def fix_gltf_import_times(actions, fps_base: float) -> int:
    """Blender's glTF importer reads frame = time · fps · fps_base; for a file with true times
    (frame / (fps / fps_base), as this add-on writes them) that is frame · fps_base²: scale back."""
    if abs(fps_base - 1.0) < 1e-12:
        return 0
    return scale_key_frames(actions, 1.0 / (fps_base * fps_base))


def import_fbx_motion(path: str) -> list[bpy.types.Object]:
    """Import an FBX with Blender's importer so that a key at file time t lands on frame t · rate (the
    frame it was exported from), and put NTSC keys back on whole frames. Returns the new objects."""
    addon_utils.enable("io_scene_fbx", default_set=False)
    before = set(bpy.data.objects)
    actions_before = set(bpy.data.actions)
    result = bpy.ops.import_scene.fbx(filepath=path, anim_offset=0.0)  # file time t -> frame t · rate
    if result != {"FINISHED"}:
        raise ExportError(f"Blender's FBX importer did not finish ({result})")
    base = bpy.context.scene.render.fps_base
    if abs(base - 1.0) > 1e-9:
        fix_ntsc_fbx_keys([a for a in bpy.data.actions if a not in actions_before], base, 0.0)
    return [o for o in bpy.data.objects if o not in before]
