"""Bone maps: which target bone follows which SMPL-X joint, as data, plus detection and a JSON file.

A `BoneMap` has
    bones   {target bone: SMPL-X joint}  one-to-one: the target bone reproduces the joint's world direction
    chains  [(source joints, target bones)] chains of different lengths (spine, neck): target bones take
            the source's world rotation found at the same normalised arc length (interpolated between
            neighbouring source bones); a chain's last target bone should also be in `bones`.
    hips    the target bone that carries the root translation (and the pelvis rotation)
    preset  the preset it came from ('CUSTOM' once edited)
Presets: Rigify metarig and generated Rigify rig (its FK controls), Mixamo (any prefix), UE5 Manny/Quinn,
MPFB default, SMPL, SMPL-X.
Target bones missing from a rig are dropped when the map is resolved against it (`resolve`).

The JSON file (`save_map` / `load_map`):
    {"format": "human3r-bonemap", "version": 1, "preset": "MIXAMO", "hips": "mixamorig:Hips",
     "bones": {"mixamorig:Hips": "pelvis", ...},
     "chains": [{"source": ["spine1", "spine2", "spine3"], "target": ["spine_01", ...]}, ...]}
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field

# The 22 SMPL-X body joints (the first 22 of the 55-joint order) every preset must map.
BODY_JOINTS = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "left_ankle",
    "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar", "right_collar", "head",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
)
FINGERS = ("index", "middle", "ring", "pinky", "thumb")
SIDES = ("left", "right")
FORMAT = "human3r-bonemap"
VERSION = 1
SPINE = ("spine1", "spine2", "spine3")


class BoneMapError(ValueError):
    """A bone map file or table that cannot be used (the message says what to fix)."""


@dataclass
class BoneMap:
    bones: dict[str, str]
    hips: str | None
    chains: list[tuple[tuple[str, ...], tuple[str, ...]]] = field(default_factory=list)
    preset: str = "CUSTOM"

    def mapped_joints(self) -> set[str]:
        """SMPL-X joints some target bone follows (one-to-one or through a chain)."""
        return set(self.bones.values()) | {j for src, _ in self.chains for j in src}

    def missing_body_joints(self) -> list[str]:
        """SMPL-X body joints no target bone follows (in joint order)."""
        have = self.mapped_joints()
        return [j for j in BODY_JOINTS if j not in have]

    def to_dict(self) -> dict:
        return {"format": FORMAT, "version": VERSION, "preset": self.preset, "hips": self.hips,
                "bones": dict(self.bones),
                "chains": [{"source": list(s), "target": list(t)} for s, t in self.chains]}

    @classmethod
    def from_dict(cls, data: dict) -> "BoneMap":
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise BoneMapError(f"not a Human3R bone map (expected \"format\": \"{FORMAT}\")")
        if int(data.get("version", 0)) > VERSION:
            raise BoneMapError(f"bone map version {data.get('version')} is newer than this add-on "
                               f"understands ({VERSION}); update the add-on")
        bones = data.get("bones")
        if not isinstance(bones, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in bones.items()):
            raise BoneMapError("\"bones\" must map target bone names to SMPL-X joint names (strings)")
        chains = []
        for c in data.get("chains") or []:
            src, tgt = c.get("source"), c.get("target")
            if not src or not tgt:
                raise BoneMapError("every chain needs a non-empty \"source\" and \"target\" list")
            chains.append((tuple(map(str, src)), tuple(map(str, tgt))))
        hips = data.get("hips")
        return cls(bones=dict(bones), hips=str(hips) if hips else None, chains=chains,
                   preset=str(data.get("preset") or "CUSTOM"))

    def resolve(self, target_bones) -> tuple["BoneMap", list[str]]:
        """This map restricted to bones the target has; also returns the map's target bones it lacks."""
        have = set(target_bones)
        missing = [b for b in self.bones if b not in have]
        missing += [b for _, t in self.chains for b in t if b not in have and b not in missing]
        chains = []
        for src, tgt in self.chains:
            tgt = tuple(b for b in tgt if b in have)
            if tgt:
                chains.append((src, tgt))
        hips = self.hips if self.hips in have else None
        return BoneMap({t: s for t, s in self.bones.items() if t in have}, hips, chains, self.preset), missing


def save_map(bone_map: BoneMap, path: str | os.PathLike) -> None:
    """Write the map as JSON (via a temporary file, so a failed write leaves any old file intact)."""
    tmp = f"{os.fspath(path)}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(bone_map.to_dict(), f, indent=1)
    os.replace(tmp, path)


def load_map(path: str | os.PathLike) -> BoneMap:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as exc:
        raise BoneMapError(f"{path} is not valid JSON ({exc})") from None
    return BoneMap.from_dict(data)


# ---------------------------------------------------------------------------------------- preset tables
def _sided(left: str, right: str, table: dict[str, str]) -> dict[str, str]:
    """Expand {'collar': 'shoulder.{S}'} style names for both sides ({S} = left / right marker)."""
    out = {}
    for joint, name in table.items():
        out[f"left_{joint}"] = name.format(S=left)
        out[f"right_{joint}"] = name.format(S=right)
    return out


def _fingers(pattern: str, left: str, right: str, names: dict[str, str], start: int = 1) -> dict[str, str]:
    out = {}
    for finger in FINGERS:
        for k in range(3):
            out[f"{finger}{k + 1}"] = pattern.format(F=names[finger], K=k + start, S="{S}")
    return _sided(left, right, out)


_LIMBS = ("collar", "shoulder", "elbow", "wrist", "hip", "knee", "ankle", "foot")


def _limbs(names: tuple[str, ...], left: str, right: str) -> dict[str, str]:
    return _sided(left, right, dict(zip(_LIMBS, names)))


@dataclass(frozen=True)
class Preset:
    """joint -> target bone (prefix-free names), spine/neck chains, hips bone; `marker` bones identify it."""

    name: str
    label: str
    joints: dict[str, str]
    chains: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = ()
    markers: tuple[str, ...] = ()
    any_prefix: bool = False  # bone names may carry a common prefix (mixamorig:, m_avg_, ...)
    # custom properties the motion needs on the target, keyed with it: (bone, property, value)
    switches: tuple[tuple[str, str, float], ...] = ()


RIGIFY_METARIG = Preset(
    "RIGIFY_METARIG", "Rigify metarig",
    {"pelvis": "spine", "spine1": "spine.001", "spine2": "spine.002", "spine3": "spine.003",
     "neck": "spine.004", "head": "spine.006", "jaw": "jaw", "left_eye_smplhf": "eye.L", "right_eye_smplhf": "eye.R",
     **_limbs(("shoulder.{S}", "upper_arm.{S}", "forearm.{S}", "hand.{S}", "thigh.{S}", "shin.{S}", "foot.{S}",
               "toe.{S}"), "L", "R"),
     **_fingers("{F}.0{K}.{S}", "L", "R", {"index": "f_index", "middle": "f_middle", "ring": "f_ring",
                                           "pinky": "f_pinky", "thumb": "thumb"})},
    chains=((("neck",), ("spine.004", "spine.005")),),
    markers=("spine.001", "upper_arm.L", "thigh.L"))

# The generated Rigify rig: its FK controls (IK_FK = 1.0 on the limbs' parent controls, IK by default).
# They hang under constraint-driven MCH bones, so the rig is read from its evaluated rest pose and the
# constraints' followers (see blender/rig_eval.py). The torso control carries pelvis rotation and root motion.
RIGIFY = Preset(
    "RIGIFY", "Rigify (generated rig)",
    {"pelvis": "torso", "spine1": "spine_fk.001", "spine2": "spine_fk.002", "spine3": "spine_fk.003",
     "neck": "neck", "head": "head",
     **_limbs(("shoulder.{S}", "upper_arm_fk.{S}", "forearm_fk.{S}", "hand_fk.{S}", "thigh_fk.{S}", "shin_fk.{S}",
               "foot_fk.{S}", "toe_fk.{S}"), "L", "R"),
     **_fingers("{F}.0{K}.{S}", "L", "R", {"index": "f_index", "middle": "f_middle", "ring": "f_ring",
                                           "pinky": "f_pinky", "thumb": "thumb"})},
    markers=("torso", "upper_arm_fk.L", "thigh_fk.L"),
    # FK (IK_FK 1), limbs not following the torso's rotation, neck and head plain FK children
    switches=tuple((f"{limb}_parent.{side}", prop, value) for limb in ("upper_arm", "thigh") for side in "LR"
                   for prop, value in (("IK_FK", 1.0), ("FK_limb_follow", 0.0)))
    + (("torso", "neck_follow", 0.0), ("torso", "head_follow", 0.0)))

MIXAMO = Preset(
    "MIXAMO", "Mixamo",
    {"pelvis": "Hips", "spine1": "Spine", "spine2": "Spine1", "spine3": "Spine2", "neck": "Neck", "head": "Head",
     **_limbs(("{S}Shoulder", "{S}Arm", "{S}ForeArm", "{S}Hand", "{S}UpLeg", "{S}Leg", "{S}Foot", "{S}ToeBase"),
              "Left", "Right"),
     **_fingers("{S}Hand{F}{K}", "Left", "Right", {"index": "Index", "middle": "Middle", "ring": "Ring",
                                                   "pinky": "Pinky", "thumb": "Thumb"})},
    markers=("Hips", "LeftUpLeg", "LeftForeArm"), any_prefix=True)

UE5 = Preset(
    "UE5", "Unreal Engine 5 Manny/Quinn",
    {"pelvis": "pelvis", "spine3": "spine_05", "neck": "neck_01", "head": "head",
     **_limbs(("clavicle_{S}", "upperarm_{S}", "lowerarm_{S}", "hand_{S}", "thigh_{S}", "calf_{S}", "foot_{S}",
               "ball_{S}"), "l", "r"),
     **_fingers("{F}_0{K}_{S}", "l", "r", {f: f for f in FINGERS})},
    chains=((SPINE, ("spine_01", "spine_02", "spine_03", "spine_04", "spine_05")),
            (("neck",), ("neck_01", "neck_02"))),
    markers=("pelvis", "spine_01", "upperarm_l", "calf_l"))

MPFB = Preset(
    "MPFB", "MPFB / MakeHuman default",
    {"pelvis": "root", "spine3": "spine01", "neck": "neck01", "head": "head",
     **_limbs(("clavicle.{S}", "upperarm01.{S}", "lowerarm01.{S}", "wrist.{S}", "upperleg01.{S}", "lowerleg01.{S}",
               "foot.{S}", "toe3-1.{S}"), "L", "R"),
     **_fingers("finger{F}-{K}.{S}", "L", "R", {"thumb": "1", "index": "2", "middle": "3", "ring": "4", "pinky": "5"}),
     "jaw": "jaw", "left_eye_smplhf": "eye.L", "right_eye_smplhf": "eye.R"},
    chains=((SPINE, ("spine05", "spine04", "spine03", "spine02", "spine01")),
            (("neck",), ("neck01", "neck02", "neck03"))),
    markers=("spine05", "upperarm01.L", "lowerleg01.L"))

_SMPL_NAMES = {"pelvis": "Pelvis", "spine1": "Spine1", "spine2": "Spine2", "spine3": "Spine3", "neck": "Neck",
               "head": "Head", **_limbs(("{S}_Collar", "{S}_Shoulder", "{S}_Elbow", "{S}_Wrist", "{S}_Hip", "{S}_Knee",
                                         "{S}_Ankle", "{S}_Foot"), "L", "R")}
SMPL = Preset("SMPL", "SMPL (m_avg_/f_avg_ names)", _SMPL_NAMES, markers=("Pelvis", "L_Hip", "Spine1"),
              any_prefix=True)

SMPLX = Preset(
    "SMPLX", "SMPL-X",
    {j: j for j in BODY_JOINTS + ("jaw", "left_eye_smplhf", "right_eye_smplhf")
     + tuple(f"{s}_{f}{k}" for s in SIDES for f in FINGERS for k in (1, 2, 3))},
    markers=("pelvis", "left_hip", "spine1"), any_prefix=True)

PRESETS: dict[str, Preset] = {p.name: p for p in (RIGIFY, RIGIFY_METARIG, MIXAMO, UE5, MPFB, SMPLX, SMPL)}
AUTO = "AUTO"


def _prefix_for(preset: Preset, bone_names) -> str | None:
    """The common prefix that makes the preset's marker bones appear in bone_names, or None."""
    names = set(bone_names)
    if all(m in names for m in preset.markers):
        return ""
    if not preset.any_prefix:
        return None
    first = preset.markers[0]
    for name in bone_names:
        if name.endswith(first) and len(name) > len(first):
            prefix = name[: -len(first)]
            if all(prefix + m in names for m in preset.markers):
                return prefix
    return None


def detect_preset(bone_names) -> tuple[str, str] | None:
    """(preset name, bone-name prefix) of the preset that covers most of the 22 body joints, or None."""
    names = list(bone_names)
    have = set(names)
    best = None
    for preset in PRESETS.values():
        prefix = _prefix_for(preset, names)
        if prefix is None:
            continue
        covered = sum(1 for j in BODY_JOINTS if prefix + preset.joints.get(j, "\0") in have
                      or any(j in s for s, _ in preset.chains))
        if best is None or covered > best[0]:
            best = (covered, preset.name, prefix)
    if best is None or best[0] < len(BODY_JOINTS) // 2:
        return None
    return best[1], best[2]


def preset_map(name: str, bone_names) -> BoneMap:
    """The bone map of preset `name` (or AUTO) for a rig with `bone_names`, restricted to bones it has.

    Raises BoneMapError when AUTO finds no preset (the rig needs a JSON bone map) or when the named
    preset's marker bones are missing.
    """
    names = list(bone_names)
    if name == AUTO:
        found = detect_preset(names)
        if found is None:
            raise BoneMapError("no preset matches this rig's bone names (Rigify, Mixamo, UE5, MPFB, SMPL, SMPL-X); "
                               "load or build a bone map (JSON) for it")
        name, prefix = found
    else:
        if name not in PRESETS:
            raise BoneMapError(f"unknown preset {name!r}; use one of {', '.join([AUTO, *PRESETS])}")
        prefix = _prefix_for(PRESETS[name], names)
        if prefix is None:
            raise BoneMapError(f"the rig has none of the {PRESETS[name].label} bones "
                               f"({', '.join(PRESETS[name].markers)}); pick another preset or AUTO")
    preset = PRESETS[name]
    bones = {prefix + target: joint for joint, target in preset.joints.items()}
    chains = [(src, tuple(prefix + b for b in tgt)) for src, tgt in preset.chains]
    for src, tgt in chains:  # the chain's last bone follows its last source joint exactly
        bones.setdefault(tgt[-1], src[-1])
    full = BoneMap(bones, prefix + preset.joints["pelvis"], chains, preset.name)
    resolved, _ = full.resolve(names)
    return resolved
