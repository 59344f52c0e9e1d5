"""What the add-on needs from a refined job besides the ordinary import (bpy-free).

- `CONTACT_PROPERTIES`: the armature custom properties that hold each foot point's contact (0/1), keyed
  per frame with CONSTANT interpolation (`contact_keys`);
- `only_person`: a job's frames reduced to one track id (to rebuild one person's keys);
- `floor_matrix_blender`: the W -> refined 4x4 expressed in Blender's world (M·A·Mᵀ), the one transform a
  live import keys on its floor object once the floor is known.
"""
from __future__ import annotations

import numpy as np

from ..coords import M4
from ..keyframes import CONSTANT, FCurveKeys, channel_keys
from .kinematics import FOOT_POINTS

CONTACT_PROPERTIES = tuple(f"h3r_contact_{name}" for name in FOOT_POINTS)


def contact_keys(frames: list[dict], track_id: int, frame_start: int) -> list[FCurveKeys]:
    """Keys for the armature's contact properties (Blender frame = frame_start + source index)."""
    idx, values = [], []
    for f in frames:
        people = f.get("people") or {}
        if "contacts" not in people:
            continue
        rows = np.flatnonzero(np.asarray(people.get("id", [])) == track_id)
        if len(rows):
            idx.append(frame_start + int(f["index"]))
            values.append(np.asarray(people["contacts"][rows[0]], np.float64))
    if not idx:
        return []
    frames_b = np.asarray(idx, np.float64)
    vals = np.stack(values)
    keys: list[FCurveKeys] = []
    for k, name in enumerate(CONTACT_PROPERTIES):
        keys += channel_keys(f'["{name}"]', frames_b, vals[:, k:k + 1], CONSTANT)
    return keys


def only_person(frames: list[dict], track_id: int) -> list[dict]:
    """Frames whose people maps keep only `track_id`'s row (frames without that person keep zero rows)."""
    out = []
    for f in frames:
        people = f.get("people") or {}
        ids = np.asarray(people.get("id", np.zeros(0, np.int32)))
        keep = ids == track_id
        nf = dict(f)
        nf["people"] = {k: (np.asarray(v)[keep] if isinstance(v, np.ndarray) and len(v) == len(ids) else v)
                        for k, v in people.items()}
        out.append(nf)
    return out


def floor_matrix_blender(from_raw: np.ndarray) -> np.ndarray:
    """Blender-world 4x4 of the W -> refined transform: p_blender_refined = result @ p_blender_raw."""
    return M4 @ np.asarray(from_raw, np.float64).reshape(4, 4) @ M4.T
