"""Motion clean-up in Blender: the "Clean-up" settings and panel section, the operator that re-applies it
to one imported person, and the hooks the file import and the live run call.

The refinement itself is bpy-free (`core.motion`); this module only moves its results into the scene:
- file import (`refine_messages` before the builder, `after_import` after it): the job is refined
  offline, imported like any other, and the armatures get the foot contacts as keyed custom
  properties (`core.motion.scene_keys.CONTACT_PROPERTIES`, CONSTANT keys). The collection remembers the
  source file, the W -> refined transform and the first frame, so a person can be refined again.
- live run (`LiveCleanup` wraps the scene builder): causal filters per frame; when the floor is found,
  an Empty "<collection> floor" parents every object of the job and gets ONE key holding the transform
  (earlier keys are never rewritten; the single key holds for the whole timeline).
"""
from __future__ import annotations

import logging
import os

import bpy
import numpy as np
from bpy.props import BoolProperty, EnumProperty, FloatProperty, PointerProperty

from ..core.motion import CleanupOptions, LiveRefiner, refine_job
from ..core.keyframes import CONSTANT, channel_keys
from ..core.motion.scene_keys import contact_keys, floor_matrix_blender, only_person
from .build_people import TRACK_ID, is_person
from .compat import AnimationTarget, fcurves_of
from .panel_base import SubPanel

log = logging.getLogger(__name__)

SOURCE_KEY, TRANSFORM_KEY, FRAME_START_KEY = "human3r_source", "human3r_from_raw", "human3r_frame_start"


class HUMAN3R_PG_cleanup(bpy.types.PropertyGroup):
    """Clean-up settings shared by Run and Import (scene.human3r_cleanup)."""

    enabled: BoolProperty(name="Clean Up Motion", default=True,
                          description="Ground the scene, smooth the motion and lock the feet on import and live runs")
    ground: EnumProperty(name="Ground", default="both", items=(
        ("both", "Points + Feet", "Floor from the scene points and the people's foot contacts"),
        ("points", "Scene Points", "Floor from the scene points only"),
        ("feet", "Feet", "Floor from the people's foot contacts only"),
        ("off", "Off", "Keep the model's world (the first camera's frame)")))
    smooth: FloatProperty(name="Smooth", default=1.0, min=0.0, max=4.0, step=10,
                          description="Smoothing strength (0 = off, 1 = default)")
    foot_lock: BoolProperty(name="Foot Lock", default=True,
                            description="Detect foot contacts, keep planted feet still and out of the floor")
    smooth_camera: BoolProperty(name="Smooth Camera", default=False,
                                description="Also smooth the camera path (it then matches the footage less exactly)")

    def options(self) -> dict | None:
        """The `CleanupOptions` map, or None when clean-up is off."""
        if not self.enabled:
            return None
        return CleanupOptions(ground=self.ground, smooth=float(self.smooth), foot_lock=bool(self.foot_lock),
                              smooth_camera=bool(self.smooth_camera)).to_dict()


def cleanup_options(context) -> dict | None:
    settings = getattr(context.scene, "human3r_cleanup", None)
    return settings.options() if settings is not None else None


def refine_messages(header, frames, tracks, end, cleanup: dict | None):
    """Refined (header, frames, tracks, end, report) for an import; unchanged with report None when off or
    when the file is already refined."""
    if cleanup is None or header is None or header.get("refinement"):
        return header, frames, tracks, end, None
    result = refine_job(header, frames, tracks, end, cleanup)
    return result.header, result.frames, result.tracks, result.end, result.report


def after_import(builder, path: str, frames: list[dict], header: dict) -> None:
    """Remember the source and the alignment on the collection; key the contact properties."""
    coll = builder.collection
    if coll is None:
        return
    coll[SOURCE_KEY] = os.fspath(path)
    coll[FRAME_START_KEY] = int(builder.options.scene_frame_start)
    from_raw = (header.get("conventions") or {}).get("from_raw")
    if from_raw is not None:
        coll[TRANSFORM_KEY] = [float(v) for v in np.asarray(from_raw, np.float64).ravel()]
    for pid, arm in builder.armatures.items():
        _key_contacts(arm, frames, pid, builder.options.scene_frame_start)


def _key_contacts(arm: bpy.types.Object, frames: list[dict], pid: int, frame_start: int) -> None:
    keys = contact_keys(frames, pid, frame_start)
    if not keys:
        return
    for k in keys:
        arm[k.data_path[2:-2]] = 0
    AnimationTarget(arm, f"{arm.name} action").apply(keys)


def _source_collection(obj: bpy.types.Object) -> bpy.types.Collection | None:
    for coll in obj.users_collection:
        if SOURCE_KEY in coll:
            return coll
    return None


def reapply_person(arm: bpy.types.Object, cleanup: dict | None) -> str:
    """Refine the source file again with `cleanup` and rebuild `arm`'s keys in bulk (same world as the
    rest of its collection). Returns a one-line summary; raises ValueError with what to do on failure."""
    from ..core.resultfile import read_result
    from ..core.scene_plan import ImportOptions, ScenePlanner

    coll = _source_collection(arm)
    if coll is None:
        raise ValueError("This person was not imported from a result file with clean-up; re-import the .h3r")
    path = coll[SOURCE_KEY]
    if not os.path.isfile(path):
        raise ValueError(f"The result file {path} is gone; re-import it to refine this person")
    pid = int(arm[TRACK_ID])
    contents = read_result(path)
    if contents.header is None:
        raise ValueError(f"{path} has no header")
    given = np.asarray(coll[TRANSFORM_KEY], np.float64).reshape(4, 4) if TRANSFORM_KEY in coll else np.eye(4)
    opts = dict(cleanup or {"ground": "off", "smooth": 0.0, "foot_lock": False})
    opts["ground"] = "both"  # keep the scene's world: the given transform is used, nothing re-estimated
    result = refine_job(contents.header, contents.frames, contents.tracks, contents.end, opts, transform=given)
    frame_start = int(coll.get(FRAME_START_KEY, 1))
    planner = ScenePlanner(ImportOptions(scene_frame_start=frame_start, import_camera=False, import_meshes=False,
                                         point_mode="NONE", set_scene=False, expressions=False),
                           tracks=result.tracks)
    planner.header(result.header)
    plan = planner.frames(only_person(result.frames, pid))
    keys = plan.people_keys.get(pid, [])
    target = AnimationTarget(arm, f"{arm.name} action")
    for fc in fcurves_of(arm):  # replace every bone and contact curve in one go
        if fc.data_path.startswith("pose.bones") or fc.data_path.startswith('["h3r_contact_'):
            target.remove(fc.data_path, fc.array_index)
    target = AnimationTarget(arm, f"{arm.name} action")
    n = target.apply(keys)
    _key_contacts(arm, result.frames, pid, frame_start)
    reasons = result.report.get("reasons", [])
    return f"Re-applied clean-up to {arm.name}: {n} keys" + (f" ({reasons[0]})" if reasons else "")


class HUMAN3R_OT_reapply_cleanup(bpy.types.Operator):
    """Refine the active person again with the Clean-up settings (no new inference; rebuilds its keys)"""

    bl_idname = "human3r.reapply_cleanup"
    bl_label = "Re-apply to Person"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        return is_person(context.active_object)

    def execute(self, context):
        try:
            message = reapply_person(context.active_object, cleanup_options(context))
        except ValueError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        except Exception as exc:  # keep Blender up, say what happened
            log.exception("re-applying clean-up failed")
            self.report({"ERROR"}, f"Re-applying clean-up failed: {type(exc).__name__}: {exc}")
            return {"CANCELLED"}
        self.report({"INFO"}, message)
        return {"FINISHED"}


class HUMAN3R_PT_cleanup(SubPanel, bpy.types.Panel):
    bl_label = "Clean-up"
    bl_idname = "HUMAN3R_PT_cleanup"

    def draw_header(self, context):
        settings = getattr(context.scene, "human3r_cleanup", None)
        if settings is not None:
            self.layout.prop(settings, "enabled", text="")

    def draw(self, context):
        settings = getattr(context.scene, "human3r_cleanup", None)
        if settings is None:
            return
        col = self.layout.column()
        col.active = settings.enabled
        col.prop(settings, "ground")
        col.prop(settings, "smooth", slider=True)
        col.prop(settings, "foot_lock")
        col.prop(settings, "smooth_camera")
        self.layout.operator(HUMAN3R_OT_reapply_cleanup.bl_idname, icon="FILE_REFRESH")


class LiveCleanup:
    """Scene-builder wrapper for a live run: causal clean-up per frame, the floor as one keyed transform."""

    def __init__(self, builder, cleanup: dict):
        self.builder = builder
        self.live = LiveRefiner(cleanup)
        self.floor: bpy.types.Object | None = None

    def __getattr__(self, name):
        return getattr(self.builder, name)

    def on_header(self, msg: dict):
        return self.builder.on_header(self.live.header(msg))

    def on_frames(self, msgs: list[dict], budget_s: float | None = None) -> int:
        refined = [self.live.frame(m) for m in msgs]
        n = self.builder.on_frames(refined, budget_s=budget_s)
        for m in refined:
            if "ground" in m:
                self._key_floor(m["ground"], int(m["index"]))
        self._parent_new()
        return n

    def pump(self, budget_s: float | None = None) -> bool:
        """Queued building (rigs made later in the batch) gets parented under the floor as it appears."""
        busy = self.builder.pump(budget_s)
        self._parent_new()
        return busy

    def on_track(self, msg: dict):
        return self.builder.on_track(msg)

    def on_end(self, msg):
        summary = self.builder.on_end(msg)
        self._parent_new()
        if self.live.reasons:
            summary.setdefault("warnings", []).extend(self.live.reasons[:5])
        return summary

    def _key_floor(self, ground: dict, index: int) -> None:
        coll = self.builder.collection
        if self.floor is None:
            self.floor = bpy.data.objects.new(f"{coll.name} floor", None)
            self.floor.empty_display_type = "PLAIN_AXES"
            coll.objects.link(self.floor)
        self.floor.matrix_world = _matrix(floor_matrix_blender(ground["from_raw"]))
        frame = np.array([float(self.builder.options.scene_frame_start + index)])
        keys = (channel_keys("location", frame, np.array([tuple(self.floor.location)]), CONSTANT)
                + channel_keys("rotation_euler", frame, np.array([tuple(self.floor.rotation_euler)]), CONSTANT))
        AnimationTarget(self.floor, f"{self.floor.name} action").apply(keys)  # the one key of the transform
        coll[TRANSFORM_KEY] = [float(v) for v in np.asarray(ground["from_raw"], np.float64).ravel()]
        self._parent_new()

    def _parent_new(self) -> None:
        if self.floor is None or self.builder.collection is None:
            return
        for ob in self.builder.collection.objects:
            if ob is not self.floor and ob.parent is None:
                world = ob.matrix_world.copy()
                ob.parent = self.floor
                ob.matrix_parent_inverse.identity()  # its own keys stay in the raw world, below the floor
                if ob.animation_data is None:
                    ob.matrix_basis = world


def _matrix(m: np.ndarray):
    from mathutils import Matrix
    return Matrix([list(map(float, row)) for row in m])


CLASSES = (HUMAN3R_PG_cleanup, HUMAN3R_OT_reapply_cleanup, HUMAN3R_PT_cleanup)


def attach() -> None:
    bpy.types.Scene.human3r_cleanup = PointerProperty(type=HUMAN3R_PG_cleanup)


def detach() -> None:
    if hasattr(bpy.types.Scene, "human3r_cleanup"):
        del bpy.types.Scene.human3r_cleanup
