"""Ray is an optional extra: no module outside backend/farm may import it."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import importlib, pkgutil, sys
import backend, blender_addon
skipped = []
for package in (backend, blender_addon):
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        name = info.name
        if name.startswith(("backend.farm", "blender_addon.blender")) or name.endswith("__main__"):
            continue  # the farm may import ray; the Blender side needs bpy; __main__ runs a command
        try:
            importlib.import_module(name)
        except ImportError as exc:
            skipped.append(f"{name}: {exc}")
from backend.cli.main import build_parser
build_parser().parse_args(["batch", "clip.mp4", "-o", "out"])  # the batch command's module and arguments
print("RAY" if "ray" in sys.modules else "NO RAY", len(skipped), skipped)
"""


def test_product_imports_without_ray():
    out = subprocess.run([sys.executable, "-c", SCRIPT], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.startswith("NO RAY 0 "), out.stdout
