"""Per-job options (interfaces.md §4): what a `submit` carries and what `human3r infer` accepts.

`JobOptions.from_dict` is the single validation point: the server turns its `ValueError` (whose
message names the bad option) into an error reply; the CLI builds the same dict from its flags.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

# 'auto' = 'fast' on CUDA, 'fp32' elsewhere; 'bf16' = the former name of 'fast' (backend.model.precision)
PRECISIONS = ("auto", "fp32", "fast", "bf16")


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
        for name in ("ttt3r", "remove_humans_from_points", "jpeg_roundtrip"):
            if not isinstance(getattr(self, name), bool):
                raise bad(name, "must be true or false")
        for name in ("detection_threshold", "conf_threshold", "scene_voxel_size"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value != value:
                raise bad(name, "must be a number")
        if self.start < 0:
            raise bad("start", "must be >= 0")
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
