"""How far the fast mode is from parity mode: the measures of its acceptance rule.

Acceptance (fast vs fp32 parity on the same inputs): the same detections and track ids on >= 99 %
of frames; every other output within 5e-2 of max|ref|; camera rotation within 0.2 degrees and
translation within 1 % of the scene scale; SMPL-X joints within 10 mm (MPJPE: mean over the 127
joints of the root-relative position error, per person; the world-frame joint error, which also
carries the camera's error times the distance, is reported beside it). Score maps are judged at
detection level (a peak sitting on the threshold may move by a cell), not by their largest error.
Used by the fast-mode tests and `scripts/bench_gpu.py`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

REL_TOL = 5e-2
ROTATION_TOL_DEG = 0.2
TRANSLATION_TOL = 0.01  # of the scene scale
JOINT_TOL_M = 0.010
SAME_PEOPLE_FRACTION = 0.99
DISCRETE = {"smpl_id", "smpl_scores"}


def _tensor(x: torch.Tensor | np.ndarray) -> torch.Tensor:
    """x as a tensor; arrays are copied (decoded ones may be read-only views, which torch warns about)."""
    return x if isinstance(x, torch.Tensor) else torch.from_numpy(np.array(x))


def relative_error(ref: torch.Tensor | np.ndarray, got: torch.Tensor | np.ndarray) -> float:
    """max|ref - got| / max|ref| (0 for empty arrays; inf if shapes differ or got is not finite)."""
    a = _tensor(ref).double()
    b = _tensor(got).double()
    if a.shape != b.shape or not torch.isfinite(b).all():
        return math.inf
    if a.numel() == 0:
        return 0.0
    scale = float(a.abs().max())
    err = float((a - b).abs().max())
    return err / scale if scale > 0 else (0.0 if err == 0 else math.inf)


def rotation_angle_deg(r_ref: np.ndarray, r_got: np.ndarray) -> float:
    """Angle of r_ref^T r_got in degrees (rotations [..., 3, 3]; the largest over the batch)."""
    rel = np.swapaxes(np.asarray(r_ref, np.float64), -1, -2) @ np.asarray(r_got, np.float64)
    cos = (np.trace(rel, axis1=-2, axis2=-1) - 1.0) / 2.0
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))).max(initial=0.0))


def detections(scores: torch.Tensor, threshold: float) -> set[tuple[int, int]]:
    """Cells (row, col) of an NMS'd score map [1, g, g, 1] at or above the threshold."""
    rows, cols = torch.nonzero(scores[0, ..., 0].float() >= threshold, as_tuple=True)
    return set(zip(rows.tolist(), cols.tolist()))


@dataclass
class FidelityReport:
    """Worst errors of one comparison over its frames."""

    frames: int = 0
    same_people_frames: int = 0
    relative: dict[str, float] = field(default_factory=dict)  # output name -> worst relative error
    rotation_deg: float = 0.0
    translation_rel: float = 0.0  # of the scene scale
    joints_m: float = 0.0  # worst per-person MPJPE (root-relative)
    world_joints_m: float = 0.0  # worst joint distance in the world frame (reported, not judged)

    @property
    def same_people_fraction(self) -> float:
        return self.same_people_frames / self.frames if self.frames else 1.0

    def worst(self, name: str, value: float) -> None:
        self.relative[name] = max(self.relative.get(name, 0.0), value)

    def failures(self) -> list[str]:
        """What breaks the acceptance rule (empty = accepted)."""
        out = []
        if self.same_people_fraction < SAME_PEOPLE_FRACTION:
            out.append(f"same detections/ids on {self.same_people_fraction:.1%} of frames (< 99 %)")
        out += [f"{k}: {v:.2e} > {REL_TOL} of max|ref|" for k, v in self.relative.items() if v > REL_TOL]
        if self.rotation_deg > ROTATION_TOL_DEG:
            out.append(f"camera rotation {self.rotation_deg:.3f} deg > {ROTATION_TOL_DEG}")
        if self.translation_rel > TRANSLATION_TOL:
            out.append(f"camera translation {self.translation_rel:.2%} of the scene scale > 1 %")
        if self.joints_m > JOINT_TOL_M:
            out.append(f"SMPL-X MPJPE {self.joints_m * 1000:.1f} mm > 10 mm")
        return out

    def as_dict(self) -> dict:
        return {"frames": self.frames, "same_people_fraction": self.same_people_fraction,
                "relative": dict(self.relative), "rotation_deg": self.rotation_deg,
                "translation_rel": self.translation_rel, "mpjpe_mm": self.joints_m * 1000,
                "world_joints_mm": self.world_joints_m * 1000,
                "failures": self.failures()}


def compare_model_outputs(ref: list, got: list, threshold: float, report: FidelityReport | None = None) -> FidelityReport:
    """Compare per-view `FrameOutputs` lists (same inputs). People must match (detection cells and
    ids) for the per-person outputs to be compared on that view. Camera translation is relative to
    the view's scene scale, the median depth of `pts3d_in_self_view`."""
    from backend.engine.geometry import pose_encoding_to_c2w

    report = report or FidelityReport()
    for a, b in zip(ref, got):
        report.frames += 1
        same = detections(a.smpl_scores, threshold) == detections(b.smpl_scores, threshold)
        if a.smpl_id is not None and b.smpl_id is not None:
            same = same and a.smpl_id.tolist() == b.smpl_id.tolist()
        report.same_people_frames += int(same)
        for name, ta in a.as_dict(debug=True).items():
            tb = getattr(b, name)
            if name in DISCRETE or tb is None or (name.startswith("smpl_") and not same):
                continue
            report.worst(name, relative_error(ta, tb))
        ca = pose_encoding_to_c2w(a.camera_pose[0].double()).numpy()
        cb = pose_encoding_to_c2w(b.camera_pose[0].double()).numpy()
        report.rotation_deg = max(report.rotation_deg, rotation_angle_deg(ca[:3, :3], cb[:3, :3]))
        scale = float(a.pts3d_in_self_view[..., 2].double().abs().median())
        report.translation_rel = max(report.translation_rel, float(np.linalg.norm(ca[:3, 3] - cb[:3, 3])) / scale)
    return report


def compare_frame_results(ref: list, got: list, body, report: FidelityReport | None = None) -> FidelityReport:
    """Compare the engine's `FrameResult`s of one video (same frames). Camera translation is relative
    to the frame's scene scale (median distance of its reference points from the camera); SMPL-X
    joints come from `body` (a `BodyModel`) on the world-frame parameters, person by person."""
    from backend.engine.postprocess import PEOPLE_KEYS

    report = report or FidelityReport()
    for a, b in zip(ref, got):
        report.frames += 1
        same = np.array_equal(a.people["id"], b.people["id"])
        report.same_people_frames += int(same)
        ca, cb = a.camera.cam_to_world.astype(np.float64), b.camera.cam_to_world.astype(np.float64)
        report.rotation_deg = max(report.rotation_deg, rotation_angle_deg(ca[:3, :3], cb[:3, :3]))
        if len(a.points["xyz"]):
            scale = float(np.median(np.linalg.norm(a.points["xyz"] - ca[:3, 3], axis=1)))
            report.translation_rel = max(report.translation_rel, float(np.linalg.norm(ca[:3, 3] - cb[:3, 3])) / scale)
        report.worst("K", relative_error(a.camera.K, b.camera.K))
        if same and len(a.people["id"]):
            joints = []
            for people in (a.people, b.people):
                params = {k: _tensor(people[k]).float().to(body.device) for k in PEOPLE_KEYS}
                joints.append(body.forward(params)[1].double().cpu().numpy())
            ja, jb = (j - j[:, :1] for j in joints)  # root (pelvis) relative
            mpjpe = np.linalg.norm(ja - jb, axis=-1).mean(axis=1)  # [n]
            report.joints_m = max(report.joints_m, float(mpjpe.max()))
            report.world_joints_m = max(report.world_joints_m, float(np.linalg.norm(joints[0] - joints[1], axis=-1).max()))
            for key in ("betas", "head_xy"):
                report.worst(key, relative_error(a.people[key], b.people[key]))
    return report
