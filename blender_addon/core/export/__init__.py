"""SMPL-X parameter files for other tools, without Blender: AMASS-style .npz per person, camera JSON/NPZ."""
