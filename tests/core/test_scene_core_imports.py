"""The scene core is importable without Blender or torch (the add-on's bpy-free half)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCENE_CORE = ("coords", "rotations", "camera", "body_model", "skeleton", "keyframes", "pointcloud", "scene_plan")


def test_scene_core_imports_without_bpy_or_torch():
    code = (
        "import sys\n"
        "for name in ('bpy', 'mathutils', 'bpy_extras', 'torch', 'smplx'):\n"
        "    sys.modules[name] = None\n"
        "before = set(sys.modules)\n"
        + "".join(f"import blender_addon.core.{m}\n" for m in SCENE_CORE)
        + "allowed = {'numpy', 'msgpack'}\n"
        "third = {n.split('.')[0] for n in set(sys.modules) - before} - set(sys.stdlib_module_names) - allowed\n"
        "third = {n for n in third if not n.startswith('_') and n not in ('blender_addon', 'cython_runtime')}\n"
        "assert not third, third\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
