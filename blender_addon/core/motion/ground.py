"""Gravity and floor from the scene points and the people's feet, and the rigid transform onto the floor.

All inputs are in the job's raw world W (OpenCV first camera: x right, y down, z forward, metres).
The floor is a plane {p : n·p = d} with n the unit up direction (pointing to the side the people stand
on). Evidence:
- points: MSAC plane fits on the scene cloud (3-point hypotheses whose normal lies within a gate of the
  up prior, inlier distance 2 cm, local SVD refit); walls fail the gate. Up to three planes are
  extracted one after another; the floor is the one the feet stand on, else the lowest well-supported one
  (a table top is above the floor).
- feet: foot contact points (sole points moving < 0.25 m/s, within 5 cm of the person's low percentile)
  fitted by a robust plane; a line of footprints only fixes the tilt along the line, a single spot none.
- the up prior: the median trunk direction (pelvis -> neck) of the people, else the first camera's up.
`estimate_floor` combines them; `floor_transform` builds the refined world's 4x4 (floor y = 0, up -y,
first camera's ground-projected forward along +z, first camera above the origin).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

INLIER_M = 0.02
FOOT_SPEED_MS = 0.25
FOOT_BAND_M = 0.05
SUPPORT_M = 0.05
MIN_FLOOR_POINTS = 200
MIN_CONTACT_POINTS = 20
MIN_FEET_EXTENT_M = 1.0


@dataclass
class FloorEstimate:
    """The floor in W: normal [3] (unit, up), offset d (n·p = d on the floor, metres), or None.

    evidence: 'points', 'feet', 'both' or 'none'; confidence in [0, 1]; reasons: human-readable facts
    (which cue failed and why); details: numbers for the header (inliers, rms, angles).
    """

    normal: np.ndarray | None
    offset: float | None
    evidence: str
    confidence: float
    reasons: list[str] = field(default_factory=list)
    details: dict = field(default_factory=dict)

    @property
    def found(self) -> bool:
        return self.normal is not None


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def up_prior(trunks: np.ndarray | None, first_cam_to_world: np.ndarray | None) -> tuple[np.ndarray, str]:
    """Up direction [3] from trunk vectors [N, 3] (pelvis -> neck) or the first camera's up (-y axis)."""
    if trunks is not None and len(trunks) >= 10:
        u = _unit(np.asarray(trunks, dtype=np.float64))
        m = _unit(np.median(u, axis=0))
        for _ in range(3):  # a few Weiszfeld-like steps towards the spherical median
            w = 1.0 / np.maximum(np.linalg.norm(u - m, axis=1), 1e-6)
            m = _unit((u * w[:, None]).sum(0))
        return m, "bodies"
    if first_cam_to_world is not None and np.isfinite(first_cam_to_world).all():
        return _unit(-np.asarray(first_cam_to_world, dtype=np.float64)[:3, 1]), "camera"
    return np.array([0.0, -1.0, 0.0]), "default"


def _refit(points: np.ndarray, up: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    """Least-squares plane (normal oriented to `up`, offset, singular values) through points [N, 3]."""
    centre = points.mean(0)
    _, s, vt = np.linalg.svd(points - centre, full_matrices=False)
    n = vt[2] if vt[2] @ up >= 0 else -vt[2]
    return n, float(n @ centre), s / np.sqrt(max(len(points), 1))


def msac_planes(points: np.ndarray, up: np.ndarray, gate_deg: float, rng: np.random.Generator,
                max_planes: int = 3, iterations: int = 400, min_inliers: int = MIN_FLOOR_POINTS) -> list[dict]:
    """Up to `max_planes` planes with normals within gate_deg of `up` (each: normal, offset, inliers, rms)."""
    planes = []
    remaining = points
    cos_gate = np.cos(np.radians(gate_deg))
    for _ in range(max_planes):
        if len(remaining) < max(min_inliers, 3):
            break
        idx = rng.integers(0, len(remaining), (iterations, 3))
        a, b, c = remaining[idx[:, 0]], remaining[idx[:, 1]], remaining[idx[:, 2]]
        n = np.cross(b - a, c - a)
        norm = np.linalg.norm(n, axis=1)
        ok = norm > 1e-9
        n = n[ok] / norm[ok, None]
        a = a[ok]
        n *= np.where(n @ up < 0, -1.0, 1.0)[:, None]
        keep = n @ up >= cos_gate
        n, a = n[keep], a[keep]
        if not len(n):
            break
        d = np.sum(n * a, 1)
        probe = remaining[rng.integers(0, len(remaining), min(len(remaining), 3000))]  # scoring subset
        cost = np.minimum(np.abs(probe @ n.T - d), INLIER_M).sum(0)  # MSAC: truncated distance, [H]
        best = int(np.argmin(cost))
        inl = np.abs(remaining @ n[best] - d[best]) < INLIER_M
        if inl.sum() < min_inliers:
            break
        normal, offset, _ = _refit(remaining[inl], up)
        for _ in range(2):  # local refit on the refined plane's inliers
            inl = np.abs(remaining @ normal - offset) < INLIER_M
            normal, offset, _ = _refit(remaining[inl], up)
        resid = remaining[inl] @ normal - offset
        planes.append({"normal": normal, "offset": offset, "inliers": int(inl.sum()),
                       "rms": float(np.sqrt(np.mean(resid ** 2)))})
        remaining = remaining[~inl]
    return planes


def contact_candidates(feet: list[np.ndarray], fps: float, up: np.ndarray) -> np.ndarray:
    """Probable contact points [K, 3] from per-segment foot points [T, 4, 3] (already smoothed).

    A sole point is a candidate where its speed (centred difference) is below 0.25 m/s and its height
    along `up` is within 5 cm of that person-segment's 10th percentile.
    """
    out = []
    for pts in feet:
        if len(pts) < 3:
            continue
        vel = np.zeros(pts.shape[:2])
        vel[1:-1] = np.linalg.norm(pts[2:] - pts[:-2], axis=-1) * (0.5 * fps)
        vel[0], vel[-1] = vel[1], vel[-2]
        h = pts @ up
        low = np.percentile(h, 10)
        sel = (vel < FOOT_SPEED_MS) & (h < low + FOOT_BAND_M)
        out.append(pts[sel])
    return np.concatenate(out) if out else np.zeros((0, 3))


def feet_plane(contacts: np.ndarray, up: np.ndarray) -> tuple[np.ndarray, float, dict]:
    """Plane through contact points [K, 3] (robust): full fit if they span an area, tilt along a line of
    footprints only, else the up prior; offset = median height of the inliers."""
    normal = up
    info = {"contacts": int(len(contacts))}
    pts = contacts
    for _ in range(3):  # trimmed refits: drop points > 3 cm off the plane
        centre = pts.mean(0)
        _, s, vt = np.linalg.svd(pts - centre, full_matrices=False)
        proj = (pts - centre) @ vt[0]
        extent = float(np.percentile(proj, 95) - np.percentile(proj, 5))
        spread = s / np.sqrt(len(pts))
        info.update(extent_m=extent, flatness=float(spread[1] / max(spread[0], 1e-12)))
        if extent < MIN_FEET_EXTENT_M:
            normal, info["fit"] = up, "spot"
        elif spread[1] / max(spread[0], 1e-12) < 0.1:  # a line: slope along it from a 1D fit
            line = vt[0]
            base = _unit(up - (up @ line) * line)
            slope = np.polyfit(proj, (pts - centre) @ base, 1)[0]
            normal, info["fit"] = _unit(base - slope * line), "line"
        else:
            n = vt[2] if vt[2] @ up >= 0 else -vt[2]
            normal, info["fit"] = n, "area"
        resid = (contacts - centre) @ normal
        resid -= np.median(resid)
        keep = np.abs(resid) < 0.03
        if keep.sum() < MIN_CONTACT_POINTS or keep.sum() == len(pts):
            break
        pts = contacts[keep]
    offset = float(np.median(pts @ normal))
    return normal, offset, info


def estimate_floor(points: np.ndarray | None, feet: list[np.ndarray], fps: float, trunks: np.ndarray | None,
                   first_cam_to_world: np.ndarray | None, use: str = "both", seed: int = 0) -> FloorEstimate:
    """Floor in W from scene points [N, 3] and/or people's foot points (list of [T, 4, 3]).

    use: 'both', 'points' or 'feet' (which evidence may be used). Never raises on bad data.
    """
    reasons: list[str] = []
    details: dict = {}
    up, up_source = up_prior(trunks, first_cam_to_world)
    details["up_prior"] = up_source
    gate = 25.0 if up_source == "bodies" else 45.0

    contacts = np.zeros((0, 3))
    if use in ("both", "feet"):
        feet = [f for f in feet if np.isfinite(f).all()]
        contacts = contact_candidates(feet, fps, up)
        if len(contacts) < MIN_CONTACT_POINTS:
            reasons.append(f"feet: only {len(contacts)} foot-contact samples (need {MIN_CONTACT_POINTS})")
            contacts = np.zeros((0, 3))

    planes: list[dict] = []
    if use in ("both", "points"):
        pts = np.zeros((0, 3)) if points is None else np.asarray(points, dtype=np.float64).reshape(-1, 3)
        pts = pts[np.isfinite(pts).all(1)]
        if len(pts) > 20000:  # an even subset keeps the fit fast; the plane is over-determined anyway
            pts = pts[np.linspace(0, len(pts) - 1, 20000).astype(np.int64)]
        planes = msac_planes(pts, up, gate, np.random.default_rng(seed)) if len(pts) >= MIN_FLOOR_POINTS else []
        if not planes:
            reasons.append(f"points: no floor-like plane among {len(pts)} scene points "
                           f"(need >= {MIN_FLOOR_POINTS} within {INLIER_M * 100:.0f} cm of a plane "
                           f"within {gate:.0f} deg of up)")

    scene = None
    if planes:
        if len(contacts):
            supported = []
            for p in planes:
                dist = np.abs(contacts @ p["normal"] - p["offset"])
                if np.median(dist) <= SUPPORT_M and np.mean(dist <= SUPPORT_M) >= 0.6:
                    supported.append(p)
            if supported:
                scene = max(supported, key=lambda p: p["inliers"])
            else:
                reasons.append("points: no scene plane supports the foot contacts (close-up or raised surface); "
                               "using the feet")
        else:
            best = max(p["inliers"] for p in planes)
            scene = min((p for p in planes if p["inliers"] >= 0.25 * best), key=lambda p: p["offset"])

    feet_fit = feet_plane(contacts, up) if len(contacts) else None
    if scene is not None:
        details.update(plane_inliers=scene["inliers"], plane_rms_m=scene["rms"], planes=len(planes))
    if feet_fit is not None:
        details.update(feet=feet_fit[2])

    if scene is not None and feet_fit is not None:
        normal = scene["normal"]
        offset = float(np.median(contacts @ normal))  # the feet, not the noisy cloud, define the height
        angle = float(np.degrees(np.arccos(np.clip(normal @ feet_fit[0], -1, 1))))
        details.update(angle_points_feet_deg=angle, height_points_minus_feet_m=scene["offset"] - offset)
        conf = min(1.0, scene["inliers"] / 1000) * (1.0 if angle < 5 else 0.7)
        return FloorEstimate(normal, offset, "both", round(conf, 3), reasons, details)
    if scene is not None:
        conf = min(1.0, scene["inliers"] / 1000) * max(0.2, 1.0 - scene["rms"] / INLIER_M)
        return FloorEstimate(scene["normal"], scene["offset"], "points", round(0.8 * conf, 3), reasons, details)
    if feet_fit is not None:
        fit = feet_fit[2]["fit"]
        conf = {"area": 0.8, "line": 0.6, "spot": 0.4}[fit] * min(1.0, len(contacts) / 200)
        if fit != "area":
            reasons.append(f"feet: contacts form a {fit}; the up direction comes partly from the {up_source}")
        return FloorEstimate(feet_fit[0], feet_fit[1], "feet", round(conf, 3), reasons, details)
    reasons.append("no floor evidence: the world is left as the model predicted it")
    return FloorEstimate(None, None, "none", 0.0, reasons, details)


def floor_transform(normal: np.ndarray, offset: float, first_cam_to_world: np.ndarray | None) -> np.ndarray:
    """4x4 (float64) taking W to the refined world: floor y = 0, up -y, first camera looking along +z
    (its forward projected on the floor) and standing above the origin; rigid (no scale)."""
    n = _unit(np.asarray(normal, dtype=np.float64))
    if first_cam_to_world is not None and np.isfinite(first_cam_to_world).all():
        c2w = np.asarray(first_cam_to_world, dtype=np.float64)
        forward, centre = c2w[:3, 2], c2w[:3, 3]
        if np.linalg.norm(forward - (forward @ n) * n) < 1e-3:  # looking straight down: use its up
            forward = -c2w[:3, 1]
    else:
        forward, centre = np.array([0.0, 0.0, 1.0]), np.zeros(3)
    z = _unit(forward - (forward @ n) * n)
    y = -n
    x = np.cross(y, z)
    out = np.eye(4)
    out[:3, :3] = np.stack([x, y, z])
    out[:3, 3] = (-(x @ centre), offset, -(z @ centre))
    return out
