"""Retargeting SMPL-X motion onto other humanoid rigs, without bpy.

- `bonemaps`: preset bone tables (Rigify metarig and generated FK controls, Mixamo, UE5 Manny/Quinn,
  MPFB default, SMPL, SMPL-X), preset detection from bone names, the user-editable JSON bone map.
- `rig`: a rig's rest pose and object transform as arrays, and Blender's pose-bone forward kinematics.
- `solve`: rest-pose-corrected world-direction transfer, chains of different lengths, root scaling.
- `contacts`: foot contacts of the source and the root correction that keeps them planted on the target.
- `channels`: local rotations as the target bones' rotation modes (quaternion, Euler orders, axis-angle).
"""
