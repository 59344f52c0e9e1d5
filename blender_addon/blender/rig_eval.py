"""A target rig as Blender evaluates it: rest frames from the evaluated pose, parents through constraints.

Rigs such as the generated Rigify rig hang their controls under helper bones that constraints move
(Copy Transforms from the hips/chest control, Copy Rotation from `root`, ...), so the data-bone rest and
parent chain say little about where a control points. For such a rig the retarget reads:
- the rest frames E [J, 4, 4] (armature space) from `pose.bones[...].matrix` after a depsgraph update with
  every pose channel at identity and the rig's action unassigned (constraints evaluated, nothing keyed);
- each bone's effective parent: the bone whose motion it rigidly follows. That is the subtarget of a
  full-influence, world-space Copy Transforms / Copy Rotation constraint on the same armature, else the
  data parent (constraints at zero influence do nothing).
A control without constraints of its own then poses exactly as P_b = P_p·E_p⁻¹·E_b·L_b (p its effective
parent), the chain rule `core.retarget.rig` uses with E as rest. Anything the model misses (blended
influences, other constraint types moving a parent) is caught afterwards by `verify`, which compares
the evaluated rig with the source on a few frames.
"""
from __future__ import annotations

import bpy
import numpy as np

from ..core.retarget.rig import RigSpec

# constraints whose owner, at full influence, moves as its subtarget does (rotation at least)
_FOLLOW = ("COPY_TRANSFORMS", "COPY_ROTATION")


def has_constraints(obj: bpy.types.Object) -> bool:
    return any(len(pb.constraints) for pb in obj.pose.bones)


def set_switches(obj: bpy.types.Object, switches) -> list[tuple[str, str, float]]:
    """Set custom properties (bone, property, value) the motion needs (Rigify's IK_FK = 1: FK); returns
    the ones the rig has. A property written from Python needs `update_tag` before the depsgraph sees it."""
    done = []
    for bone, prop, value in switches:
        pb = obj.pose.bones.get(bone)
        if pb is not None and prop in pb.keys():
            pb[prop] = value
            done.append((bone, prop, value))
    obj.update_tag()
    return done


def _follows(obj: bpy.types.Object, pb: bpy.types.PoseBone) -> str | None:
    """Name of the bone pb follows: a full Copy Transforms/Rotation subtarget on this rig, else its parent."""
    for c in pb.constraints:
        if (c.type in _FOLLOW and not c.mute and c.influence > 1.0 - 1e-6 and getattr(c, "target", None) == obj
                and getattr(c, "subtarget", "") in obj.pose.bones and c.owner_space == c.target_space == "WORLD"):
            return c.subtarget
    return pb.parent.name if pb.parent else None


def evaluated_spec(obj: bpy.types.Object, lengths: dict[str, float]) -> RigSpec:
    """The rig as a RigSpec with evaluated rest frames and effective parents (see module docstring)."""
    pose = obj.pose.bones
    n = len(pose)
    anim = obj.animation_data
    action = anim.action if anim else None
    slot = getattr(anim, "action_slot", None) if anim else None
    saved = np.empty(16 * n, dtype=np.float32)
    pose.foreach_get("matrix_basis", saved)
    try:
        if anim is not None:
            anim.action = None
        pose.foreach_set("matrix_basis", np.tile(np.eye(4, dtype=np.float32).ravel(), n))
        obj.update_tag()
        bpy.context.view_layer.update()
        flat = np.empty(16 * n, dtype=np.float32)
        pose.foreach_get("matrix", flat)
    finally:
        if anim is not None and action is not None:
            anim.action = action
            if slot is not None:
                anim.action_slot = slot
        pose.foreach_set("matrix_basis", saved)
        obj.update_tag()
    rest = flat.reshape(n, 4, 4).transpose(0, 2, 1).astype(np.float64)  # stored column-major
    names = [pb.name for pb in pose]
    position = {name: i for i, name in enumerate(names)}
    follow = [_follows(obj, pb) for pb in pose]
    parent_of = [position[f] if f is not None else -1 for f in follow]
    # parents first; a constraint loop (never in a working rig) leaves bones out and is reported
    children: list[list[int]] = [[] for _ in range(n)]
    for i, p in enumerate(parent_of):
        if p >= 0:
            children[p].append(i)
    order = [i for i in range(n) if parent_of[i] < 0]
    for i in order:
        order.extend(children[i])
    if len(order) != n:
        loop = sorted(set(range(n)) - set(order))
        raise ValueError(f"bones {', '.join(names[i] for i in loop[:5])} follow each other through constraints")
    index = {old: new for new, old in enumerate(order)}
    parents = np.array([index[parent_of[i]] if parent_of[i] >= 0 else -1 for i in order])
    return RigSpec(tuple(names[i] for i in order), parents, rest[order], np.array(obj.matrix_world),
                   tuple(pose[names[i]].rotation_mode for i in order),
                   np.array([lengths[names[i]] for i in order]))


def world_directions(obj: bpy.types.Object, bones: list[str], frames) -> np.ndarray:
    """World unit Y axes [F, n, 3] of `bones` as Blender evaluates them on `frames` (scene frame restored)."""
    scene = bpy.context.scene
    keep = scene.frame_current
    out = np.empty((len(frames), len(bones), 3))
    try:
        for i, f in enumerate(frames):
            scene.frame_set(int(f))
            mw = np.array(obj.matrix_world)[:3, :3]
            for j, name in enumerate(bones):
                y = mw @ np.array(obj.pose.bones[name].matrix)[:3, 1]
                out[i, j] = y / np.linalg.norm(y)
    finally:
        scene.frame_set(keep)
    return out
