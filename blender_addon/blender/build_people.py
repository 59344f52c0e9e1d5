"""Create and re-shape people's rigs from `core.plans.PersonPlan`s: armature + skinned mesh per person.

Cost is linear in people: every rig of a batch gets its rest bones in ONE edit-mode pass, and that pass
runs in a private, empty build scene. Entering and leaving edit mode re-evaluates the scene it runs in
(measured, bpy 5.0.1: about 2-5 ms per rig already there, per switch), so one switch per person in the
user's scene made a crowd quadratic (159 people: 65 s). Bodies are copies of one template mesh (faces,
vertex-group weights, shape-key layout made once per job), so a person costs a memory copy plus
writing its shaped vertices.

Bones are written in edit mode (the only way to set rest bones): heads, tails and roll come from the
plan's rest matrices through `EditBone.matrix`, so `bone.matrix_local` equals the planned rest pose
and the planner's bone-local quaternions apply unchanged. Shape keys (expressions, pose correctives)
hold basis + offset, are applied before the armature (like SMPL-X's blend shapes), and their weights
may exceed 0..1, so their slider ranges are widened.

Visibility: the armature's and the body's `hide_viewport` and `hide_render` are driven by the armature's
`hidden_prop(track id)` custom property (keyed by the planner). An AVERAGE driver of one property needs no Python
expression, so it works with auto-run scripts off, and Blender keeps objects with driven visibility in
the dependency graph, so a hidden person reappears on its next present frame.
"""
from __future__ import annotations

import bpy
import numpy as np
from mathutils import Matrix

from ..core.plan_people import hidden_path, hidden_prop
from . import compat

TRACK_ID = "human3r_track_id"  # object property: the track id of an imported person's armature
BUILD_SCENE = "Human3R rig build"  # the private scene of the edit-mode pass (removed right after)


def is_person(obj) -> bool:
    """True for the armature of a person this add-on imported."""
    return obj is not None and obj.type == "ARMATURE" and TRACK_ID in obj


class PeopleFactory:
    """Makes the rigs of one job; holds the job's template armature and body mesh (not in any scene)."""

    def __init__(self, collection: bpy.types.Collection):
        self.collection = collection
        self._armature_template: bpy.types.Armature | None = None
        self._mesh_template: bpy.types.Mesh | None = None

    def create(self, plans: list) -> list[tuple[bpy.types.Object, bpy.types.Object | None]]:
        """Build every plan's armature (and mesh unless plan.faces is None) in one edit-mode pass;
        returns [(armature, mesh or None)] in plan order, linked into the collection."""
        if not plans:
            return []
        arms = []
        for plan in plans:
            if self._armature_template is not None:
                arm_data = self._armature_template.copy()  # bones and parents already there
                arm_data.name = plan.name
            else:
                arm_data = bpy.data.armatures.new(plan.name)
                arm_data.display_type = "STICK"
            arm = bpy.data.objects.new(plan.name, arm_data)
            arm.show_in_front = True
            arm[TRACK_ID] = int(plan.track_id)
            arm[hidden_prop(plan.track_id)] = 1.0  # hidden until its visibility keys say otherwise
            arms.append(arm)
        with edit_mode(arms):
            for arm, plan in zip(arms, plans):
                _write_bones(arm, plan.rest, create=len(arm.data.edit_bones) == 0)
        out = []
        for arm, plan in zip(arms, plans):
            self.collection.objects.link(arm)
            for pb in arm.pose.bones:
                pb.rotation_mode = "QUATERNION"
            drive_visibility(arm, arm)
            out.append((arm, self._create_mesh(plan, arm) if plan.faces is not None else None))
        if self._armature_template is None:
            self._armature_template = arms[0].data.copy()
            self._armature_template.name = "Human3R rig template"
        return out


    def _create_mesh(self, plan, arm: bpy.types.Object) -> bpy.types.Object:
        if self._mesh_template is None:
            for step in self.template_steps(plan):
                step()
        verts = np.ascontiguousarray(plan.rest.vertices, dtype=np.float32)
        me = self._mesh_template.copy()  # faces, vertex groups with weights, shape-key layout
        me.name = f"{plan.name} body"
        me.attributes["position"].data.foreach_set("vector", verts.ravel())
        if me.shape_keys is not None:
            _write_shape_keys(me.shape_keys, verts, plan.shape_keys)
        me.update()
        ob = bpy.data.objects.new(f"{plan.name} body", me)
        ob.parent = arm
        self.collection.objects.link(ob)
        mod = ob.modifiers.new("Armature", "ARMATURE")
        mod.object = arm
        mod.use_vertex_groups = True
        mod.use_deform_preserve_volume = False
        drive_visibility(ob, arm)
        return ob

    def template_steps(self, plan) -> list:
        """The steps that make the job's body template from `plan` (none when it exists or the plan has
        no mesh); a live import runs them as separate units of work before the first body."""
        if self._mesh_template is not None or plan.faces is None:
            return []

        def done(mesh):
            self._mesh_template = mesh
        return _template_steps(plan, done)

    def release(self) -> None:
        """Remove the templates (the job's rigs are built)."""
        if self._armature_template is not None:
            bpy.data.armatures.remove(self._armature_template)
            self._armature_template = None
        if self._mesh_template is not None:
            bpy.data.meshes.remove(self._mesh_template)  # frees its shape-key block with it
            self._mesh_template = None


def drive_visibility(ob: bpy.types.Object, arm: bpy.types.Object) -> None:
    """Drive `ob`'s hide_viewport and hide_render by `arm`'s hidden_prop (1: hidden)."""
    for prop in ("hide_viewport", "hide_render"):
        driver = ob.driver_add(prop).driver
        driver.type = "AVERAGE"
        var = driver.variables.new()
        var.name = "hidden"
        var.type = "SINGLE_PROP"
        var.targets[0].id = arm
        var.targets[0].data_path = hidden_path(arm[TRACK_ID])


class shown:
    """Show `objects` for the duration of the block: their visibility drivers muted, hide_viewport and
    hide_render off (edit mode and Blender's exporters skip hidden objects); restored afterwards."""

    def __init__(self, objects):
        self.objects = list(objects)
        self.muted: list = []
        self.before: list = []

    def __enter__(self):
        for o in self.objects:
            self.before.append((o, o.hide_viewport, o.hide_render))
            for fc in (o.animation_data.drivers if o.animation_data is not None else ()):
                if fc.data_path in ("hide_viewport", "hide_render") and not fc.mute:
                    fc.mute = True
                    self.muted.append(fc)
            o.hide_viewport = o.hide_render = False
        return self

    def __exit__(self, *exc):
        for fc in self.muted:
            fc.mute = False
        for o, hide_viewport, hide_render in self.before:
            o.hide_viewport, o.hide_render = hide_viewport, hide_render
        return False


def reshape_person(arm: bpy.types.Object, mesh_obj: bpy.types.Object | None, rest, shape_keys=None) -> None:
    """Move bone heads/tails to a new rest (same orientations) and replace the base mesh (and shape keys)."""
    with edit_mode([arm]):
        _write_bones(arm, rest, create=False)
    if mesh_obj is not None:
        verts = np.ascontiguousarray(rest.vertices, dtype=np.float32)
        mesh_obj.data.attributes["position"].data.foreach_set("vector", verts.ravel())
        key = mesh_obj.data.shape_keys
        if key is not None:
            _write_shape_keys(key, verts, shape_keys)
        mesh_obj.data.update()


def _write_bones(arm: bpy.types.Object, rest, create: bool) -> None:
    """Rest bones of `arm` (in edit mode) from `rest`; `create` adds the bones and their parents first."""
    matrices = rest.matrices
    lengths = np.linalg.norm(rest.tails - rest.heads, axis=1)
    ebones = arm.data.edit_bones
    made = []
    for j, name in enumerate(rest.names):
        eb = ebones.new(name) if create else ebones[name]
        eb.head = (0.0, 0.0, 0.0)
        eb.tail = (0.0, float(lengths[j]), 0.0)
        eb.matrix = Matrix(matrices[j].tolist())  # head, direction and roll; keeps the length
        made.append(eb)
    if create:
        for j, p in enumerate(rest.parents):
            eb = made[j]
            eb.use_connect = False
            eb.use_deform = True
            if p >= 0:
                eb.parent = made[p]


class edit_mode:
    """Edit mode on the armatures `arms` (all at once) for the duration of the block, from any context
    (background, timer, UI), in a private build scene so that the switch costs nothing for the rigs
    already in the user's scene. The armatures are linked to the build scene for the duration only;
    another object's edit/pose mode in the user's scene is left first (Blender edits one mode at a time).
    """

    def __init__(self, arms: list[bpy.types.Object]):
        self.arms = list(arms)
        self._override = None
        self._scene: bpy.types.Scene | None = None
        self._shown = shown(self.arms)  # edit mode needs visible objects

    def __enter__(self):
        context = bpy.context
        active = context.view_layer.objects.active if context.view_layer is not None else None
        if active is not None and active.mode != "OBJECT":
            with context.temp_override(object=active, active_object=active):
                bpy.ops.object.mode_set(mode="OBJECT")
        self._scene = bpy.data.scenes.new(BUILD_SCENE)
        view_layer = self._scene.view_layers[0]
        self._shown.__enter__()
        for arm in self.arms:
            self._scene.collection.objects.link(arm)
        for arm in self.arms:
            arm.hide_set(False, view_layer=view_layer)
            arm.select_set(True, view_layer=view_layer)
        view_layer.objects.active = self.arms[0]
        members = {"scene": self._scene, "view_layer": view_layer, "object": self.arms[0],
                   "active_object": self.arms[0], "selected_objects": self.arms,
                   "selected_editable_objects": self.arms}
        # No window in the override: an overridden window brings its own scene, which would win over the
        # build scene (and switching the window's scene re-evaluates the user's scene, ~2 ms per rig).
        self._override = context.temp_override(**members)
        self._override.__enter__()
        try:
            bpy.ops.object.mode_set(mode="EDIT")
            missing = [a.name for a in self.arms if a.mode != "EDIT"]
            if missing:
                raise RuntimeError(f"Blender did not enter edit mode on {missing}")
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc):
        try:
            if any(a.mode == "EDIT" for a in self.arms):
                bpy.ops.object.mode_set(mode="OBJECT")
        finally:
            self._override.__exit__(None, None, None)
            for arm in self.arms:
                self._scene.collection.objects.unlink(arm)
            self._shown.__exit__(None, None, None)
            bpy.data.scenes.remove(self._scene)
        return False


def _write_shape_keys(key: bpy.types.Key, basis: np.ndarray, shape_keys) -> None:
    """Basis = the rest mesh; every other key block = basis + its planned offset."""
    _points(key.key_blocks["Basis"]).foreach_set("co", basis.ravel())
    if shape_keys is None:
        return
    for name, offset in zip(shape_keys.names, shape_keys.offsets):
        _points(key.key_blocks[name]).foreach_set("co", (basis + offset).ravel())


def _points(block: bpy.types.ShapeKey):
    """The key block's points as a typed collection: `points` takes the bulk path of foreach_set,
    the untyped `data` goes point by point (measured 0.7 ms vs 6 us for 10k points)."""
    points = getattr(block, "points", None)
    return block.data if points is None else points


TEMPLATE_GROUPS_PER_STEP = 8  # vertex groups written by one template step (~2-3 ms)


def _template_steps(plan, done) -> list:
    """The job's body mesh without an object, made in short steps (callables, run in order; the last
    calls done(mesh)): faces and smooth shading, then one vertex group per joint with the skinning
    weights (a few per step), then the shape-key layout. Vertex groups and shape keys belong to the
    mesh, so every copy carries them; they are added through a temporary object."""
    state = {}

    def geometry():
        verts = np.ascontiguousarray(plan.rest.vertices, dtype=np.float32)
        faces = np.ascontiguousarray(plan.faces, dtype=np.int32)
        me = bpy.data.meshes.new("Human3R body template")
        me.vertices.add(len(verts))
        me.attributes["position"].data.foreach_set("vector", verts.ravel())
        me.loops.add(faces.size)
        me.loops.foreach_set("vertex_index", faces.ravel())
        me.polygons.add(len(faces))
        me.polygons.foreach_set("loop_start", np.arange(0, faces.size, 3, dtype=np.int32))
        me.update(calc_edges=True)
        compat.set_smooth(me)
        state["mesh"] = me
        state["object"] = bpy.data.objects.new("Human3R body template", me)

    def groups(first: int):
        ob = state["object"]
        for j in range(first, min(first + TEMPLATE_GROUPS_PER_STEP, len(plan.rest.names))):
            vg = ob.vertex_groups.new(name=plan.rest.names[j])
            idx, w = plan.weights[j]
            if not len(idx):
                continue
            # one vg.add per distinct weight value (runs of equal weights after sorting)
            order = np.argsort(w, kind="stable")
            w_sorted, idx_sorted = w[order], idx[order].tolist()
            starts = np.flatnonzero(np.r_[True, w_sorted[1:] != w_sorted[:-1]]).tolist()
            for a, b in zip(starts, starts[1:] + [len(idx_sorted)]):
                vg.add(idx_sorted[a:b], float(w_sorted[a]), "REPLACE")

    def finish():
        ob = state["object"]
        if plan.shape_keys is not None:
            ob.shape_key_add(name="Basis", from_mix=False)
            for name in plan.shape_keys.names:
                kb = ob.shape_key_add(name=name, from_mix=False)
                kb.slider_min, kb.slider_max = -10.0, 10.0
        bpy.data.objects.remove(ob)
        done(state["mesh"])

    return [geometry, *[lambda j=j: groups(j) for j in range(0, len(plan.rest.names), TEMPLATE_GROUPS_PER_STEP)],
            finish]
