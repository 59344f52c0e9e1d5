"""The live (causal) clean-up: frames are refined as they arrive, without looking ahead.

- Smoothing: per person, One Euro filters on SO(3) for every joint rotation and on the pelvis position;
  a person who reappears after a gap starts fresh filters. The camera is never filtered live.
- Floor: evidence (scene points, trunk directions, foot points) accumulates until at least
  `MIN_EVIDENCE_S` of frames have arrived; the floor is then estimated every `RETRY_S` until found, and
  held from then on. The frame on which it is found carries `ground` {from_raw [4, 4] f8, evidence,
  confidence, reasons}: the data themselves stay in the raw world W, and a viewer applies the transform
  once (the add-on keys one transform) instead of rewriting what it already showed.
- Foot lock needs the frames after a contact, so it runs offline only (`refine_job`).
`refine_stream` wraps a job's message iterator (header, frames, ...) with this stage.
"""
from __future__ import annotations

from typing import Iterable, Iterator

import numpy as np

from ..body_model import BodyModel
from . import options as o
from .ground import estimate_floor, floor_transform
from .kinematics import BodyShape, foot_points, forward_rest, local_matrices
from .options import CleanupOptions
from .refine import ROT_FIELDS, _py
from .smooth import one_euro_positions, one_euro_rotations
from .so3 import aa_to_quat, quat_to_aa

MIN_EVIDENCE_S = 2.0
RETRY_S = 1.0
MIN_CONFIDENCE = 0.3
MAX_POINTS = 20000
MAX_FEET_FRAMES = 900


class _Track:
    """One person's filter state: rotations [55, 4] + angular speeds [55], pelvis [3] + speed."""

    def __init__(self, q: np.ndarray, root: np.ndarray, frame: int):
        self.q, self.q_speed = q, np.zeros(q.shape[:-1])
        self.root, self.root_speed = root, np.zeros(())
        self.frame = frame


class LiveRefiner:
    """Causal clean-up of one job's stream; `header(msg)` first, then `frame(msg)` per frame (any order of
    people, gaps allowed). Never raises on bad data: a frame it cannot refine passes through unchanged."""

    def __init__(self, options: CleanupOptions | dict | None = None):
        self.options = CleanupOptions.from_dict(options)
        self.body: BodyModel | None = None
        self.fps = 30.0
        self.tracks: dict[int, _Track] = {}
        self.shapes: dict[int, BodyShape] = {}
        self.frames_seen = 0
        self.last_time: float | None = None
        self.feet: dict[int, list[np.ndarray]] = {}
        self.points: list[np.ndarray] = []
        self.n_points = 0
        self.trunks: list[np.ndarray] = []
        self.first_c2w: np.ndarray | None = None
        self.ground: dict | None = None
        self.next_try = 0
        self.reasons: list[str] = []

    def header(self, msg: dict) -> dict:
        out = dict(msg)
        try:
            self.body = BodyModel.from_header(msg)
        except Exception as exc:
            self.reasons.append(f"header has no usable body_model ({type(exc).__name__}); people pass unfiltered")
        fps = float((msg.get("video") or {}).get("fps") or 30.0)
        stride = int((msg.get("options") or {}).get("stride") or 1)
        self.fps = fps / max(stride, 1) if np.isfinite(fps) and fps > 0 else 30.0
        s = self.options.smooth
        out["refinement"] = _py({
            "stage": "live", "options": self.options.to_dict(), "reasons": list(self.reasons),
            "smooth": {"applied": s > 0, "filter": "One Euro (SO(3) geodesic for rotations, pelvis position)",
                       "min_cutoff_hz": o.ONE_EURO_MIN_CUTOFF_HZ / max(s, 1e-3), "beta_pos_s_per_m": o.ONE_EURO_BETA_POS,
                       "beta_rot_s_per_rad": o.ONE_EURO_BETA_ROT, "d_cutoff_hz": 1.0},
            "ground": {"applied": False, "mode": self.options.ground,
                       "held": "the first frame carrying `ground` holds the W -> floor transform"},
            "foot_lock": {"applied": False, "why": "needs the frames after each contact: run offline"},
        })
        return out

    def frame(self, msg: dict) -> dict:
        try:
            return self._frame(msg)
        except Exception as exc:  # a bad frame passes through; the stream goes on
            self.reasons.append(f"frame {msg.get('index')}: left unchanged ({type(exc).__name__}: {exc})")
            return msg

    def _frame(self, msg: dict) -> dict:
        index = int(msg.get("index", self.frames_seen))
        time = float(msg.get("time", index / self.fps))
        dt = time - self.last_time if self.last_time is not None and time > self.last_time else 1.0 / self.fps
        self.last_time = time
        self.frames_seen += 1
        out = dict(msg)
        people = dict(msg.get("people") or {})
        ids = np.asarray(people.get("id", np.zeros(0, np.int32))).reshape(-1)
        if self.options.smooth > 0 and self.body is not None and len(ids):
            people = {k: (np.array(v, copy=True) if isinstance(v, np.ndarray) else v) for k, v in people.items()}
            self._filter_people(people, ids, dt)
            out["people"] = people
        if self.options.ground != "off" and self.ground is None:
            self._collect(msg, people, ids)
            if self.frames_seen >= self.next_try and self.frames_seen >= MIN_EVIDENCE_S * self.fps:
                self.next_try = self.frames_seen + int(RETRY_S * self.fps)
                found = self._estimate()
                if found is not None:
                    out["ground"] = found
        return out

    def _filter_people(self, people: dict, ids: np.ndarray, dt: float) -> None:
        """Filter every valid person of the frame in one batch (people arrays are copies, written in place)."""
        n = len(ids)
        aa = np.concatenate([np.asarray(people[name], np.float64).reshape(n, k, 3) if name in people
                             else np.zeros((n, k, 3)) for name, k in ROT_FIELDS], axis=1)  # [n, 55, 3]
        betas = np.asarray(people["betas"], np.float64).reshape(n, -1)
        transl = np.asarray(people["transl"], np.float64).reshape(n, 3)
        ok = np.isfinite(aa).all((1, 2)) & np.isfinite(betas).all(1) & np.isfinite(transl).all(1)
        for pid in ids[~ok].tolist():
            self.tracks.pop(int(pid), None)  # restart after a bad sample
        rows = np.flatnonzero(ok)
        if not len(rows):
            return
        b = betas[rows, :self.body.J_dirs.shape[-1]]
        pelvis0 = self.body.J_template[0] + b @ self.body.J_dirs[0, :, :b.shape[1]].T
        q = aa_to_quat(aa[rows])
        root = pelvis0 + transl[rows]
        cont = [i for i, r in enumerate(rows) if (t := self.tracks.get(int(ids[r]))) is not None
                and t.frame == self.frames_seen - 1]
        out_q, out_root = q.copy(), root.copy()
        if cont:
            tracks = [self.tracks[int(ids[rows[i]])] for i in cont]
            s = max(self.options.smooth, 1e-3)
            vq, sq = one_euro_rotations(np.stack([t.q for t in tracks]), np.stack([t.q_speed for t in tracks]),
                                        q[cont], dt, o.ONE_EURO_MIN_CUTOFF_HZ / s, o.ONE_EURO_BETA_ROT)
            vr, sr = one_euro_positions(np.stack([t.root for t in tracks]), np.stack([t.root_speed for t in tracks]),
                                        root[cont], dt, o.ONE_EURO_MIN_CUTOFF_HZ / s, o.ONE_EURO_BETA_POS)
            out_q[cont], out_root[cont] = vq, vr
            for t, a, b_, c, d in zip(tracks, vq, sq, vr, sr):
                t.q, t.q_speed, t.root, t.root_speed, t.frame = a, b_, c, d, self.frames_seen
        for i, r in enumerate(rows):
            if i not in cont:  # new, or back after a gap: fresh filters
                self.tracks[int(ids[r])] = _Track(q[i], root[i], self.frames_seen)
        aa_out = quat_to_aa(out_q)
        start = 0
        for name, k in ROT_FIELDS:
            if name in people:
                shape = people[name].shape
                people[name][rows] = aa_out[:, start:start + k].reshape((len(rows),) + shape[1:])
            start += k
        people["transl"][rows] = out_root - pelvis0

    def _collect(self, msg: dict, people: dict, ids: np.ndarray) -> None:
        cam = np.asarray((msg.get("camera") or {}).get("cam_to_world", np.full((4, 4), np.nan)), np.float64)
        if self.first_c2w is None and np.isfinite(cam).all():
            self.first_c2w = cam
        xyz = np.asarray((msg.get("points") or {}).get("xyz", np.zeros((0, 3))), np.float64).reshape(-1, 3)
        if len(xyz) and self.n_points < MAX_POINTS:
            take = xyz[::max(1, len(xyz) // 300)]
            self.points.append(take)
            self.n_points += len(take)
        if self.body is None or not len(ids):
            return
        n = len(ids)
        go = np.asarray(people["global_orient"], np.float64).reshape(n, 3)
        bp = np.asarray(people["body_pose"], np.float64).reshape(n, 21, 3)
        betas = np.asarray(people["betas"], np.float64).reshape(n, -1)
        transl = np.asarray(people["transl"], np.float64).reshape(n, 3)
        ok = np.isfinite(go).all(1) & np.isfinite(bp).all((1, 2)) & np.isfinite(betas).all(1) & np.isfinite(transl).all(1)
        rows = np.flatnonzero(ok)
        if not len(rows):
            return
        shapes = []
        for r in rows:
            pid = int(ids[r])
            if pid not in self.shapes:
                self.shapes[pid] = BodyShape.from_model(self.body, betas[r])
            shapes.append(self.shapes[pid])
        b = betas[rows, :self.body.J_dirs.shape[-1]]
        root = self.body.J_template[0] + b @ self.body.J_dirs[0, :, :b.shape[1]].T + transl[rows]
        rot, pos = forward_rest(np.stack([s.rest for s in shapes]), shapes[0].parents,
                                local_matrices(go[rows], bp[rows]), root)
        self.trunks.extend(pos[:, 12] - pos[:, 0])
        feet = foot_points(np.stack([s.sole_offsets for s in shapes]), rot, pos)
        for r, f in zip(rows, feet):
            track_feet = self.feet.setdefault(int(ids[r]), [])
            track_feet.append(f)
            del track_feet[:-MAX_FEET_FRAMES]

    def _estimate(self) -> dict | None:
        feet = [np.stack(f) for f in self.feet.values() if len(f) >= 3]
        points = np.concatenate(self.points) if self.points else None
        trunks = np.stack(self.trunks) if self.trunks else None
        est = estimate_floor(points, feet, self.fps, trunks, self.first_c2w, self.options.ground)
        if not est.found or est.confidence < MIN_CONFIDENCE:
            return None
        self.ground = {"from_raw": floor_transform(est.normal, est.offset, self.first_c2w),
                       "evidence": est.evidence, "confidence": est.confidence, "reasons": list(est.reasons),
                       "frame": self.frames_seen - 1}
        return dict(self.ground)


def refine_stream(messages: Iterable[dict], options: CleanupOptions | dict | None) -> Iterator[dict]:
    """Apply `LiveRefiner` to a job's message stream (header and frames; everything else passes)."""
    live = LiveRefiner(options)
    for msg in messages:
        mtype = msg.get("type")
        if mtype == "header":
            yield live.header(msg)
        elif mtype == "frame":
            yield live.frame(msg)
        else:
            yield msg
