"""Retarget one person's SMPL-X rig onto another armature: read both rigs, solve in numpy, write a new action.

Reading: rest bones (`bone.matrix_local`), parents, lengths, rotation modes and the object's
`matrix_world` of each rig; the source's keyed rotation/location channels are sampled on whole frames
from its F-curves in bulk (linear keys by interpolation of the key arrays, other keys by
`FCurve.evaluate`). Writing: one new action on the target, F-curves filled in bulk through
`compat.AnimationTarget` (slotted on 4.4+, legacy on 4.2-4.3); no per-key operators, no constraints,
no `nla.bake`. The source is only read. If anything fails, the target gets its previous action back and
the new action is removed, so nothing half-written stays in the file.
"""
from __future__ import annotations

from dataclasses import dataclass

import bpy
import numpy as np

from ..core.keyframes import bone_path, channel_keys
from ..core.retarget.bonemaps import BoneMap, BoneMapError, preset_map
from ..core.retarget.channels import EULER_ORDERS, euler_to_matrix, rotation_channels
from ..core.retarget.rig import RigError, RigSpec, compose_local
from ..core.retarget.solve import RetargetOptions, retarget
from ..core.rotations import quaternion_to_matrix
from . import compat

_LINEAR = 1  # Keyframe.interpolation enum value of LINEAR (CONSTANT = 0)


class RetargetError(Exception):
    """A retarget that cannot run; the message says what to fix (shown in the panel)."""


@dataclass
class RetargetReport:
    action: bpy.types.Action
    preset: str
    frames: tuple[int, int]
    bones: int
    unmapped_joints: list[str]  # SMPL-X body joints no target bone follows
    missing_bones: list[str]  # bones of the preset/map the target lacks
    leg_ratio: float

    def message(self) -> str:
        text = (f"Retargeted as action {self.action.name!r}: {self.bones} bones, "
                f"frames {self.frames[0]}-{self.frames[1]}, preset {self.preset}, leg ratio {self.leg_ratio:.3f}")
        if self.unmapped_joints:
            text += f"; unmapped SMPL-X joints: {', '.join(self.unmapped_joints)}"
        return text


def rig_spec(obj: bpy.types.Object) -> RigSpec:
    """The armature object's rest pose as a RigSpec (bones ordered parents first)."""
    bones = list(obj.data.bones)
    order, seen = [], set()
    pending = [b for b in bones if b.parent is None]
    while pending:  # breadth-first from the roots: parents always before children
        b = pending.pop(0)
        order.append(b)
        seen.add(b.name)
        pending.extend(b.children)
    index = {b.name: i for i, b in enumerate(order)}
    rest = np.array([np.array(b.matrix_local) for b in order])
    parents = np.array([index[b.parent.name] if b.parent else -1 for b in order])
    modes = tuple(obj.pose.bones[b.name].rotation_mode for b in order)
    lengths = np.array([b.length for b in order])
    return RigSpec(tuple(b.name for b in order), parents, rest, np.array(obj.matrix_world), modes, lengths)


def check_armature(obj, role: str) -> None:
    if obj is None:
        raise RetargetError(f"pick a {role} armature")
    if obj.type != "ARMATURE":
        raise RetargetError(f"{role} {obj.name!r} is a {obj.type.lower()}, not an armature; pick the rig object")


def _sample(fc: bpy.types.FCurve, frames: np.ndarray) -> np.ndarray:
    n = len(fc.keyframe_points)
    co = np.empty(2 * n, dtype=np.float32)
    fc.keyframe_points.foreach_get("co", co)
    interp = np.empty(n, dtype=np.int32)
    fc.keyframe_points.foreach_get("interpolation", interp)
    if n and (interp == _LINEAR).all() and not len(fc.modifiers):
        return np.interp(frames, co[0::2].astype(np.float64), co[1::2].astype(np.float64))
    return np.array([fc.evaluate(float(f)) for f in frames])


def source_motion(obj: bpy.types.Object, spec: RigSpec) -> tuple[np.ndarray, np.ndarray]:
    """Whole frames [T] of the source's action and its local matrices [T, J, 4, 4] (rotation + location;
    keyed scale, which hides absent people, is ignored)."""
    curves = compat.fcurves_of(obj)
    if not curves:
        raise RetargetError(f"source {obj.name!r} has no animation to retarget")
    first = min(fc.range()[0] for fc in curves)
    last = max(fc.range()[1] for fc in curves)
    frames = np.arange(int(np.floor(first + 1e-6)), int(np.floor(last + 1e-6)) + 1)
    by_path = {(fc.data_path, fc.array_index): fc for fc in curves}
    rot = np.empty((len(frames), len(spec.names), 3, 3))
    loc = np.zeros((len(frames), len(spec.names), 3))
    for j, name in enumerate(spec.names):
        pb = obj.pose.bones[name]

        def channel(prop, count, current):
            path = bone_path(name, prop)
            return np.stack([_sample(by_path[(path, i)], frames) if (path, i) in by_path
                             else np.full(len(frames), float(current[i])) for i in range(count)], axis=1)

        mode = pb.rotation_mode
        if mode == "QUATERNION":
            rot[:, j] = quaternion_to_matrix(channel("rotation_quaternion", 4, pb.rotation_quaternion))
        elif mode in EULER_ORDERS:
            rot[:, j] = euler_to_matrix(channel("rotation_euler", 3, pb.rotation_euler), mode)
        else:  # AXIS_ANGLE: angle, axis
            aa = channel("rotation_axis_angle", 4, pb.rotation_axis_angle)
            axis = aa[:, 1:] / np.maximum(np.linalg.norm(aa[:, 1:], axis=1, keepdims=True), 1e-12)
            half = aa[:, :1] / 2
            rot[:, j] = quaternion_to_matrix(np.concatenate([np.cos(half), np.sin(half) * axis], axis=1))
        loc[:, j] = channel("location", 3, pb.location)
    return frames, compose_local(rot, loc)


def retarget_objects(source: bpy.types.Object, target: bpy.types.Object, preset: str = "AUTO",
                     bone_map: BoneMap | None = None, in_place: bool = False,
                     keep_contacts: bool = True) -> RetargetReport:
    """Retarget `source`'s action onto `target` as a new action assigned to it (see module docstring)."""
    check_armature(source, "source")
    check_armature(target, "target")
    if source == target:
        raise RetargetError("source and target are the same armature; pick the character rig as target")
    if target.library is not None and target.override_library is None:
        raise RetargetError(f"{target.name!r} is linked from {target.library.filepath}; make a library override "
                            "(Object > Library Override > Make) and retarget onto that")
    tgt = rig_spec(target)
    src = rig_spec(source)
    try:
        full = bone_map if bone_map is not None else preset_map(preset, tgt.names)
    except BoneMapError as exc:
        raise RetargetError(str(exc)) from None
    resolved, missing = full.resolve(tgt.names)
    if not resolved.bones:
        raise RetargetError(f"none of the bone map's bones exist on {target.name!r}; fix the map")
    driven = set(resolved.bones) | {b for _, t in resolved.chains for b in t}
    zero = [n for n in tgt.zero_length_bones() if n in driven]
    if zero:
        raise RetargetError(f"bone(s) of zero length on {target.name!r}: {', '.join(zero)}; give them a length in "
                            "edit mode or remove them from the bone map")
    frames, local = source_motion(source, src)
    fps = bpy.context.scene.render.fps / bpy.context.scene.render.fps_base
    try:
        result = retarget(src, local, tgt, resolved, RetargetOptions(in_place=in_place, keep_contacts=keep_contacts,
                                                                   fps=fps))
    except RigError as exc:
        raise RetargetError(str(exc)) from None
    action = _write_action(target, f"{source.name} to {target.name}", frames, tgt, result)
    return RetargetReport(action, resolved.preset, (int(frames[0]), int(frames[-1])), len(result.bones),
                          result.unmapped, missing, result.leg_ratio)


def _write_action(target, name, frames, tgt: RigSpec, result) -> bpy.types.Action:
    anim = target.animation_data or target.animation_data_create()
    previous = (anim.action, getattr(anim, "action_slot", None))
    anim.action = None
    try:
        writer = compat.AnimationTarget(target, name)
        for i, bone in enumerate(result.bones):
            prop, values = rotation_channels(result.rotations[i], tgt.rotation_modes[tgt.index[bone]])
            writer.apply(channel_keys(bone_path(bone, prop), frames, values, "LINEAR", bone))
        if result.hips is not None:
            writer.apply(channel_keys(bone_path(result.hips, "location"), frames, result.hips_location, "LINEAR",
                                      result.hips))
        action = writer.action
    except Exception:
        new = anim.action
        anim.action = previous[0]
        if previous[1] is not None and compat.HAS_SLOTTED_ACTIONS:
            anim.action_slot = previous[1]
        if new is not None and new != previous[0]:
            bpy.data.actions.remove(new)
        raise
    action.use_fake_user = False
    target.update_tag()
    return action
