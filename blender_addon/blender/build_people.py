"""Create and re-shape one person's rig from a `core.scene_plan.PersonPlan`: armature + skinned mesh.

Bones are written in edit mode (the only way to set rest bones): heads, tails and roll come from the
plan's rest matrices through `EditBone.matrix`, so `bone.matrix_local` equals the planned rest pose
and the planner's bone-local quaternions apply unchanged. The mesh is filled with `foreach_set`;
vertex-group weights are added per (group, weight value) batch; shape keys (expressions, pose
correctives) hold basis + offset, are applied before the armature (like SMPL-X's blend shapes), and
their weights may exceed 0..1, so their slider ranges are widened.
"""
from __future__ import annotations

import bpy
import numpy as np
from mathutils import Matrix

from . import compat


def create_person(plan, collection: bpy.types.Collection) -> tuple[bpy.types.Object, bpy.types.Object | None]:
    """Build the armature (and mesh unless plan.faces is None) in `collection`; returns (armature, mesh)."""
    arm_data = bpy.data.armatures.new(plan.name)
    arm_data.display_type = "STICK"
    arm = bpy.data.objects.new(plan.name, arm_data)
    arm.show_in_front = True
    arm["human3r_track_id"] = int(plan.track_id)
    collection.objects.link(arm)
    _write_bones(arm, plan.rest, create=True)
    for pb in arm.pose.bones:
        pb.rotation_mode = "QUATERNION"
    mesh_obj = None
    if plan.faces is not None:
        mesh_obj = _create_mesh(plan, arm, collection)
    return arm, mesh_obj


def reshape_person(arm: bpy.types.Object, mesh_obj: bpy.types.Object | None, rest, shape_keys=None) -> None:
    """Move bone heads/tails to a new rest (same orientations) and replace the base mesh (and shape keys)."""
    _write_bones(arm, rest, create=False)
    if mesh_obj is not None:
        verts = np.ascontiguousarray(rest.vertices, dtype=np.float32)
        mesh_obj.data.attributes["position"].data.foreach_set("vector", verts.ravel())
        key = mesh_obj.data.shape_keys
        if key is not None:
            _write_shape_keys(key, verts, shape_keys)
        mesh_obj.data.update()


def _write_bones(arm: bpy.types.Object, rest, create: bool) -> None:
    matrices = rest.matrices
    lengths = np.linalg.norm(rest.tails - rest.heads, axis=1)
    with _edit_mode(arm):
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


class _edit_mode:
    """Edit mode on `arm` for the duration of the block, from any context (background, timer, UI).

    Edit mode only works in the active scene's view layer, so an armature that is not there (built for
    another scene, or in an excluded collection) is linked to the active scene for the duration. Leaves
    another object's edit/pose mode first, makes the armature visible and active (with a window override
    when one exists, since timers run without one), and restores the previous active object, the
    armature's visibility and links afterwards.
    """

    def __init__(self, arm: bpy.types.Object):
        self.arm = arm
        self._override = None
        self._linked_to = None

    def __enter__(self):
        context = bpy.context
        view_layer = context.view_layer
        self.view_layer = view_layer
        if self.arm.name not in view_layer.objects:
            self._linked_to = context.scene.collection
            self._linked_to.objects.link(self.arm)
        self.prev_active = view_layer.objects.active
        self.hidden = (self.arm.hide_viewport, self.arm.hide_get(view_layer=view_layer))
        self.arm.hide_viewport = False
        self.arm.hide_set(False, view_layer=view_layer)
        members = {"object": self.arm, "active_object": self.arm}
        window = context.window or next(iter(context.window_manager.windows), None)
        if window is not None:
            members["window"] = window
        if self.prev_active is not None and self.prev_active.mode != "OBJECT":
            with context.temp_override(object=self.prev_active, active_object=self.prev_active):
                bpy.ops.object.mode_set(mode="OBJECT")
        self._override = context.temp_override(**members)
        self._override.__enter__()
        view_layer.objects.active = self.arm
        bpy.ops.object.mode_set(mode="EDIT")
        return self

    def __exit__(self, *exc):
        try:
            bpy.ops.object.mode_set(mode="OBJECT")
        finally:
            self._override.__exit__(None, None, None)
            self.arm.hide_viewport = self.hidden[0]
            self.arm.hide_set(self.hidden[1], view_layer=self.view_layer)
            if self.prev_active is not None and self.prev_active.name in self.view_layer.objects:
                self.view_layer.objects.active = self.prev_active
            if self._linked_to is not None:
                self._linked_to.objects.unlink(self.arm)
        return False


def _write_shape_keys(key: bpy.types.Key, basis: np.ndarray, shape_keys) -> None:
    """Basis = the rest mesh; every other key block = basis + its planned offset."""
    key.key_blocks["Basis"].data.foreach_set("co", basis.ravel())
    if shape_keys is None:
        return
    for name, offset in zip(shape_keys.names, shape_keys.offsets):
        key.key_blocks[name].data.foreach_set("co", (basis + offset).ravel())


def _create_mesh(plan, arm: bpy.types.Object, collection: bpy.types.Collection) -> bpy.types.Object:
    verts = np.ascontiguousarray(plan.rest.vertices, dtype=np.float32)
    faces = np.ascontiguousarray(plan.faces, dtype=np.int32)
    me = bpy.data.meshes.new(f"{plan.name} body")
    me.vertices.add(len(verts))
    me.attributes["position"].data.foreach_set("vector", verts.ravel())
    me.loops.add(faces.size)
    me.loops.foreach_set("vertex_index", faces.ravel())
    me.polygons.add(len(faces))
    me.polygons.foreach_set("loop_start", np.arange(0, faces.size, 3, dtype=np.int32))
    me.update(calc_edges=True)
    compat.set_smooth(me)
    ob = bpy.data.objects.new(f"{plan.name} body", me)
    ob.parent = arm
    collection.objects.link(ob)
    for j, name in enumerate(plan.rest.names):
        vg = ob.vertex_groups.new(name=name)
        idx, w = plan.weights[j]
        if not len(idx):
            continue
        # one vg.add per distinct weight value (runs of equal weights after sorting)
        order = np.argsort(w, kind="stable")
        w_sorted, idx_sorted = w[order], idx[order].tolist()
        starts = np.flatnonzero(np.r_[True, w_sorted[1:] != w_sorted[:-1]]).tolist()
        for a, b in zip(starts, starts[1:] + [len(idx_sorted)]):
            vg.add(idx_sorted[a:b], float(w_sorted[a]), "REPLACE")
    if plan.shape_keys is not None:
        ob.shape_key_add(name="Basis", from_mix=False)
        for name in plan.shape_keys.names:
            kb = ob.shape_key_add(name=name, from_mix=False)
            kb.slider_min, kb.slider_max = -10.0, 10.0
        _write_shape_keys(me.shape_keys, verts, plan.shape_keys)
    mod = ob.modifiers.new("Armature", "ARMATURE")
    mod.object = arm
    mod.use_vertex_groups = True
    mod.use_deform_preserve_volume = False
    return ob
