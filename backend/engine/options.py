"""Per-job options: what a `submit` message carries (its `options` map) and what `human3r infer` accepts.

`JobOptions.from_dict` is the single validation point: the server turns its `ValueError` (whose
message names the bad option) into an error reply; the command line builds the same map from its flags
(`add_model_arguments` defines them, `options_from_args` reads them back), so a flag and its option
share one name, one default and one check.
"""
from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from typing import Any

from blender_addon.core.choices import PRECISIONS  # the one list, shared with the add-on panel
from blender_addon.core.motion.options import CleanupOptions


# no video has more frames; bigger indices would overflow the protocol's 64-bit integers
MAX_FRAME_INDEX = 2**31 - 1


@dataclass(frozen=True)
class JobOptions:
    """Options of one inference job.

    Attributes:
        start: first source frame index (inclusive).
        end: source frame index to stop at (exclusive); None = to the end.
        stride: process every `stride`-th frame from `start` (source indices are kept).
        reset_interval: reset the recurrent state every this many processed frames, re-aligning
            the next chunk into the first chunk's world frame (the reference README uses 100).
        ttt3r: TTT3R gated state update (on by default, like the reference demo).
        detection_threshold: person detection score threshold (>=), in [0, 1].
        conf_threshold: keep points with confidence strictly greater than this (confidence >= 1;
            the demo's `vis_threshold` default is 1.5).
        point_stride: keep every `point_stride`-th pixel along rows and columns of the model image.
        max_points_per_frame: cap on points per frame after the other filters (evenly thinned);
            0 = no points at all.
        remove_humans_from_points: drop pixels of people (mask > 0.1, dilated) from the points.
        size: long side of the model input in pixels (multiple of 16; 512 for the released model).
        precision: 'fp32' (parity: reference numerics), 'fast' (bf16 weights and attention, see
            backend.model.precision), 'auto' ('fast' on CUDA, else 'fp32') or 'bf16' (= 'fast').
        jpeg_roundtrip: pass frames through a quality-95 JPEG first, like the reference video path.
        scene_voxel_size: voxel edge (world units) of the accumulated scene cloud in `done`; it grows
            (doubling) if the cloud would exceed `scene_max_points`.
        scene_max_points: cap on the accumulated scene cloud (voxels).
        cleanup: motion clean-up applied to the frames as they are produced (causal filters, floor
            once known; `blender_addon.core.motion.CleanupOptions`, a map on the wire); None = raw output.
        skip_damaged: decode on past packets that fail to decode (their frames are missing and the
            `done` summary lists the skipped source frames) instead of ending the job there; source
            indices then follow the frames' timestamps.
    """

    start: int = 0
    end: int | None = None
    stride: int = 1
    reset_interval: int = 100
    ttt3r: bool = True
    detection_threshold: float = 0.3
    conf_threshold: float = 1.5
    point_stride: int = 4
    max_points_per_frame: int = 10000
    remove_humans_from_points: bool = True
    size: int = 512
    precision: str = "auto"
    jpeg_roundtrip: bool = False
    scene_voxel_size: float = 0.02
    scene_max_points: int = 250_000
    cleanup: CleanupOptions | None = None
    skip_damaged: bool = False

    def __post_init__(self) -> None:
        def bad(name: str, why: str) -> ValueError:
            return ValueError(f"option '{name}' {why} (got {getattr(self, name)!r})")

        for name in ("start", "stride", "reset_interval", "point_stride", "max_points_per_frame", "size",
                     "scene_max_points"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise bad(name, "must be an integer")
        if self.end is not None and (not isinstance(self.end, int) or isinstance(self.end, bool)):
            raise bad("end", "must be an integer or null")
        for name in ("ttt3r", "remove_humans_from_points", "jpeg_roundtrip", "skip_damaged"):
            if not isinstance(getattr(self, name), bool):
                raise bad(name, "must be true or false")
        for name in ("detection_threshold", "conf_threshold", "scene_voxel_size"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value != value:
                raise bad(name, "must be a number")
        if not 0 <= self.start <= MAX_FRAME_INDEX:
            raise bad("start", f"must be a source frame index from 0 to {MAX_FRAME_INDEX}, such as 0")
        if self.end is not None and self.end > MAX_FRAME_INDEX + 1:
            raise bad("end", f"must be at most {MAX_FRAME_INDEX + 1}; leave it out to run to the end of the video")
        if self.end is not None and self.end <= self.start:
            raise bad("end", f"must be greater than start ({self.start})")
        if self.stride < 1:
            raise bad("stride", "must be >= 1")
        if self.reset_interval < 1:
            raise bad("reset_interval", "must be >= 1")
        if not 0.0 <= self.detection_threshold <= 1.0:
            raise bad("detection_threshold", "must be in [0, 1]")
        if self.conf_threshold < 0 or self.conf_threshold == float("inf"):
            raise bad("conf_threshold", "must be a finite number >= 0")
        if self.point_stride < 1:
            raise bad("point_stride", "must be >= 1")
        if self.max_points_per_frame < 0:
            raise bad("max_points_per_frame", "must be >= 0")
        if self.size < 64 or self.size > 4096 or self.size % 16:
            raise bad("size", "must be a multiple of 16 between 64 and 4096")
        if self.precision not in PRECISIONS:
            raise bad("precision", f"must be one of {', '.join(PRECISIONS)}")
        if not 0 < self.scene_voxel_size < 1e6:
            raise bad("scene_voxel_size", "must be > 0")
        if self.scene_max_points < 1:
            raise bad("scene_max_points", "must be >= 1")
        if self.cleanup is not None:  # validated (and a plain map converted) by its own definition
            try:
                object.__setattr__(self, "cleanup", CleanupOptions.from_dict(self.cleanup))
            except ValueError as exc:
                raise ValueError(f"option 'cleanup': {exc}") from None

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "JobOptions":
        """Validate a plain map (e.g. a `submit`'s options); missing keys take the defaults.

        Raises:
            ValueError: unknown option, wrong type or out-of-range value; the message names it.
        """
        data = dict(data or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown option(s): {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        # JSON/msgpack clients may send whole floats for integers (1.0): accept them exactly
        for f in dataclasses.fields(cls):
            value = data.get(f.name)
            if f.type in ("int", "int | None") and isinstance(value, float) and value.is_integer():
                data[f.name] = int(value)
            if f.type == "float" and isinstance(value, int) and not isinstance(value, bool):
                data[f.name] = float(value)
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        """Plain map of every option (round-trips through `from_dict`)."""
        return dataclasses.asdict(self)


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The command-line flags of the options (`human3r infer`, locally or with --server); defaults are
    `JobOptions`'. `options_from_args` reads them back."""
    d = JobOptions()
    g = parser.add_argument_group("model options")
    g.add_argument("--start", type=int, default=d.start, help="first source frame index (default 0)")
    g.add_argument("--end", type=int, default=d.end, help="stop before this source frame index")
    g.add_argument("--stride", type=int, default=d.stride, help="process every N-th frame (default 1)")
    g.add_argument("--reset-interval", type=int, default=d.reset_interval,
                   help=f"reset the recurrent state every N processed frames (default {d.reset_interval})")
    g.add_argument("--no-ttt3r", dest="ttt3r", action="store_false", help="disable the TTT3R state update")
    g.add_argument("--detection-threshold", type=float, default=d.detection_threshold,
                   help=f"person detection score (default {d.detection_threshold})")
    g.add_argument("--conf-threshold", type=float, default=d.conf_threshold,
                   help=f"keep points with confidence strictly above this (default {d.conf_threshold})")
    g.add_argument("--point-stride", type=int, default=d.point_stride,
                   help=f"keep every N-th pixel per row/column (default {d.point_stride})")
    g.add_argument("--max-points", dest="max_points_per_frame", type=int, default=d.max_points_per_frame,
                   help=f"at most this many points per frame (default {d.max_points_per_frame}; 0 = none)")
    g.add_argument("--keep-human-points", dest="remove_humans_from_points", action="store_false",
                   help="keep points on people (default: removed using the human mask)")
    g.add_argument("--size", type=int, default=d.size,
                   help=f"long side of the model input, multiple of 16 (default {d.size})")
    g.add_argument("--precision", choices=PRECISIONS, default=d.precision,
                   help="auto (default: fast on CUDA, fp32 elsewhere), fp32 (the reference's numerics) or fast "
                        "(bf16 weights cast once, accuracy-critical parts in fp32); bf16 = fast")
    g.add_argument("--jpeg-roundtrip", action="store_true",
                   help="pass frames through JPEG q95 like the reference's video path")
    g.add_argument("--skip-damaged", action="store_true",
                   help="decode on past unreadable packets (gaps listed in the summary) instead of stopping there")
    g.add_argument("--voxel-size", dest="scene_voxel_size", type=float, default=d.scene_voxel_size,
                   help=f"voxel edge of the accumulated scene cloud (default {d.scene_voxel_size})")
    add_cleanup_arguments(parser.add_argument_group("motion clean-up"), optional=True)


def add_cleanup_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup, optional: bool) -> None:
    """Clean-up flags. optional=True (infer): nothing happens unless --cleanup is given."""
    from blender_addon.core.motion.options import CleanupOptions

    d = CleanupOptions()
    if optional:
        parser.add_argument("--cleanup", action="store_true",
                            help="clean up the motion as frames are produced (causal filters, floor once known); "
                                 "off by default so the file holds the raw model output")
    parser.add_argument("--ground", choices=("both", "points", "feet"), default=d.ground,
                        help="floor evidence: scene points, foot contacts or both (default both)")
    parser.add_argument("--no-ground", dest="ground", action="store_const", const="off",
                        help="keep the model's world (no floor alignment)")
    parser.add_argument("--smooth", type=float, default=d.smooth, metavar="STRENGTH",
                        help=f"smoothing strength, 0 = off (default {d.smooth:g}, at most 4)")
    parser.add_argument("--foot-lock", choices=("on", "off"), default="on" if d.foot_lock else "off",
                        help="lock feet during contacts and remove floor penetration (default on)")
    parser.add_argument("--smooth-camera", action="store_true",
                        help="also smooth the camera path (changes the match to the footage)")


# the flags of `add_cleanup_arguments` (argparse `dest`), read back into `JobOptions.cleanup`
CLEANUP_FLAG_NAMES = ("cleanup", "ground", "smooth", "foot_lock", "smooth_camera")


def cleanup_from_args(args: argparse.Namespace) -> dict | None:
    """The clean-up map given by the flags, or None where --cleanup exists and was not given."""
    if hasattr(args, "cleanup") and not args.cleanup:
        return None
    return {"ground": args.ground, "smooth": args.smooth, "foot_lock": args.foot_lock == "on",
            "smooth_camera": bool(args.smooth_camera)}


# the options that `add_model_arguments` gives a flag (argparse `dest` = option name)
OPTION_NAMES = ("start", "end", "stride", "reset_interval", "ttt3r", "detection_threshold", "conf_threshold",
                "point_stride", "max_points_per_frame", "remove_humans_from_points", "size", "precision",
                "jpeg_roundtrip", "scene_voxel_size", "skip_damaged")


def options_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The options map given by the flags of `add_model_arguments` (validate with `JobOptions.from_dict`)."""
    out = {name: getattr(args, name) for name in OPTION_NAMES}
    out["cleanup"] = cleanup_from_args(args)
    return out
