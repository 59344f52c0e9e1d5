"""The add-on's bpy-free parts import in a Python where bpy and torch cannot be imported."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

SCRIPT = """
import sys
sys.modules['bpy'] = None      # any 'import bpy' raises ImportError
sys.modules['torch'] = None
import blender_addon
import blender_addon.core.session, blender_addon.core.local_server, blender_addon.core.protocol
import blender_addon.core.resultfile
import blender_addon.client
assert callable(blender_addon.register) and callable(blender_addon.unregister)
print('ok')
"""


def test_core_and_client_import_without_bpy_and_torch():
    result = subprocess.run([sys.executable, "-c", SCRIPT], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
