"""AMASS-style SMPL-X motion per tracked person from a result file's messages.

World: Z up, metres — the add-on's Blender world, p = M·p_W with W the first OpenCV camera's frame
(x right, y down, z forward) and M: (x, y, z) -> (x, z, -y). Keys of each file:
    trans [T, 3]            so that smplx(betas, global_orient=root_orient, body/hand/jaw/eye poses,
                            transl=trans) gives the body in that world (float32, metres)
    root_orient [T, 3]      global orientation (axis-angle) in that world
    poses [T, 165]          full pose: root_orient, 21 body, jaw, left eye, right eye, 15+15 hand joints
    pose_body [T, 63], pose_hand [T, 90], pose_jaw [T, 3], pose_eye [T, 6]   (views of poses)
    betas [B]               the track's shape (robust track betas when the file has them, else the mean)
    gender "neutral", surface_model_type "smplx", mocap_frame_rate (frames per second of the rows),
    frame_index [T]         the source video frame of each row
Hand poses are the full rotations (any mean hand pose already added: flat_hand_mean=True for smplx).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..body_model import BodyModel
from ..coords import M
from ..rotations import axis_angle_to_matrix

_EPS = 1e-12


@dataclass
class PersonMotion:
    track_id: int
    arrays: dict[str, np.ndarray]


def matrix_to_axis_angle(r: np.ndarray) -> np.ndarray:
    """Rotation matrices [..., 3, 3] -> rotation vectors [..., 3] (angle in [0, π])."""
    from ..rotations import matrix_to_quaternion

    q = matrix_to_quaternion(r)
    w = np.clip(q[..., 0], -1.0, 1.0)
    s = np.linalg.norm(q[..., 1:], axis=-1)
    angle = 2.0 * np.arctan2(s, w)
    scale = np.where(s > _EPS, angle / np.maximum(s, _EPS), 2.0)
    return q[..., 1:] * scale[..., None]


def frame_rate(header: dict, indices: np.ndarray) -> float:
    video = header.get("video") or {}
    frac = video.get("fps_fraction")
    fps = float(frac[0]) / float(frac[1]) if frac and frac[1] else float(video.get("fps") or 30.0)
    steps = np.diff(np.asarray(indices))
    step = int(np.median(steps)) if len(steps) else 1
    return fps / max(step, 1)


def people_motion(header: dict, frames: list[dict], tracks: list[dict]) -> list[PersonMotion]:
    """One PersonMotion per track id present in `frames` (decoded protocol messages, any order)."""
    body = BodyModel.from_header(header)
    track_betas = {int(t["id"]): np.asarray(t["betas"], np.float64).reshape(-1) for t in tracks}
    rows: dict[int, list] = {}
    for msg in sorted(frames, key=lambda m: int(m["index"])):
        people = msg["people"]
        ids = np.asarray(people.get("id", [])).reshape(-1)
        if not len(ids):
            continue
        poses = body.full_pose(people)
        for r, pid in enumerate(ids.tolist()):
            rows.setdefault(int(pid), []).append((int(msg["index"]), poses[r],
                                                  np.asarray(people["betas"][r], np.float64),
                                                  np.asarray(people["transl"][r], np.float64)))
    out = []
    for pid, items in sorted(rows.items()):
        index = np.array([i for i, *_ in items])
        pose = np.stack([p for _, p, _, _ in items])  # [T, J, 3] in W
        frame_betas = np.stack([b for *_, b, _ in items])
        transl = np.stack([t for *_, t in items])
        betas = track_betas.get(pid, frame_betas.mean(axis=0))
        nb = min(len(betas), body.shapedirs.shape[-1])
        # the file keeps one shape: place the pelvis where the per-frame shape put it
        j0_frame = body.J_template[0] + frame_betas[:, :nb] @ body.J_dirs[0][:, :nb].T
        j0 = body.J_template[0] + betas[:nb] @ body.J_dirs[0][:, :nb].T
        pelvis_w = j0_frame + transl
        root = M @ axis_angle_to_matrix(pose[:, 0])
        trans = pelvis_w @ M.T - j0
        full = pose.copy()
        full[:, 0] = matrix_to_axis_angle(root)
        if full.shape[1] < 55:
            full = np.concatenate([full, np.zeros((len(full), 55 - full.shape[1], 3))], axis=1)
        flat = full.reshape(len(full), -1).astype(np.float32)
        out.append(PersonMotion(pid, {
            "trans": trans.astype(np.float32), "root_orient": flat[:, :3], "poses": flat,
            "pose_body": flat[:, 3:66], "pose_jaw": flat[:, 66:69], "pose_eye": flat[:, 69:75],
            "pose_hand": flat[:, 75:165], "betas": np.asarray(betas[:nb], np.float32),
            "gender": np.array("neutral"), "surface_model_type": np.array("smplx"),
            "mocap_frame_rate": np.array(frame_rate(header, index), np.float64),
            "frame_index": index.astype(np.int32)}))
    return out
