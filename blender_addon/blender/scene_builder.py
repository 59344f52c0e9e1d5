"""Builds the Blender scene of one Human3R job from its protocol messages, live or from a result file.

API (used by the live timer and the import operator; every method runs on Blender's main thread):

    builder = SceneBuilder(collection_name: str | None = None, options: ImportOptions | dict | None = None,
                           *, scene: bpy.types.Scene | None = None, tracks: list[dict] | None = None)
    builder.on_header(msg: dict) -> SetupPlan        collection, scene fps/fps_base, frame range, resolution
    builder.on_frames(msgs: list[dict], budget_s=None) -> int   frames planned; creates the camera and each
                                                     person's rig lazily, then appends keys: all of it, or for
                                                     about budget_s seconds with the rest queued
    builder.pump(budget_s=None) -> bool              apply queued work (True while some is left: `busy`)
    builder.on_track(msg: dict) -> None              robust betas: re-shapes that person's live rig
    builder.on_end(msg: dict | None) -> dict         scene cloud (done.scene_points), per-frame cloud, summary
    builder.summary -> dict                          counts, warnings, created object names

A result file goes through the same builder in `file_import.py` (`FileImport`, `import_result_file`).

`options` is `core.scene_plan.ImportOptions` (or a dict of its fields): scene_frame_start (Blender frame of
video frame 0, default 1), import_camera, video_background, import_meshes, point_mode
('ACCUMULATED' | 'PER_FRAME' | 'BOTH' | 'NONE'), point_radius, max_points, set_scene, collection_name,
expressions (expression shape keys, default on), pose_correctives (486 corrective shape keys, default off).

All conversions happen in the bpy-free planner (`core.scene_plan.ScenePlanner`); this module only
applies its plans: objects created in bulk, keys appended through `compat.AnimationTarget`.

Cost per `on_frames` call: new keys are appended, nothing is rebuilt. Measured (bpy 5.0.1, 2-core
machine, 4 people on 2,900-frame curves): ~23 ms CPU for a 1-frame batch, ~34 ms for 4 frames, ~47 ms for
8 — about 20 ms + 3.5 ms per frame, because Blender reallocates each F-curve's key array when keys are
added. A person's first appearance adds one armature + mesh (~30 ms), `on_track` re-shapes one rig
(edit mode, ~10-50 ms). Per-frame point clouds are collected in memory and become one object in
`on_end` (a mesh cannot grow in place without rewriting it).

Scene layout: collection named after the video (Blender adds .001 on re-import) holding the camera
"<video> camera" (video as background clip), per track id an armature "<video> person <id>" with the
skinned mesh "<video> person <id> body" as its child, and "<video> scene points" / "<video> frame points".
Rest pose: from the track's robust betas when `tracks` are known up front (file import), else from the
person's first frame; `on_track` later moves the bones/mesh to the robust shape (see scene_plan).
Absent people: hidden by drivers on hide_viewport/hide_render from a keyed custom property (see plan_people).
"""
from __future__ import annotations

import dataclasses
import time
from collections import deque

import bpy
from mathutils import Vector

from ..core.scene_plan import ImportOptions, ScenePlanner, SetupPlan
from . import build_camera, build_people, build_points, job_collections, plate_timing, render_footage
from .compat import AnimationTarget

RIGS_PER_UNIT = 4  # new rigs built in one unit of work (one edit-mode pass in the build scene)
# A budget below this (a live timer tick) plans and builds person by person: one unit plans one person
# (~1 ms) and builds its rig if new (~6-9 ms), the next keys it; larger budgets (file import) plan a
# batch at once and build rigs RIGS_PER_UNIT at a time, which is faster in total.
FINE_BUDGET_S = 0.05


def options_from(options: ImportOptions | dict | None) -> ImportOptions:
    """ImportOptions from the caller's object or map (an unknown name raises ValueError)."""
    if options is None:
        return ImportOptions()
    if isinstance(options, ImportOptions):
        return options
    return ImportOptions.from_dict(dict(options))


MOTION_FPS = "human3r_fps"  # custom property: frames per second of the imported motion (person and action)


class SceneBuilder:
    """Applies a job's messages to the scene (see the module docstring for the call sequence)."""

    def __init__(self, collection_name: str | None = None, options: ImportOptions | dict | None = None, *,
                 scene: bpy.types.Scene | None = None, tracks: list[dict] | None = None):
        self.options = options_from(options)
        if collection_name:
            self.options = dataclasses.replace(self.options, collection_name=collection_name)
        self.scene = scene or bpy.context.scene
        self.planner = ScenePlanner(self.options, tracks=tracks)
        self.setup: SetupPlan | None = None
        self.collection: bpy.types.Collection | None = None
        self.camera: bpy.types.Object | None = None
        self._plate: plate_timing.PlateTiming | None = None  # retimes the camera's background video
        self._camera_anim: AnimationTarget | None = None
        self._camera_data_anim: AnimationTarget | None = None
        self.armatures: dict[int, bpy.types.Object] = {}
        self.meshes: dict[int, bpy.types.Object | None] = {}
        self._anims: dict[int, AnimationTarget] = {}
        self._shape_anims: dict[int, AnimationTarget] = {}
        self._shape_sets: dict[int, object] = {}
        self.clouds: dict[str, bpy.types.Object] = {}
        self.warnings: list[str] = []
        self.replaced: list[str] = []  # earlier runs' collections this import replaced
        self.keys_written = 0
        self.summary: dict = {}
        self._factory: build_people.PeopleFactory | None = None  # made with the collection (on_header)
        self._queue: deque = deque()  # planned work not applied yet (callables, in order)
        self.frames_applied = 0  # frames whose keys are all in the scene
        self._camera_placed = False  # the camera's first keys are in (what blocks its view was checked)

    # ---------------------------------------------------------------------------------------------
    def on_header(self, msg: dict) -> SetupPlan:
        """Create the job's collection and set scene fps, frame range and resolution from the video."""
        setup = self.planner.header(msg)
        self.setup = setup
        self.warnings.extend(setup.warnings)
        # a re-run is named "clip v2" or replaces the earlier runs (never Blender's "clip.001" copies)
        setup.collection_name, self.replaced = job_collections.claim(setup.collection_name, self.options.rerun)
        self.collection = bpy.data.collections.new(setup.collection_name)
        self.scene.collection.children.link(self.collection)
        if self.options.set_scene:
            render = self.scene.render
            render.fps, render.fps_base = setup.fps, setup.fps_base
            if not self.options.keep_frame_range:  # the processed frames, not the whole video
                self.scene.frame_start = setup.range_start
                if setup.range_end is not None:
                    self.scene.frame_end = max(setup.range_end, setup.range_start)
            if setup.width > 0 and setup.height > 0:
                render.resolution_x, render.resolution_y = setup.width, setup.height
                render.resolution_percentage = 100
        return setup

    def on_frames(self, msgs: list[dict], budget_s: float | None = None) -> int:
        """Plan a batch of `frame` messages (in index order) and apply it: all of it (`budget_s` None), or
        for about `budget_s` seconds, leaving the rest queued for `pump()`. Returns the frames planned."""
        if self.setup is None:
            raise RuntimeError("on_frames() before on_header()")
        fine = budget_s is not None and budget_s < FINE_BUDGET_S
        plan = self.planner.frames(list(msgs), deferred=fine)
        self._queue.extend(self._person_units(plan) if fine else self._units(plan))
        self.pump(budget_s)
        return plan.frames

    @property
    def busy(self) -> bool:
        """True while planned work waits for `pump()` (the live session then holds back new messages)."""
        return bool(self._queue)

    def pump(self, budget_s: float | None = None) -> bool:
        """Apply queued work for about `budget_s` seconds (at least one unit; None: all of it).
        A unit is one person's keys of one batch, a few new rigs, or the camera's keys; under a live
        budget also one person's planning, one rig, or one step of the body template. A tick overshoots
        the budget by at most the unit it ends with (measured <= 8 ms, see FINE_BUDGET_S). Returns `busy`."""
        deadline = None if budget_s is None else time.perf_counter() + budget_s
        while self._queue:
            self._queue.popleft()()
            if deadline is not None and time.perf_counter() >= deadline:
                break
        return self.busy

    def _units(self, plan):
        """The plan as a sequence of units, in the order they must run (rigs before their keys)."""
        if plan.camera is not None:
            yield lambda: self._create_camera(plan.camera)
        for i in range(0, len(plan.new_people), RIGS_PER_UNIT):
            yield lambda people=plan.new_people[i:i + RIGS_PER_UNIT]: self._create_people(people)
        if plan.camera_object_keys or plan.camera_data_keys:
            yield lambda: self._key_camera(plan)
        for pid in dict.fromkeys([*plan.people_keys, *plan.shape_keys]):
            yield lambda pid=pid: self._key_person(pid, plan.people_keys.get(pid), plan.shape_keys.get(pid))
        yield lambda: self._frames_applied(plan)

    def _person_units(self, plan):
        """Like `_units`, person by person: plan one person (and build its rig if new), then key it."""
        if plan.camera is not None:
            yield lambda: self._create_camera(plan.camera)
        if plan.camera_object_keys or plan.camera_data_keys:
            yield lambda: self._key_camera(plan)
        for task in plan.people_tasks:
            yield lambda task=task: self._plan_person(task, plan)
            pid = task.track_id
            yield lambda pid=pid: self._key_person(pid, plan.people_keys.get(pid), plan.shape_keys.get(pid))
        yield lambda: self._frames_applied(plan)

    def _plan_person(self, task, plan) -> None:
        """Run one person's planning task and build the rig it planned (also any rig of this plan not built
        yet: the planner runs a batch's open tasks itself before planning the next batch)."""
        task.run()
        new = [person for person in plan.new_people if person.track_id not in self.armatures]
        if not new:
            return
        steps = self._people_factory().template_steps(new[0])  # the first body's template, step by step
        self._queue.extendleft([*steps, lambda: self._create_people(new)][::-1])

    def _create_camera(self, camera_plan) -> None:
        self.camera, warnings = build_camera.create_camera(camera_plan, self.collection, self.scene,
                                                           self.setup.frame_start, self.options.set_scene)
        self.warnings.extend(warnings)
        if self.options.footage_in_renders and self.options.video_background and self.options.set_scene:
            render_footage.show_footage_in_renders(self.scene, self.camera)
        self._camera_anim = self._target(self.camera, f"{camera_plan.name} action")
        # records the results' timing on the camera even without a clip (for Locate Video…)
        self._plate = plate_timing.PlateTiming(self.camera, render_footage.footage_clip(self.camera),
                                               self.setup.fps / self.setup.fps_base, self.setup.frame_start)

    def _create_people(self, people) -> None:
        for person, (arm, mesh) in zip(people, self._people_factory().create(people)):
            self.armatures[person.track_id] = arm
            self.meshes[person.track_id] = mesh
            self._anims[person.track_id] = target = self._target(arm, f"{person.name} action")
            # the motion's own frame rate, so a retarget into a scene at another rate can resample it
            arm[MOTION_FPS] = fps = self.setup.fps / self.setup.fps_base
            if getattr(target, "action", None) is not None:  # a live preview drives without an action
                target.action[MOTION_FPS] = fps
            if mesh is not None and mesh.data.shape_keys is not None:
                self._shape_sets[person.track_id] = person.shape_keys
                self._shape_anims[person.track_id] = self._target(mesh.data.shape_keys,
                                                                  f"{person.name} shape keys action")

    def _key_camera(self, plan) -> None:
        if self._plate is not None and plan.video_times is not None:
            self.keys_written += self._plate.key(plan.video_times)
        if plan.camera_object_keys:
            self.keys_written += self._camera_anim.apply(plan.camera_object_keys)
            if not self._camera_placed and self.options.set_scene:
                self._unblock_camera(plan.camera_object_keys)
            self._camera_placed = True
        if plan.camera_data_keys:
            if self._camera_data_anim is None:
                self._camera_data_anim = self._target(self.camera.data, f"{self.camera.data.name} lens action")
            self.keys_written += self._camera_data_anim.apply(plan.camera_data_keys)

    def _unblock_camera(self, keys) -> None:
        """Hide meshes of the user's scene that enclose the camera's first position (Blender's default cube
        sits at the origin, where the first camera is), so the camera view shows the result."""
        location = {k.index: float(k.co[1]) for k in keys if k.data_path == "location"}
        if len(location) != 3:
            return
        eye = Vector((location[0], location[1], location[2]))
        ours = set(self.collection.all_objects)
        for ob in self.scene.objects:
            if ob.type != "MESH" or ob in ours or ob.hide_get() or ob.hide_render:
                continue
            inside = ob.matrix_world.inverted_safe() @ eye
            corners = [Vector(c) for c in ob.bound_box]
            lo = Vector(tuple(min(c[i] for c in corners) for i in range(3)))
            hi = Vector(tuple(max(c[i] for c in corners) for i in range(3)))
            if all(lo[i] <= inside[i] <= hi[i] for i in range(3)):
                ob.hide_set(True)
                ob.hide_render = True
                self.warnings.append(f"'{ob.name}' enclosed the camera and was hidden (viewport and render)")

    def _key_person(self, pid: int, keys, shape_keys) -> None:
        if keys:
            self.keys_written += self._anims[pid].apply(keys)
        if shape_keys and pid in self._shape_anims:
            self.keys_written += self._shape_anims[pid].apply(shape_keys)

    def _frames_applied(self, plan) -> None:
        self.frames_applied += plan.frames
        if self._sets_range() and plan.last_frame is not None and plan.last_frame > self.scene.frame_end:
            self.scene.frame_end = plan.last_frame  # more frames than the header announced

    def _sets_range(self) -> bool:
        return self.options.set_scene and not self.options.keep_frame_range

    def _people_factory(self) -> build_people.PeopleFactory:
        if self._factory is None:
            self._factory = build_people.PeopleFactory(self.collection)
        return self._factory

    def _target(self, id_data, action_name: str):
        """Where an ID's keys go: its action (`live_preview.PreviewBuilder` sets values instead)."""
        return AnimationTarget(id_data, action_name)

    def on_track(self, msg: dict) -> None:
        """Use a finished track's robust betas (re-shapes the person's rig if it already exists)."""
        self.pump()  # the re-shape replaces keys: everything planned before must be in the scene
        reshape = self.planner.track(msg)
        if reshape is None:
            return
        arm = self.armatures[reshape.track_id]
        build_people.reshape_person(arm, self.meshes.get(reshape.track_id), reshape.rest,
                                    self._shape_sets.get(reshape.track_id))
        anim = self._anims[reshape.track_id]
        for k in reshape.root_location_keys:
            anim.remove(k.data_path, k.index)
        self.keys_written += anim.apply(reshape.root_location_keys)

    def on_end(self, msg: dict | None) -> dict:
        """Build the point clouds for the terminal message (or None for an unfinished job); returns the summary."""
        if self.setup is None:
            raise RuntimeError("on_end() before on_header()")
        self.pump()
        end = self.planner.end(msg)
        if self._sets_range() and self.planner.first_frame is not None:  # what was processed (a job may stop early)
            self.scene.frame_start, self.scene.frame_end = self.planner.first_frame, self.planner.last_frame
        if self._factory is not None:
            self._factory.release()
            self._factory = None
        radius = self.options.point_radius
        name = self.setup.collection_name
        if end.scene_cloud is not None and end.scene_cloud.count:
            self.clouds["scene"] = build_points.create_cloud(f"{name} scene points", end.scene_cloud,
                                                             self.collection, radius)
        if end.frame_cloud is not None and end.frame_cloud.count:
            self.clouds["frames"] = build_points.create_cloud(f"{name} frame points", end.frame_cloud,
                                                              self.collection, radius)
        self.summary = dict(end.summary)
        self.summary["warnings"] = list(dict.fromkeys(self.warnings + end.summary["warnings"]))
        self.summary.update({
            "collection": self.collection.name,
            "replaced": list(self.replaced),
            "camera": self.camera.name if self.camera else None,
            "armatures": {pid: ob.name for pid, ob in self.armatures.items()},
            "clouds": {k: ob.name for k, ob in self.clouds.items()},
            "keys": self.keys_written,
            "video_retimed": self._plate.notice if self._plate is not None else None,
        })
        return self.summary
