"""Armatures in Blender from `tests.support.humanoids.Skeleton` data (heads, tails, rolls, parents)."""
from __future__ import annotations

import numpy as np


def build_armature(sk, name: str, object_matrix=None):
    """A new armature object `name` in the active scene with the skeleton's bones (edit mode, then back)."""
    import bpy
    from mathutils import Matrix

    arm = bpy.data.objects.new(name, bpy.data.armatures.new(name))
    bpy.context.scene.collection.objects.link(arm)
    bpy.context.view_layer.objects.active = arm
    bpy.ops.object.mode_set(mode="EDIT")
    made = []
    for n, p, h, t, r in zip(sk.names, sk.parents, sk.heads, sk.tails, sk.rolls):
        eb = arm.data.edit_bones.new(n)
        eb.head, eb.tail, eb.roll = h.tolist(), t.tolist(), float(r)
        if p >= 0:
            eb.parent = made[p]
        made.append(eb)
    bpy.ops.object.mode_set(mode="OBJECT")
    if object_matrix is not None:
        arm.matrix_world = Matrix(np.asarray(object_matrix).tolist())
    return arm


def joint_heads(arm, frames, names) -> np.ndarray:
    """World positions [len(frames), len(names), 3] (m) of the bones `names` of `arm` at scene `frames`."""
    import bpy

    scene = bpy.context.scene
    out = np.empty((len(frames), len(names), 3))
    for i, f in enumerate(frames):
        scene.frame_set(f)
        mw = np.array(arm.matrix_world)
        for j, n in enumerate(names):
            out[i, j] = (mw @ np.append(np.array(arm.pose.bones[n].head), 1.0))[:3]
    return out
