"""The plans: plain dataclasses that say what Blender must create or key, made by the per-kind planners
(`plan_camera`, `plan_people`, `plan_points`) behind `scene_plan.ScenePlanner` and applied by
`blender/scene_builder.py`. Frames are Blender frames, lengths metres, in Blender's world (z up)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from .camera import CameraFit
from .choices import POINT_MODES, RERUN_MODES
from .keyframes import FCurveKeys
from .pointcloud import CloudData
from .skeleton import RigRest


@dataclass
class ImportOptions:
    """What to build. Field names match the add-on's scene settings where they overlap."""

    scene_frame_start: int = 1  # Blender frame showing video frame 0 (not the job's first source frame)
    import_camera: bool = True
    video_background: bool = True
    footage_in_renders: bool = True  # F12 renders show the video behind the result (compositor)
    import_meshes: bool = True  # skinned SMPL-X mesh under each armature
    expressions: bool = True  # expression shape keys, keyed per frame (needs header exprdirs)
    pose_correctives: bool = False  # 486 pose-corrective shape keys, keyed per frame (needs header posedirs)
    point_mode: str = "BOTH"  # one of POINT_MODES
    point_radius: float = 0.01  # metres, display radius of points
    max_points: int = 0  # per cloud object; 0 = no budget
    set_scene: bool = True  # scene fps, frame range, render resolution from the video
    keep_frame_range: bool = False  # leave the scene's frame range as it is (else: the processed frames)
    collection_name: str | None = None  # default: the video's file name without extension
    # tracks seen in fewer processed frames are left out (the tracker's one-frame blips would each cost a rig);
    # 1 keeps every track. Live, a rig appears once its track reaches this length, keyed from its first frame.
    min_track_frames: int = 3
    # a re-run of a job whose collection exists: "VERSION" (name it "clip v2") or "REPLACE" (remove the old runs)
    rerun: str = "VERSION"

    def __post_init__(self) -> None:
        if self.point_mode not in POINT_MODES:
            raise ValueError(f"point_mode must be one of {POINT_MODES}, not {self.point_mode!r}")
        if self.rerun not in RERUN_MODES:
            raise ValueError(f"rerun must be one of {RERUN_MODES}, not {self.rerun!r}")
        if not isinstance(self.min_track_frames, int) or self.min_track_frames < 1:
            raise ValueError(f"min_track_frames must be an integer >= 1, not {self.min_track_frames!r}")

    @classmethod
    def from_dict(cls, options: dict) -> "ImportOptions":
        """Options from a map of field names; an unknown name is an error (it would be ignored silently)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(f"unknown import option(s) {unknown}; known: {sorted(known)}")
        return cls(**options)

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
    frame_start: int  # Blender frame of the video's frame 0
    frame_end: int | None  # Blender frame of the video's last frame; None while the clip length is unknown
    range_start: int  # Blender frames of the first and last frames the job processes (the scene range)
    range_end: int | None  # None while unknown
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
    video_rate: float | None = None  # frames/s of the results (the reader's, from the header)
    video_frames: int | None = None  # frames in the video as the reader counts them (header frame_count)


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
    # deferred planning (ScenePlanner.frames(deferred=True)): one plan_people.PersonTask per person, each
    # adding that person's new_people entry and keys above when run
    people_tasks: list = field(default_factory=list)
    # [n, 2]: each planned frame's Blender frame and its time in seconds from the stream start (for the
    # camera background's timing, `plate_timing`); None without a camera
    video_times: np.ndarray | None = None
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
