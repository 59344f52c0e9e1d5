"""Per-frame heads of Human3R (dense DPT maps, camera pose, human detection and SMPL-X)."""
