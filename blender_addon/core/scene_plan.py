"""The scene plan: protocol messages in, plain dataclasses (`plans.py`) describing what Blender must
create or key out.

`ScenePlanner` is the bpy-free half of the scene builder. It consumes a job's messages in stream order
and returns, per call, only the *new* work (objects to create, keys to append), so a live import does
bounded work per batch and never rebuilds anything:

    planner = ScenePlanner(ImportOptions(), tracks=None)
    setup  = planner.header(header_msg)        -> SetupPlan   (collection, fps, frame range, resolution)
    batch  = planner.frames([frame_msg, ...])  -> FramesPlan  (camera/rigs to create, keys to append)
    update = planner.track(track_msg)          -> ReshapePlan | None (re-shape a live rig to robust betas)
    end    = planner.end(done_msg)             -> EndPlan     (scene cloud, per-frame cloud, summary)

It is a façade over one planner per kind, matching the Blender writers `build_camera`, `build_people`
and `build_points`: `plan_camera.CameraPlanner`, `plan_people.PeoplePlanner` (rigs, visibility, shape
keys, re-shaping) and `plan_points.PointsPlanner`.

Time: video frame N (the message's `index`) is Blender frame `options.scene_frame_start + N`.
"""
from __future__ import annotations

import os

import numpy as np

from .body_model import BodyModel
from .camera import scene_fps
from .choices import POINT_MODES
from .frame_range import expected_frames
from .plan_camera import CameraPlanner
from .plan_people import PeoplePlanner, PersonState
from .plan_points import PointsPlanner
from .plans import (CameraPlan, EndPlan, FramesPlan, ImportOptions, PersonPlan, ReshapePlan, SetupPlan,
                    ShapeKeySet)

__all__ = ["POINT_MODES", "CameraPlan", "EndPlan", "FramesPlan", "ImportOptions", "PersonPlan", "PersonState",
           "ReshapePlan", "ScenePlanner", "SetupPlan", "ShapeKeySet"]


class ScenePlanner:
    """Turns a job's messages into plans (see the module docstring). Holds only numpy state."""

    def __init__(self, options: ImportOptions | None = None, tracks: list[dict] | None = None):
        self.options = options or ImportOptions()
        self.track_betas: dict[int, np.ndarray] = {}
        self.short_tracks: set[int] = set()  # ids whose `track` message says they are below min_track_frames
        for t in tracks or []:
            betas = np.asarray(t["betas"], dtype=np.float64).reshape(-1)
            if np.isfinite(betas).all():
                self.track_betas[int(t["id"])] = betas
            if t.get("n_frames") is not None and int(t["n_frames"]) < self.options.min_track_frames:
                self.short_tracks.add(int(t["id"]))
        self.body: BodyModel | None = None
        self.setup: SetupPlan | None = None
        self.camera = CameraPlanner(self.options.video_background)
        self.persons: PeoplePlanner | None = None  # made by header() once the body model is known
        self.points = PointsPlanner(self.options)
        self.first_frame: int | None = None  # Blender frame of the first processed frame
        self.last_frame: int | None = None
        self.frames_planned = 0
        self.warnings: list[str] = []

    @property
    def people(self) -> dict[int, PersonState]:
        """Track id -> what is known of that person's rig (empty before the first person)."""
        return self.persons.people if self.persons is not None else {}

    # ------------------------------------------------------------------------------------------ header
    def header(self, msg: dict) -> SetupPlan:
        """Plan scene settings from the `header` message and load its body model."""
        video = msg.get("video") or {}
        path = video.get("path") or None
        name = self.options.collection_name or (os.path.splitext(os.path.basename(path))[0] if path else "Human3R")
        fps, fps_base = scene_fps(video.get("fps"), video.get("fps_fraction"))
        count = int(video.get("frame_count") or 0)
        start = int(self.options.scene_frame_start)
        warnings = []
        try:
            self.body = BodyModel.from_header(msg)
        except (KeyError, ValueError) as exc:
            self.body = None
            warnings.append(f"no usable body model in the header ({exc}); people are skipped")
        smplx = msg.get("smplx") or {}
        if self.body is not None and smplx.get("flat_hand_mean", True) is False and self.body.left_hand_mean is None:
            warnings.append("header says flat_hand_mean=False but carries no hand means; hands use the flat mean")
        if self.body is not None:
            self.persons = PeoplePlanner(self.body, self.options, self.track_betas, self.short_tracks)
        self.camera.header(video)
        self.warnings.extend(warnings)
        opts = msg.get("options") or {}
        first, stride = int(opts.get("start") or 0), max(1, int(opts.get("stride") or 1))
        n = expected_frames(count or None, first, opts.get("end"), stride)
        self.setup = SetupPlan(collection_name=name, fps=fps, fps_base=fps_base, frame_start=start,
                               frame_end=start + count - 1 if count > 0 else None, range_start=start + first,
                               range_end=start + first + (n - 1) * stride if n else None,
                               width=int(video.get("width") or 0), height=int(video.get("height") or 0),
                               video_path=path, warnings=warnings)
        return self.setup

    # ------------------------------------------------------------------------------------------ frames
    def frames(self, msgs: list[dict], deferred: bool = False) -> FramesPlan:
        """Plan one batch of `frame` messages (increasing `index`; repeats of planned frames are skipped).
        `deferred`: people are planned by the tasks in `plan.people_tasks`, run by the caller in order."""
        if self.setup is None:
            raise RuntimeError("frames() before header()")
        plan = FramesPlan()
        msgs = [m for m in msgs if self.last_frame is None or self._blender_frame(m) > self.last_frame]
        msgs.sort(key=lambda m: int(m["index"]))
        if not msgs:
            plan.last_frame = self.last_frame
            return plan
        frames = np.array([self._blender_frame(m) for m in msgs], dtype=np.int64)
        if self.first_frame is None:
            self.first_frame = int(frames[0])
        if self.options.import_camera:
            self.camera.frames(msgs, frames, self.setup, plan)
        if self.persons is not None:
            self.persons.frames(msgs, frames, self.first_frame, self.setup.collection_name, plan, deferred)
        self.points.frames(msgs, frames)
        self.last_frame = int(frames[-1])
        self.frames_planned += len(msgs)
        plan.frames = len(msgs)
        plan.last_frame = self.last_frame
        return plan

    def _blender_frame(self, msg: dict) -> int:
        return int(self.options.scene_frame_start) + int(msg["index"])

    def shape_key_set(self) -> ShapeKeySet | None:
        """The body meshes' shape keys per the options and the header (None without a body model)."""
        return self.persons.shape_key_set() if self.persons is not None else None

    # ------------------------------------------------------------------------------------------- track
    def track(self, msg: dict) -> ReshapePlan | None:
        """Record a track's robust betas; re-shape its rig if it already exists with other betas."""
        pid = int(msg["id"])
        betas = np.asarray(msg["betas"], dtype=np.float64).reshape(-1)
        if not np.isfinite(betas).all():
            self.warnings.append(f"track {pid}: non-finite betas ignored")
            return None
        self.track_betas[pid] = betas
        return self.persons.reshape(pid, betas) if self.persons is not None else None

    # --------------------------------------------------------------------------------------------- end
    def end(self, msg: dict | None) -> EndPlan:
        """Plan the clouds and the summary for the terminal message (`done`, `error`, `cancelled` or None)."""
        scene_cloud = self.points.scene_cloud(msg)
        frame_cloud = self.points.frame_cloud()
        if self.camera.bad_frames:
            self.warnings.append(f"{self.camera.bad_frames} frame(s) had an invalid camera; the previous one was held")
        bad_rows = self.persons.bad_rows if self.persons is not None else 0
        if bad_rows:
            self.warnings.append(f"{bad_rows} person row(s) had non-finite parameters and were skipped")
        dropped = self.persons.dropped if self.persons is not None else 0
        if dropped:
            self.warnings.append(f"{dropped} short track(s) (seen in fewer than {self.options.min_track_frames} "
                                 f"frames) were left out; set Min Track (Scene Import) to 1 to import every track")
        if msg is not None:  # the server's own words: a truncated video, a frame cap, why it cancelled
            self.warnings.extend(w for w in msg.get("warnings") or () if isinstance(w, str))
            if msg.get("type") == "cancelled" and isinstance(msg.get("reason"), str):
                self.warnings.append(f"the server cancelled the job: {msg['reason']}")
        summary = {
            "status": (msg or {}).get("type", "incomplete"),
            "frames": self.frames_planned,
            "people": sorted(self.people),
            "tracks_dropped": dropped,
            "first_frame": self.first_frame,
            "last_frame": self.last_frame,
            "scene_points": scene_cloud.count if scene_cloud else 0,
            "frame_points": frame_cloud.count if frame_cloud else 0,
            "warnings": list(self.warnings),
        }
        if msg is not None and msg.get("type") == "error":
            summary["error"] = {"code": msg.get("code"), "message": msg.get("message")}
        return EndPlan(scene_cloud, frame_cloud, summary)
