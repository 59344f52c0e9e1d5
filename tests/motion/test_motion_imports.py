"""The clean-up package is importable without Blender or torch (the add-on ships it; the CLI and server use it)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_motion_imports_without_bpy_or_torch():
    code = (
        "import sys\n"
        "for name in ('bpy', 'mathutils', 'bpy_extras', 'torch', 'smplx', 'scipy'):\n"
        "    sys.modules[name] = None\n"
        "before = set(sys.modules)\n"
        "import blender_addon.core.motion, blender_addon.core.motion.scene_keys\n"
        "third = {n.split('.')[0] for n in set(sys.modules) - before} - set(sys.stdlib_module_names)\n"
        "third = {n for n in third if not n.startswith('_') and n not in ('blender_addon', 'cython_runtime')}\n"
        "assert third <= {'numpy', 'msgpack'}, third\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
