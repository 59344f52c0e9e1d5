"""The choice lists shared by the panel, the scene planner and the engine's job options.

Each choice is (identifier, label, description), the shape Blender's EnumProperty takes; the
identifiers are what the options maps and the result files carry.
"""
from __future__ import annotations

POINT_MODE_CHOICES = (
    ("ACCUMULATED", "Scene Cloud", "One cloud of the whole scene, voxel-downsampled, added when the job ends"),
    ("PER_FRAME", "Per Frame", "Each frame's points in one object, shown frame by frame"),
    ("BOTH", "Both", "The scene cloud and the per-frame points"),
    ("NONE", "None", "No points"),
)
POINT_MODES = tuple(c[0] for c in POINT_MODE_CHOICES)

PRECISION_CHOICES = (
    ("fp32", "FP32", "Full precision (reference numerics)"),
    ("bf16", "BF16", "bfloat16: faster and lighter on recent GPUs, slightly different results"),
)
PRECISIONS = tuple(c[0] for c in PRECISION_CHOICES)
