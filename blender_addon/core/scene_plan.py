"""The scene plan: protocol messages in, plain dataclasses describing what Blender must create or key out.

`ScenePlanner` is the bpy-free half of the scene builder. It consumes a job's messages in stream order
and returns, per call, only the *new* work (objects to create, keys to append), so a live import does
bounded work per batch and never rebuilds anything:

    planner = ScenePlanner(ImportOptions(), tracks=None)
    setup  = planner.header(header_msg)        -> SetupPlan   (collection, fps, frame range, resolution)
    batch  = planner.frames([frame_msg, ...])  -> FramesPlan  (camera/rigs to create, keys to append)
    update = planner.track(track_msg)          -> ReshapePlan | None (re-shape a live rig to robust betas)
    end    = planner.end(done_msg)             -> EndPlan     (scene cloud, per-frame cloud, summary)

Rest pose of a person's rig (one rig per track id): the track's robust betas when known before the
person's first frame (file import reads `track` messages first), otherwise the betas of the person's
first frame (live). A later `track` message re-shapes a live rig (bone heads, mesh, pelvis keys) while
keeping its bone orientations, so all rotation keys stay valid. Per-frame betas still place the pelvis:
its world position is J_0(β_frame) + transl every frame.

People absent from a processed frame are hidden by keying the root bone's scale to 0 (CONSTANT
interpolation; 1 while present). That hides the skinned mesh in every viewport and render engine and
survives FBX/glTF export, unlike keyed object visibility. Their pose holds between present frames.

Shape keys on the body mesh (optional, keyed per frame like the bones): the 10 expression blend shapes
(`Exp000`...; on by default) and the 486 SMPL-X pose correctives (`Pose000`..., weights (R_j - I); off by
default: slow to key and to play back). The rig's joints come from the betas only, so an expression
moves face vertices but not the jaw/eye joints (smplx also re-regresses those from the expression; the
difference is limited to the face and not measured on the real model).

Time: video frame N (the message's `index`) is Blender frame `options.scene_frame_start + N`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from .body_model import BodyModel, pose_feature
from .camera import CameraFit, camera_fit, lens_and_shift, scene_fps
from .coords import C, M, camera_matrix_world
from .keyframes import CONSTANT, LINEAR, FCurveKeys, bone_path, changes_only, channel_keys, interleave
from .pointcloud import CloudData, FrameCloudAccumulator, cloud_from_world
from .rotations import axis_angle_to_matrix, matrix_to_quaternion, quaternion_continuity
from .skeleton import RigRest, build_rig_rest, pose_to_bone_channels

POINT_MODES = ("ACCUMULATED", "PER_FRAME", "BOTH", "NONE")
_LENS_CHANNELS = ("lens", "shift_x", "shift_y")


@dataclass
class ImportOptions:
    """What to build. Field names match the add-on's scene settings where they overlap."""

    scene_frame_start: int = 1  # Blender frame showing video frame 0 (not the job's first source frame)
    import_camera: bool = True
    video_background: bool = True
    import_meshes: bool = True  # skinned SMPL-X mesh under each armature
    expressions: bool = True  # expression shape keys, keyed per frame (needs header exprdirs)
    pose_correctives: bool = False  # 486 pose-corrective shape keys, keyed per frame (needs header posedirs)
    point_mode: str = "BOTH"  # one of POINT_MODES
    point_radius: float = 0.01  # metres, display radius of points
    max_points: int = 0  # per cloud object; 0 = no budget
    set_scene: bool = True  # scene fps, frame range, render resolution from the video
    collection_name: str | None = None  # default: the video's file name without extension

    @property
    def scene_points(self) -> bool:
        return self.point_mode in ("ACCUMULATED", "BOTH")

    @property
    def frame_points(self) -> bool:
        return self.point_mode in ("PER_FRAME", "BOTH")


@dataclass
class SetupPlan:
    """Scene-level settings from the header."""

    collection_name: str
    fps: int
    fps_base: float
    frame_start: int
    frame_end: int | None  # None while the clip length is unknown
    width: int
    height: int
    video_path: str | None
    warnings: list[str] = field(default_factory=list)


@dataclass
class CameraPlan:
    """The camera to create: static settings; its keys come with each FramesPlan."""

    name: str
    fit: CameraFit
    lens: float
    shift_x: float
    shift_y: float
    video_path: str | None
    clip_start: float = 0.01
    clip_end: float = 1000.0
    video_rotation: int = 0  # counter-clockwise degrees the reader applied to make frames upright
    video_mirrored: bool = False


@dataclass
class ShapeKeySet:
    """Shape keys of every body mesh (shared by all people): names [K] and offsets [K, V, 3] float32,
    Blender frame, metres, relative to the basis (the rig's shaped rest mesh)."""

    names: tuple[str, ...]
    offsets: np.ndarray
    expressions: int  # the first `expressions` keys are Exp###, the rest Pose###


@dataclass
class PersonPlan:
    """One person's rig to create: armature + (optionally) skinned mesh with shape keys."""

    track_id: int
    name: str
    rest: RigRest
    faces: np.ndarray | None  # [F, 3] int32, None when meshes are off
    weights: list[tuple[np.ndarray, np.ndarray]] | None  # per joint: (vertex indices int32, weights float32)
    shape_keys: ShapeKeySet | None = None


@dataclass
class FramesPlan:
    """New work for one batch of frames, in the order it must be applied."""

    camera: CameraPlan | None = None  # create the camera (first batch only)
    new_people: list[PersonPlan] = field(default_factory=list)
    camera_object_keys: list[FCurveKeys] = field(default_factory=list)  # location, rotation_quaternion
    camera_data_keys: list[FCurveKeys] = field(default_factory=list)  # lens, shift_x, shift_y (when varying)
    people_keys: dict[int, list[FCurveKeys]] = field(default_factory=dict)  # on each armature object
    shape_keys: dict[int, list[FCurveKeys]] = field(default_factory=dict)  # on each body mesh's Key
    frames: int = 0  # frames in this batch that were planned (duplicates skipped)
    last_frame: int | None = None  # last Blender frame keyed so far


@dataclass
class ReshapePlan:
    """Re-shape a live rig: new heads/tails (same orientations), mesh, and the whole root-location curve."""

    track_id: int
    rest: RigRest
    root_location_keys: list[FCurveKeys]  # replace the existing location curves entirely


@dataclass
class EndPlan:
    scene_cloud: CloudData | None
    frame_cloud: CloudData | None
    summary: dict


@dataclass
class _PersonState:
    rest: RigRest
    last_quat: np.ndarray | None = None  # [J, 4] last keyed quaternions (sign continuity across batches)
    visible: float | None = None  # last keyed scale value
    pelvis_frames: list = field(default_factory=list)  # [n] Blender frames (for re-keying after reshape)
    pelvis_world: list = field(default_factory=list)  # [n, 3] W pelvis positions
    frames_seen: int = 0

    @property
    def rotation_paths(self) -> list[str]:
        if not hasattr(self, "_rotation_paths"):
            self._rotation_paths = [bone_path(b, "rotation_quaternion") for b in self.rest.names]
        return self._rotation_paths


class ScenePlanner:
    """Turns a job's messages into plans (see module docstring). Holds only numpy state."""

    def __init__(self, options: ImportOptions | None = None, tracks: list[dict] | None = None):
        self.options = options or ImportOptions()
        if self.options.point_mode not in POINT_MODES:
            raise ValueError(f"point_mode must be one of {POINT_MODES}, not {self.options.point_mode!r}")
        self.track_betas: dict[int, np.ndarray] = {}
        for t in tracks or []:
            betas = np.asarray(t["betas"], dtype=np.float64).reshape(-1)
            if np.isfinite(betas).all():
                self.track_betas[int(t["id"])] = betas
        self.body: BodyModel | None = None
        self.setup: SetupPlan | None = None
        self.people: dict[int, _PersonState] = {}
        self.frame_points = FrameCloudAccumulator(self.options.max_points)
        self._weights: list[tuple[np.ndarray, np.ndarray]] | None = None
        self._shape_set: ShapeKeySet | None | bool = False  # False: not computed yet
        self._camera_made = False
        self._video_orientation = (0, False)  # (rotation, mirrored) of the source, from the header
        self._cam_last_quat: np.ndarray | None = None
        self._lens_frames: list[np.ndarray] = []
        self._lens_values: list[np.ndarray] = []  # [n, 3] lens, shift_x, shift_y
        self._lens_keyed = [False, False, False]
        self._fit: CameraFit | None = None
        self.first_frame: int | None = None  # Blender frame of the first processed frame
        self.last_frame: int | None = None
        self.frames_planned = 0
        self.bad_camera_frames = 0  # frames whose camera pose or intrinsics were invalid (held the previous)
        self.bad_people_rows = 0  # person rows dropped for non-finite parameters
        self.warnings: list[str] = []

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
        self._video_orientation = (int(video.get("rotation") or 0) % 360, bool(video.get("mirrored")))
        self.warnings.extend(warnings)
        self.setup = SetupPlan(collection_name=name, fps=fps, fps_base=fps_base, frame_start=start,
                               frame_end=start + count - 1 if count > 0 else None,
                               width=int(video.get("width") or 0), height=int(video.get("height") or 0),
                               video_path=path, warnings=warnings)
        return self.setup

    # ------------------------------------------------------------------------------------------ frames
    def frames(self, msgs: list[dict]) -> FramesPlan:
        """Plan one batch of `frame` messages (increasing `index`; repeats of planned frames are skipped)."""
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
            self._plan_camera(msgs, frames, plan)
        if self.body is not None:
            self._plan_people(msgs, frames, plan)
        if self.options.frame_points:
            for m, f in zip(msgs, frames):
                self.frame_points.add(int(f), m.get("points"))
        self.last_frame = int(frames[-1])
        self.frames_planned += len(msgs)
        plan.frames = len(msgs)
        plan.last_frame = self.last_frame
        return plan

    def _blender_frame(self, msg: dict) -> int:
        return int(self.options.scene_frame_start) + int(msg["index"])

    def _plan_camera(self, msgs: list[dict], frames: np.ndarray, plan: FramesPlan) -> None:
        c2w = np.stack([np.asarray(m["camera"]["cam_to_world"], dtype=np.float64) for m in msgs])
        K = np.stack([np.asarray(m["camera"]["K"], dtype=np.float64) for m in msgs])
        if self._fit is None:
            cam = msgs[0]["camera"]
            w = int(cam.get("width") or self.setup.width)
            h = int(cam.get("height") or self.setup.height)
            if w <= 0 or h <= 0:  # fall back to the principal point
                cx, cy = K[0, 0, 2], K[0, 1, 2]
                w, h = (int(round(2 * cx + 1)), int(round(2 * cy + 1))) if np.isfinite([cx, cy]).all() else (1920, 1080)
            self._sanitize_camera(c2w, K, w, h)
            self._fit = camera_fit(w, h, K[0, 0, 0], K[0, 1, 1])
        else:
            self._sanitize_camera(c2w, K, self._fit.width, self._fit.height)
            if not self.setup.width or not self.setup.height:
                self.setup.width, self.setup.height = w, h
        lens = lens_and_shift(K, self._fit)  # [n, 3]
        if not self._camera_made:
            lens0 = lens[0]
            plan.camera = CameraPlan(name=f"{self.setup.collection_name} camera", fit=self._fit,
                                     lens=float(lens0[0]), shift_x=float(lens0[1]), shift_y=float(lens0[2]),
                                     video_path=self.setup.video_path if self.options.video_background else None,
                                     video_rotation=self._video_orientation[0],
                                     video_mirrored=self._video_orientation[1])
            self._camera_made = True
        mw = camera_matrix_world(c2w)
        quat = quaternion_continuity(matrix_to_quaternion(mw[:, :3, :3]), self._cam_last_quat)
        self._cam_last_quat = quat[-1]
        plan.camera_object_keys += channel_keys("location", frames, mw[:, :3, 3], LINEAR, "Object Transforms")
        plan.camera_object_keys += channel_keys("rotation_quaternion", frames, quat, LINEAR, "Object Transforms")
        # lens / shifts: static (the first frame's value) until one differs; then keyed from the first frame on
        if not all(self._lens_keyed):
            self._lens_frames.append(frames)
            self._lens_values.append(lens)
        first = self._lens_values[0][0] if self._lens_values else lens[0]
        for c, name in enumerate(_LENS_CHANNELS):
            if self._lens_keyed[c]:
                plan.camera_data_keys += channel_keys(name, frames, lens[:, c], LINEAR)
            elif np.abs(lens[:, c] - first[c]).max() > 1e-6 * max(1.0, abs(float(first[c]))):
                history = np.concatenate(self._lens_values)[:, c]
                plan.camera_data_keys += channel_keys(name, np.concatenate(self._lens_frames), history, LINEAR)
                self._lens_keyed[c] = True
        if all(self._lens_keyed):  # history no longer needed
            self._lens_frames, self._lens_values = [], []

    def _sanitize_camera(self, c2w: np.ndarray, K: np.ndarray, width: int, height: int) -> None:
        """Replace (in place) non-finite poses and non-positive/non-finite focal lengths by the last valid
        frame's values (or identity / a 53° field of view), so one bad prediction cannot break the camera."""
        bad_pose = ~np.isfinite(c2w).all(axis=(1, 2))
        f = K[:, [0, 1], [0, 1]]
        bad_k = ~(np.isfinite(K).all(axis=(1, 2)) & (f > 0).all(axis=1))
        if not (bad_pose.any() or bad_k.any()):
            self._last_good_camera = (c2w[-1].copy(), K[-1].copy())
            return
        last_pose, last_k = getattr(self, "_last_good_camera", (None, None))
        if last_k is None:
            focal = float(max(width, height))
            last_k = np.array([[focal, 0, width / 2 - 0.5], [0, focal, height / 2 - 0.5], [0, 0, 1.0]])
        last_pose = np.eye(4) if last_pose is None else last_pose
        for i in range(len(K)):
            if bad_pose[i]:
                c2w[i] = last_pose
            last_pose = c2w[i]
            if bad_k[i]:
                K[i] = last_k
            last_k = K[i]
        self._last_good_camera = (c2w[-1].copy(), K[-1].copy())
        self.bad_camera_frames += int((bad_pose | bad_k).sum())

    def _plan_people(self, msgs: list[dict], frames: np.ndarray, plan: FramesPlan) -> None:
        body = self.body
        rows_per_frame = [np.asarray(m["people"].get("id", np.zeros(0, np.int32))).reshape(-1) for m in msgs]
        ids = np.concatenate(rows_per_frame).astype(np.int64) if rows_per_frame else np.zeros(0, np.int64)
        row_frames = np.repeat(frames, [len(r) for r in rows_per_frame])
        unique = np.zeros(len(ids), dtype=bool)  # a track id twice in one frame: keep its first row
        unique[np.unique(np.stack([row_frames, ids], 1), axis=0, return_index=True)[1]] = True
        if len(ids):
            people = _concat_people([m["people"] for m in msgs if len(np.asarray(m["people"].get("id", [])))])
            poses = body.full_pose(people)
            betas = np.asarray(people["betas"], dtype=np.float64).reshape(len(ids), -1)
            transl = np.asarray(people["transl"], dtype=np.float64).reshape(len(ids), 3)
            nb = min(betas.shape[1], body.J_dirs.shape[-1])
            pelvis = body.J_template[0] + betas[:, :nb] @ body.J_dirs[0][:, :nb].T + transl  # J_0(β_frame) + transl, W
            finite = np.isfinite(poses).all(axis=(1, 2)) & np.isfinite(pelvis).all(axis=1)
            self.bad_people_rows += int((~finite & unique).sum())
            unique &= finite  # rows with NaN/inf parameters are treated as absent
        # new people first (their rigs must exist before their keys are applied)
        for pid in dict.fromkeys(ids[unique].tolist()):
            if pid not in self.people:
                first = int(np.flatnonzero((ids == pid) & unique)[0])
                b = self.track_betas.get(pid, betas[first])
                rest = build_rig_rest(body, b)
                self.people[pid] = _PersonState(rest=rest)
                plan.new_people.append(self._person_plan(pid, rest))
        for pid, state in self.people.items():
            sel = np.flatnonzero((ids == pid) & unique)
            keys: list[FCurveKeys] = []
            root = state.rest.names[0]
            if len(sel):
                pf = row_frames[sel]
                quats, root_loc = pose_to_bone_channels(poses[sel], pelvis[sel], state.rest)
                quats = quaternion_continuity(quats, state.last_quat)
                state.last_quat = quats[-1]
                rows = interleave(pf, quats.reshape(len(pf), -1))  # one row per (bone, w/x/y/z)
                for j, (bone, path) in enumerate(zip(state.rest.names, state.rotation_paths)):
                    keys += [FCurveKeys(path, c, rows[4 * j + c], LINEAR, bone) for c in range(4)]
                keys += channel_keys(bone_path(root, "location"), pf, root_loc, LINEAR, root)
                state.pelvis_frames.append(pf)
                state.pelvis_world.append(pelvis[sel])
                state.frames_seen += len(sel)
                shape_keys = self._shape_key_keys(pf, poses[sel], people, sel)
                if shape_keys:
                    plan.shape_keys[pid] = shape_keys
            # visibility: root scale 1 on frames with the person, 0 on processed frames without
            present = np.isin(frames, row_frames[sel]).astype(np.float32)
            # a new rig starts hidden: its first key is 0 at the job's first frame unless present there
            vis_frames, vis_values = changes_only(frames, present, 0.0 if state.visible is None else state.visible)
            if state.visible is None and len(vis_frames) and vis_frames[0] > self.first_frame:
                vis_frames = np.concatenate([[self.first_frame], vis_frames])
                vis_values = np.concatenate([[0.0], vis_values]).astype(np.float32)
            if len(vis_frames):
                state.visible = float(vis_values[-1])
                keys += channel_keys(bone_path(root, "scale"), vis_frames, np.repeat(vis_values[:, None], 3, 1),
                                     CONSTANT, root)
            if keys:
                plan.people_keys[pid] = keys

    def _person_plan(self, pid: int, rest: RigRest) -> PersonPlan:
        name = f"{self.setup.collection_name} person {pid}"
        if not self.options.import_meshes:
            return PersonPlan(pid, name, rest, None, None)
        if self._weights is None:
            w = self.body.lbs_weights
            self._weights = [(np.flatnonzero(w[:, j] > 0).astype(np.int32), w[w[:, j] > 0, j].astype(np.float32))
                             for j in range(w.shape[1])]
        return PersonPlan(pid, name, rest, self.body.faces, self._weights, self.shape_key_set())

    def shape_key_set(self) -> ShapeKeySet | None:
        """The body meshes' shape keys per the options and the header (None when there are none)."""
        if self._shape_set is False:
            body, opts = self.body, self.options
            names, parts, n_expr = [], [], 0
            if opts.import_meshes and opts.expressions and body.exprdirs is not None:
                n_expr = body.exprdirs.shape[-1]
                names += [f"Exp{e:03d}" for e in range(n_expr)]
                parts.append(np.moveaxis(body.exprdirs, -1, 0) @ C.T.astype(np.float32))
            if opts.import_meshes and opts.pose_correctives and body.posedirs is not None:
                p = body.posedirs.shape[0]
                names += [f"Pose{k:03d}" for k in range(p)]
                parts.append(body.posedirs.reshape(p, -1, 3) @ C.T.astype(np.float32))
            self._shape_set = (ShapeKeySet(tuple(names), np.concatenate(parts).astype(np.float32), n_expr)
                               if parts else None)
        return self._shape_set

    def _shape_key_keys(self, frames: np.ndarray, poses: np.ndarray, people: dict, sel: np.ndarray) -> list[FCurveKeys]:
        """Per-frame shape-key weights of one person's rows `sel` (expression, then pose correctives)."""
        sks = self.shape_key_set()
        if sks is None:
            return []
        weights = []
        if sks.expressions:
            expr = people.get("expression")
            expr = np.zeros((len(sel), sks.expressions)) if expr is None else np.asarray(expr)[sel]
            weights.append(np.asarray(expr, dtype=np.float64)[:, :sks.expressions])
        if len(sks.names) > sks.expressions:
            weights.append(pose_feature(axis_angle_to_matrix(poses[:, 1:])))
        values = np.concatenate(weights, axis=1)
        keys = []
        for k, name in enumerate(sks.names):
            keys += channel_keys(f'key_blocks["{name}"].value', frames, values[:, k], LINEAR)
        return keys

    # ------------------------------------------------------------------------------------------- track
    def track(self, msg: dict) -> ReshapePlan | None:
        """Record a track's robust betas; re-shape its rig if it already exists with other betas."""
        pid = int(msg["id"])
        betas = np.asarray(msg["betas"], dtype=np.float64).reshape(-1)
        if not np.isfinite(betas).all():
            self.warnings.append(f"track {pid}: non-finite betas ignored")
            return None
        self.track_betas[pid] = betas
        state = self.people.get(pid)
        if state is None or self.body is None:
            return None
        n = min(len(betas), len(state.rest.betas))
        if np.allclose(betas[:n], state.rest.betas[:n], atol=1e-7):
            return None
        rest = build_rig_rest(self.body, betas, offset=state.rest.offset, rest_rot=state.rest.rest_rot)
        state.rest = rest
        keys: list[FCurveKeys] = []
        if state.pelvis_frames:
            pf = np.concatenate(state.pelvis_frames)
            pw = np.concatenate(state.pelvis_world)
            state.pelvis_frames, state.pelvis_world = [pf], [pw]
            root_loc = (pw @ M.T - rest.heads[0]) @ rest.rest_rot[0]  # as in skeleton.pose_to_bone_channels
            keys = channel_keys(bone_path(rest.names[0], "location"), pf, root_loc, LINEAR, rest.names[0])
        return ReshapePlan(pid, rest, keys)

    # --------------------------------------------------------------------------------------------- end
    def end(self, msg: dict | None) -> EndPlan:
        """Plan the clouds and the summary for the terminal message (`done`, `error`, `cancelled` or None)."""
        scene_cloud = None
        if msg is not None and self.options.scene_points:
            sp = msg.get("scene_points")
            if isinstance(sp, dict) and "xyz" in sp and len(np.asarray(sp["xyz"])):
                scene_cloud = cloud_from_world(sp["xyz"], sp.get("rgb"), self.options.max_points)
        frame_cloud = self.frame_points.cloud() if self.options.frame_points else None
        if self.bad_camera_frames:
            self.warnings.append(f"{self.bad_camera_frames} frame(s) had an invalid camera; the previous one was held")
        if self.bad_people_rows:
            self.warnings.append(f"{self.bad_people_rows} person row(s) had non-finite parameters and were skipped")
        if msg is not None:  # the server's own words: a truncated video, a frame cap, why it cancelled
            self.warnings.extend(w for w in msg.get("warnings") or () if isinstance(w, str))
            if msg.get("type") == "cancelled" and isinstance(msg.get("reason"), str):
                self.warnings.append(f"the server cancelled the job: {msg['reason']}")
        summary = {
            "status": (msg or {}).get("type", "incomplete"),
            "frames": self.frames_planned,
            "people": sorted(self.people),
            "first_frame": self.first_frame,
            "last_frame": self.last_frame,
            "scene_points": scene_cloud.count if scene_cloud else 0,
            "frame_points": frame_cloud.count if frame_cloud else 0,
            "warnings": list(self.warnings),
        }
        if msg is not None and msg.get("type") == "error":
            summary["error"] = {"code": msg.get("code"), "message": msg.get("message")}
        return EndPlan(scene_cloud, frame_cloud, summary)


def _concat_people(maps: list[dict]) -> dict:
    """Concatenate the per-person arrays of several frames' `people` maps along the person axis."""
    if len(maps) == 1:
        return maps[0]
    keys = set(maps[0])
    for m in maps[1:]:
        keys &= set(m)
    return {k: np.concatenate([np.asarray(m[k]) for m in maps], axis=0) for k in keys}
