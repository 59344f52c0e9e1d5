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

from ..core.keyframes import CONSTANT, LINEAR, FCurveKeys, bone_path, channel_keys, interleave
from ..core.retarget.bonemaps import PRESETS, BoneMap, BoneMapError, preset_map
from ..core.retarget.channels import EULER_ORDERS, euler_to_matrix, rotation_channels
from ..core.retarget.rig import RigError, RigSpec
from ..core.retarget.solve import RetargetOptions, retarget_channels
from ..core.rotations import quaternion_to_matrix
from . import compat, rig_eval
from .scene_builder import MOTION_FPS

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
    resampled: tuple[float, float] | None = None  # (motion fps, scene fps) when the rates differed
    name_taken: str | None = None  # the action name that already existed (the new one is versioned)

    def message(self) -> str:
        text = (f"Retargeted as action {self.action.name!r}: {self.bones} bones, "
                f"frames {self.frames[0]}-{self.frames[1]}, preset {self.preset}, leg ratio {self.leg_ratio:.3f}")
        if self.name_taken:
            text += f" (an action {self.name_taken!r} already exists and was kept)"
        if self.resampled:
            text += (f"; resampled from the motion's {self.resampled[0]:g} fps to the scene's "
                     f"{self.resampled[1]:g} fps")
        if self.unmapped_joints:
            text += f"; unmapped SMPL-X joints: {', '.join(self.unmapped_joints)}"
        return text


def rig_spec(obj: bpy.types.Object) -> RigSpec:
    """The armature object's rest pose as a RigSpec (bones ordered parents first); rest matrices and
    lengths are read in bulk (`foreach_get`), once per retarget."""
    bones = obj.data.bones
    n = len(bones)
    flat = np.empty(16 * n, dtype=np.float32)
    bones.foreach_get("matrix_local", flat)
    rest = flat.reshape(n, 4, 4).transpose(0, 2, 1).astype(np.float64)  # stored column-major
    lengths = np.empty(n, dtype=np.float32)
    bones.foreach_get("length", lengths)
    names = [b.name for b in bones]
    position = {name: i for i, name in enumerate(names)}
    parent_of = [position[b.parent.name] if b.parent else -1 for b in bones]
    children: list[list[int]] = [[] for _ in range(n)]
    for i, p in enumerate(parent_of):
        if p >= 0:
            children[p].append(i)
    order = [i for i in range(n) if parent_of[i] < 0]
    for i in order:  # breadth-first from the roots (the list grows): parents always before children
        order.extend(children[i])
    index = {old: new for new, old in enumerate(order)}
    parents = np.array([index[parent_of[i]] if parent_of[i] >= 0 else -1 for i in order])
    modes = tuple(obj.pose.bones[names[i]].rotation_mode for i in order)
    return RigSpec(tuple(names[i] for i in order), parents, rest[order], np.array(obj.matrix_world), modes,
                   lengths[order].astype(np.float64))


def check_armature(obj, role: str) -> None:
    if obj is None:
        raise RetargetError(f"pick a {role} armature")
    if obj.type != "ARMATURE":
        raise RetargetError(f"{role} {obj.name!r} is a {obj.type.lower()}, not an armature; pick the rig object")


def _sample(fc: bpy.types.FCurve, frames: np.ndarray) -> np.ndarray:
    """Values [T] of an F-curve on `frames`: linear keys by interpolating the key arrays (read in bulk),
    anything else (Bézier, modifiers) by `FCurve.evaluate`."""
    n = len(fc.keyframe_points)
    co = np.empty(2 * n, dtype=np.float32)
    fc.keyframe_points.foreach_get("co", co)
    interp = np.empty(n, dtype=np.int8)  # the enum's own byte size: a raw copy, no per-key conversion
    fc.keyframe_points.foreach_get("interpolation", interp)
    if n and (interp == _LINEAR).all() and not len(fc.modifiers):
        return np.interp(frames, co[0::2].astype(np.float64), co[1::2].astype(np.float64))
    return np.array([fc.evaluate(float(f)) for f in frames])


_ROTATION_PROPS = {"QUATERNION": ("rotation_quaternion", 4), "AXIS_ANGLE": ("rotation_axis_angle", 4)}


def source_motion(obj: bpy.types.Object, spec: RigSpec, rate: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Whole frames [T] of the source's action and its bone-major local rotations [J, T, 3, 3] and
    locations [J, T, 3] (keyed scale, which hides absent people, is ignored). Each F-curve fills one
    contiguous row; rotations are converted to matrices once per rotation mode.

    rate = scene fps / motion fps: other than 1, the motion is resampled onto whole scene frames from
    its first frame f0 (scene frame f shows source frame f0 + (f - f0) / rate; keys interpolated)."""
    curves = compat.fcurves_of(obj)
    if not curves:
        raise RetargetError(f"source {obj.name!r} has no animation to retarget")
    first = min(fc.range()[0] for fc in curves)
    last = max(fc.range()[1] for fc in curves)
    f0 = int(np.floor(first + 1e-6))
    frames = f0 + np.arange(int(np.floor((last - f0) * rate + 1e-6)) + 1)
    positions = frames if rate == 1.0 else f0 + (frames - f0) / rate
    by_path = {(fc.data_path, fc.array_index): fc for fc in curves}
    n = len(spec.names)
    modes = [obj.pose.bones[name].rotation_mode for name in spec.names]
    channels = np.empty((n, 4, len(frames)))  # rotation channel values (Euler: first 3 rows)
    loc = np.empty((n, 3, len(frames)))
    for j, name in enumerate(spec.names):
        pb = obj.pose.bones[name]
        prop, count = _ROTATION_PROPS.get(modes[j], ("rotation_euler", 3))
        for dest, prop, count in ((channels, prop, count), (loc, "location", 3)):
            path, current = bone_path(name, prop), getattr(pb, prop)
            for i in range(count):
                fc = by_path.get((path, i))
                dest[j, i] = _sample(fc, positions) if fc is not None else current[i]
    values = np.swapaxes(channels, 1, 2)  # [J, T, 4]
    rot = np.empty((n, len(frames), 3, 3))
    for mode in set(modes):
        sel = np.array([m == mode for m in modes])
        if mode == "QUATERNION":
            rot[sel] = quaternion_to_matrix(values[sel])
        elif mode in EULER_ORDERS:
            rot[sel] = euler_to_matrix(values[sel, :, :3], mode)
        else:  # AXIS_ANGLE: angle, axis
            aa = values[sel]
            axis = aa[..., 1:] / np.maximum(np.linalg.norm(aa[..., 1:], axis=-1, keepdims=True), 1e-12)
            half = aa[..., :1] / 2
            rot[sel] = quaternion_to_matrix(np.concatenate([np.cos(half), np.sin(half) * axis], axis=-1))
    return frames, rot, np.ascontiguousarray(np.swapaxes(loc, 1, 2))


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
    fps = bpy.context.scene.render.fps / bpy.context.scene.render.fps_base
    motion_fps = motion_rate(source)
    resampled = motion_fps is not None and abs(motion_fps - fps) > 1e-6 * fps
    frames, rotation, location = source_motion(source, src, fps / motion_fps if resampled else 1.0)
    constrained = rig_eval.has_constraints(target)
    preset_switches = PRESETS[resolved.preset].switches if resolved.preset in PRESETS else ()
    old_switches = [(b, p, target.pose.bones[b][p]) for b, p, _ in preset_switches
                    if b in target.pose.bones and p in target.pose.bones[b].keys()]
    anim = target.animation_data or target.animation_data_create()
    previous = (anim.action, getattr(anim, "action_slot", None))
    try:
        switches = rig_eval.set_switches(target, preset_switches)
        if constrained:  # read the rig as Blender evaluates it (constraint-driven parents)
            tgt = rig_eval.evaluated_spec(target, dict(zip(tgt.names, tgt.lengths)))
        options = RetargetOptions(in_place=in_place, keep_contacts=keep_contacts, fps=fps)
        result = retarget_channels(src, rotation, location, tgt, resolved, options)
        base = f"{source.name} to {target.name}"
        action = _write_action(target, free_action_name(base), frames, tgt, result, switches)
        if constrained:
            _verify(source, target, resolved, frames)
    except (RigError, ValueError, RetargetError) as exc:
        if anim.action is not previous[0]:
            _restore_action(target, previous)
        rig_eval.set_switches(target, old_switches)
        raise RetargetError(str(exc)) from None
    return RetargetReport(action, resolved.preset, (int(frames[0]), int(frames[-1])), len(result.bones),
                          result.unmapped, missing, result.leg_ratio, (motion_fps, fps) if resampled else None,
                          base if action.name != base else None)


def motion_rate(source: bpy.types.Object) -> float | None:
    """Frames per second the source's motion was recorded at (set on import), None when unknown."""
    anim = source.animation_data
    for holder in (anim.action if anim else None, source):
        if holder is not None and MOTION_FPS in holder.keys():
            return float(holder[MOTION_FPS])
    return None


def free_action_name(base: str) -> str:
    """`base`, or `base v2`, `base v3`, ... : the first name no action has (never Blender's `.001`)."""
    name, k = base, 1
    while bpy.data.actions.get(name) is not None:
        k += 1
        name = f"{base} v{k}"
    return name


VERIFY_DEGREES = 2.0  # largest bone-direction error accepted on the checked frames of a constrained rig


def _verify(source, target, bone_map: BoneMap, frames: np.ndarray) -> None:
    """Compare the evaluated target with the source on three frames: a constrained rig whose constraints
    move a mapped bone differently than `rig_eval` modelled is refused, naming the bones."""
    pairs = [(b, j) for b, j in bone_map.bones.items() if j in source.pose.bones]
    check = frames[[0, len(frames) // 2, -1]]
    d_t = rig_eval.world_directions(target, [b for b, _ in pairs], check)
    d_s = rig_eval.world_directions(source, [j for _, j in pairs], check)
    err = np.degrees(np.arccos(np.clip(np.sum(d_t * d_s, axis=-1), -1.0, 1.0))).max(axis=0)
    bad = [f"{pairs[i][0]} ({err[i]:.0f}°)" for i in np.argsort(-err) if err[i] > VERIFY_DEGREES]
    if bad:
        raise RetargetError(f"the constraints of {target.name!r} move {', '.join(bad[:6])} differently than "
                            "retargeting can model; use a bone map onto bones without constraints (e.g. the "
                            "rig's metarig or its DEF- bones)")


def _write_action(target, name, frames, tgt: RigSpec, result, switches=()) -> bpy.types.Action:
    """The new action on `target` (assigned); `switches` (bone, property, value) are keyed constant."""
    anim = target.animation_data or target.animation_data_create()
    previous = (anim.action, getattr(anim, "action_slot", None))
    anim.action = None
    try:
        writer = compat.AnimationTarget(target, name)
        modes = [tgt.rotation_modes[tgt.index[bone]] for bone in result.bones]
        for mode in dict.fromkeys(modes):  # all bones of one rotation mode converted at once
            sel = [i for i, m in enumerate(modes) if m == mode]
            prop, values = rotation_channels(np.moveaxis(result.rotations[sel], 0, 1), mode)  # [T, n, C]
            rows = interleave(frames, values.reshape(len(frames), -1))  # [n·C, 2T], one row per F-curve
            count = values.shape[-1]
            writer.apply(FCurveKeys(bone_path(result.bones[i], prop), c, rows[k * count + c], LINEAR,
                                    result.bones[i]) for k, i in enumerate(sel) for c in range(count))
        if result.hips is not None:
            writer.apply(channel_keys(bone_path(result.hips, "location"), frames, result.hips_location, LINEAR,
                                      result.hips))
        for bone, prop, value in switches:
            writer.apply(channel_keys(bone_path(bone, "")[:-1] + f'["{prop}"]', frames[[0, -1]], np.full(2, value),
                                      CONSTANT, bone))
        action = writer.action
    except Exception:
        _restore_action(target, previous)
        raise
    action.use_fake_user = False
    target.update_tag()
    return action


def _restore_action(target, previous) -> None:
    """Give `target` its previous (action, slot) back and remove the action written since."""
    anim = target.animation_data
    new = anim.action
    anim.action = previous[0]
    if previous[1] is not None and compat.HAS_SLOTTED_ACTIONS:
        anim.action_slot = previous[1]
    if new is not None and new != previous[0]:
        bpy.data.actions.remove(new)
