"""People planning: one rig per track id, its rotation/location/visibility keys and shape-key weights.

Rest pose of a person's rig: the track's robust betas when known before the person's first frame
(file import reads `track` messages first), otherwise the betas of the person's first frame (live).
A later `track` message re-shapes a live rig (bone heads, mesh, pelvis keys) while keeping its bone
orientations, so all rotation keys stay valid. Per-frame betas still place the pelvis: its world
position is J_0(β_frame) + transl every frame.

Short tracks: a track id seen in fewer than `options.min_track_frames` processed frames gets no rig.
Until a track reaches that length its rows wait in a buffer; when it does, its rig is planned with
the keys of every buffered frame (so it is keyed from its first frame). Ids whose `track` message says
they are short are left out at once. `dropped` counts the ids that never got a rig.

People absent from a processed frame are hidden through the armature object's custom property
`hidden_prop(track id)` (keyed 1 on processed frames without the person, 0 with; CONSTANT interpolation) in the
rig's own action; the builder drives the armature's and the body's `hide_viewport`/`hide_render` from
it. No transform channel changes, so Blender's FBX, BVH and glTF exporters see a full-size rig on
every frame (a root scale of 0 broke BVH and came back from FBX/glTF as scales between 0 and 1).
Their pose holds between present frames.

Shape keys on the body mesh (optional, keyed per frame like the bones): the 10 expression blend shapes
(`Exp000`...) and the 486 SMPL-X pose correctives (`Pose000`..., weights (R_j - I)). The rig's joints
come from the betas only, so an expression moves face vertices but not the jaw/eye joints.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .body_model import BodyModel, pose_feature
from .coords import C, M
from .keyframes import CONSTANT, LINEAR, FCurveKeys, bone_path, changes_only, channel_keys, interleave
from .plans import FramesPlan, ImportOptions, PersonPlan, ReshapePlan, ShapeKeySet
from .rotations import axis_angle_to_matrix, quaternion_continuity
from .skeleton import RigRest, build_rig_rest, pose_to_bone_channels



def hidden_prop(track_id: int) -> str:
    """The armature object's custom property that is 1 while person `track_id` is absent. Its name is
    per track so that each rig's action holds one path no other rig has: FBX's "all actions" export
    (on by default) applies an action to every object on which all its paths resolve."""
    return f"human3r_hidden_{int(track_id)}"


def hidden_path(track_id: int) -> str:
    """RNA path of `hidden_prop` (object level, in the rig's action)."""
    return f'["{hidden_prop(track_id)}"]'


@dataclass
class PendingTrack:
    """Rows of a track that is still shorter than `min_track_frames` (no rig yet)."""

    betas: np.ndarray  # [10] betas of its first row (the rest shape unless its track's robust betas are known)
    row_frames: list = field(default_factory=list)  # per batch: [k] Blender frames with the person
    poses: list = field(default_factory=list)  # per batch: [k, 55, 3] axis-angle
    pelvis: list = field(default_factory=list)  # per batch: [k, 3] W pelvis positions
    expression: list = field(default_factory=list)  # per batch: [k, E] or None
    processed: list = field(default_factory=list)  # per batch since its first row: [n] processed Blender frames

    @property
    def count(self) -> int:
        return sum(len(f) for f in self.row_frames)


@dataclass
class PersonState:
    """What the planner remembers of one person between batches."""

    rest: RigRest
    rotation_paths: list[str] = field(init=False)  # data paths of each bone's rotation_quaternion
    last_quat: np.ndarray | None = None  # [J, 4] last keyed quaternions (sign continuity across batches)
    hidden: float | None = None  # last keyed hidden_prop value
    pelvis_frames: list = field(default_factory=list)  # [n] Blender frames (for re-keying after reshape)
    pelvis_world: list = field(default_factory=list)  # [n, 3] W pelvis positions
    frames_seen: int = 0

    def __post_init__(self) -> None:
        self.rotation_paths = [bone_path(b, "rotation_quaternion") for b in self.rest.names]


class PersonTask:
    """Plans one person's part of a batch (its new rig and/or its keys) into the batch's plan; runs once."""

    def __init__(self, track_id: int, work):
        self.track_id = track_id
        self._work = work

    def run(self) -> None:
        if self._work is not None:
            work, self._work = self._work, None
            work()


class PeoplePlanner:
    """Plans every person's rig and keys (see the module docstring)."""

    def __init__(self, body: BodyModel, options: ImportOptions, track_betas: dict[int, np.ndarray],
                 short_tracks: set[int] | None = None):
        self.body = body
        self.options = options
        self.track_betas = track_betas  # track id -> robust betas [10], shared with the façade
        self.short_tracks = set(short_tracks or ())  # ids known (from `track` messages) to be too short
        self.people: dict[int, PersonState] = {}
        self.pending: dict[int, PendingTrack] = {}
        self._short_seen: set[int] = set()
        self.bad_rows = 0  # person rows dropped for non-finite parameters
        self._weights: list[tuple[np.ndarray, np.ndarray]] | None = None
        self._shape_set: ShapeKeySet | None = None
        self._shape_set_made = False
        self._open_tasks: list[PersonTask] = []  # deferred tasks of the last batch

    def frames(self, msgs: list[dict], frames: np.ndarray, first_frame: int, collection: str,
               plan: FramesPlan, deferred: bool = False) -> None:
        """Add new rigs and the keys of every known person for `msgs` at Blender `frames` [n] to `plan`.

        The batch's rows are sorted out at once; each person's rig and keys are planned by one
        `PersonTask` (about 1 ms each): run here, or, when `deferred`, left in `plan.people_tasks` for
        the caller to run one at a time (a live timer spreads them over its ticks). Tasks of a batch
        not run yet are run before the next batch is planned."""
        self.finish_tasks()
        body = self.body
        rows_per_frame = [np.asarray(m["people"].get("id", np.zeros(0, np.int32))).reshape(-1) for m in msgs]
        ids = np.concatenate(rows_per_frame).astype(np.int64) if rows_per_frame else np.zeros(0, np.int64)
        row_frames = np.repeat(frames, [len(r) for r in rows_per_frame])
        unique = np.zeros(len(ids), dtype=bool)  # a track id twice in one frame: keep its first row
        unique[np.unique(np.stack([row_frames, ids], 1), axis=0, return_index=True)[1]] = True
        people = poses = pelvis = betas = None
        if len(ids):
            people = concat_people([m["people"] for m in msgs if len(np.asarray(m["people"].get("id", [])))])
            poses = body.full_pose(people)
            betas = np.asarray(people["betas"], dtype=np.float64).reshape(len(ids), -1)
            transl = np.asarray(people["transl"], dtype=np.float64).reshape(len(ids), 3)
            nb = min(betas.shape[1], body.J_dirs.shape[-1])
            pelvis = body.J_template[0] + betas[:, :nb] @ body.J_dirs[0][:, :nb].T + transl  # J_0(β_frame) + transl, W
            finite = np.isfinite(poses).all(axis=(1, 2)) & np.isfinite(pelvis).all(axis=1)
            self.bad_rows += int((~finite & unique).sum())
            unique &= finite  # rows with NaN/inf parameters are treated as absent
        expression = None if people is None else people.get("expression")
        expression = None if expression is None else np.asarray(expression, dtype=np.float64)

        def rows_of(pid):
            return np.flatnonzero((ids == pid) & unique)

        # tracks without a rig: buffer their rows; promote those that reached the minimum length
        promoted: list[tuple[int, PendingTrack]] = []
        for pid in dict.fromkeys(ids[unique].tolist()):
            if pid in self.people:
                continue
            if pid in self.short_tracks:
                self._short_seen.add(pid)
                continue
            sel = rows_of(pid)
            pending = self.pending.get(pid)
            if pending is None:
                pending = self.pending[pid] = PendingTrack(betas=betas[sel[0]])
            pending.row_frames.append(row_frames[sel])
            pending.poses.append(poses[sel])
            pending.pelvis.append(pelvis[sel])
            pending.expression.append(None if expression is None else expression[sel])
        for pid, pending in list(self.pending.items()):
            pending.processed.append(frames)
            if pending.count >= self.options.min_track_frames:
                promoted.append((pid, self.pending.pop(pid)))
        # one task per person: new rigs first (they must exist before their keys are applied)
        tasks = []
        for pid, pending in promoted:
            expr = None if any(e is None for e in pending.expression) else np.concatenate(pending.expression)
            tasks.append(PersonTask(pid, lambda pid=pid, pending=pending, expr=expr: self._promote(
                pid, pending, expr, first_frame, collection, plan)))
        promoted_ids = {pid for pid, _ in promoted}
        for pid in self.people:
            if pid in promoted_ids:
                continue
            sel = rows_of(pid)
            tasks.append(PersonTask(pid, lambda pid=pid, sel=sel: self._key_person(
                pid, row_frames[sel], poses[sel] if len(sel) else None, pelvis[sel] if len(sel) else None,
                None if expression is None or not len(sel) else expression[sel], frames, first_frame, plan)))
        if deferred:
            plan.people_tasks = tasks
            self._open_tasks = tasks
        else:
            for task in tasks:
                task.run()

    def _promote(self, pid: int, pending: PendingTrack, expression: np.ndarray | None, first_frame: int,
                 collection: str, plan: FramesPlan) -> None:
        """Plan the rig of a track that reached the minimum length and the keys of all its buffered rows."""
        rest = build_rig_rest(self.body, self.track_betas.get(pid, pending.betas))
        self.people[pid] = PersonState(rest=rest)
        plan.new_people.append(self._person_plan(pid, rest, collection))
        self._key_person(pid, np.concatenate(pending.row_frames), np.concatenate(pending.poses),
                         np.concatenate(pending.pelvis), expression, np.concatenate(pending.processed), first_frame,
                         plan)

    def finish_tasks(self) -> None:
        """Run the deferred tasks of the previous batch that have not run yet (they must come first)."""
        for task in self._open_tasks:
            task.run()
        self._open_tasks = []

    @property
    def dropped(self) -> int:
        """Track ids that got no rig (shorter than `min_track_frames` so far)."""
        return len(self.pending) + len(self._short_seen)

    def _key_person(self, pid: int, pf: np.ndarray, poses: np.ndarray | None, pelvis: np.ndarray | None,
                    expression: np.ndarray | None, frames: np.ndarray, first_frame: int, plan: FramesPlan) -> None:
        """Plan person `pid`'s keys: its rows at Blender frames `pf` [k] (poses [k, 55, 3], W pelvis [k, 3],
        expression [k, E] or None) among the processed `frames` [n] (visibility)."""
        state = self.people[pid]
        keys: list[FCurveKeys] = []
        root = state.rest.names[0]
        if len(pf):
            quats, root_loc = pose_to_bone_channels(poses, pelvis, state.rest)
            quats = quaternion_continuity(quats, state.last_quat)
            state.last_quat = quats[-1]
            rows = interleave(pf, quats.reshape(len(pf), -1))  # one row per (bone, w/x/y/z)
            for j, (bone, path) in enumerate(zip(state.rest.names, state.rotation_paths)):
                keys += [FCurveKeys(path, c, rows[4 * j + c], LINEAR, bone) for c in range(4)]
            keys += channel_keys(bone_path(root, "location"), pf, root_loc, LINEAR, root)
            state.pelvis_frames.append(pf)
            state.pelvis_world.append(pelvis)
            state.frames_seen += len(pf)
            shape_keys = self._shape_key_keys(pf, poses, expression)
            if shape_keys:
                plan.shape_keys[pid] = shape_keys
        keys += self._visibility_keys(pid, state, frames, np.isin(frames, pf), first_frame)
        if keys:
            plan.people_keys[pid] = keys

    @staticmethod
    def _visibility_keys(pid: int, state: PersonState, frames: np.ndarray, present: np.ndarray,
                         first_frame: int) -> list[FCurveKeys]:
        """hidden_prop(pid) 0 on frames with the person, 1 on processed frames without (changes only)."""
        # a new rig starts hidden: its first key is 1 at the job's first frame unless present there
        vis_frames, hidden = changes_only(frames, (~present).astype(np.float32),
                                          1.0 if state.hidden is None else state.hidden)
        if state.hidden is None and len(vis_frames) and vis_frames[0] > first_frame:
            vis_frames = np.concatenate([[first_frame], vis_frames])
            hidden = np.concatenate([[1.0], hidden]).astype(np.float32)
        if not len(vis_frames):
            return []
        state.hidden = float(hidden[-1])
        return channel_keys(hidden_path(pid), vis_frames, hidden[:, None], CONSTANT)

    def _person_plan(self, pid: int, rest: RigRest, collection: str) -> PersonPlan:
        name = f"{collection} person {pid}"
        if not self.options.import_meshes:
            return PersonPlan(pid, name, rest, None, None)
        if self._weights is None:
            w = self.body.lbs_weights
            self._weights = [(np.flatnonzero(w[:, j] > 0).astype(np.int32), w[w[:, j] > 0, j].astype(np.float32))
                             for j in range(w.shape[1])]
        return PersonPlan(pid, name, rest, self.body.faces, self._weights, self.shape_key_set())

    def shape_key_set(self) -> ShapeKeySet | None:
        """The body meshes' shape keys per the options and the header (None when there are none)."""
        if not self._shape_set_made:
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
            self._shape_set_made = True
        return self._shape_set

    def _shape_key_keys(self, frames: np.ndarray, poses: np.ndarray, expression: np.ndarray | None) -> list[FCurveKeys]:
        """Per-frame shape-key weights of one person's rows (expression, then pose correctives)."""
        sks = self.shape_key_set()
        if sks is None:
            return []
        weights = []
        if sks.expressions:
            expr = np.zeros((len(frames), sks.expressions)) if expression is None else expression
            weights.append(np.asarray(expr, dtype=np.float64)[:, :sks.expressions])
        if len(sks.names) > sks.expressions:
            weights.append(pose_feature(axis_angle_to_matrix(poses[:, 1:])))
        values = np.concatenate(weights, axis=1)
        keys = []
        for k, name in enumerate(sks.names):
            keys += channel_keys(f'key_blocks["{name}"].value', frames, values[:, k], LINEAR)
        return keys

    def reshape(self, pid: int, betas: np.ndarray) -> ReshapePlan | None:
        """Re-shape person `pid`'s rig to `betas` [10] (None when it has no rig or already has them)."""
        state = self.people.get(pid)
        if state is None:
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


def concat_people(maps: list[dict]) -> dict:
    """Concatenate the per-person arrays of several frames' `people` maps along the person axis."""
    if len(maps) == 1:
        return maps[0]
    keys = set(maps[0])
    for m in maps[1:]:
        keys &= set(m)
    return {k: np.concatenate([np.asarray(m[k]) for m in maps], axis=0) for k in keys}
