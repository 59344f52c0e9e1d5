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

# the engine's meanings: backend/model/precision.py
PRECISION_CHOICES = (
    ("auto", "Auto", "Fast on a CUDA GPU, FP32 elsewhere"),
    ("fp32", "FP32", "Full precision: the reference's numerics (parity mode)"),
    ("fast", "Fast", "bfloat16 weights cast once, accuracy-critical parts in fp32: several times faster on "
                     "recent GPUs, results within the documented tolerances"),
    ("bf16", "BF16", "Former name of Fast"),
)
PRECISIONS = tuple(c[0] for c in PRECISION_CHOICES)

# what a re-run of the same video/job does to the collections of its earlier runs (core/job_names.py)
RERUN_CHOICES = (
    ("VERSION", "New Version", "Keep earlier runs; name this one after the next version (e.g. 'clip v2')"),
    ("REPLACE", "Replace Previous", "Remove the earlier runs' collections, objects and animation first"),
)
RERUN_MODES = tuple(c[0] for c in RERUN_CHOICES)
