"""Install the built zip the way Blender does (`extensions.package_install_files`), then use it.

Runs in a subprocess whose BLENDER_USER_RESOURCES points into tmp, so nothing touches the user's
Blender config. The installed package is `bl_ext.user_default.human3r`: this proves relative imports,
`AddonPreferences.bl_idname = __package__`, and that the zip's layout is what Blender accepts.
The zip is built without wheels (offline); set HUMAN3R_EXT_WHEELS=1 to build with the real pyzmq and
msgpack wheels (downloads ~7 MB) and check that Blender installs the ones for its Python.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("bpy")

from tests.support.synthetic_job import write_job_file  # noqa: E402

pytestmark = pytest.mark.bpy

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))
import build_extension  # noqa: E402

SCRIPT = r"""
import sys, bpy, addon_utils
zip_path, h3r, resources, want_wheels = sys.argv[-4], sys.argv[-3], sys.argv[-2], sys.argv[-1] == "1"
PKG = "bl_ext.user_default.human3r"
assert bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default",
                                                enable_on_install=True) == {"FINISHED"}
assert PKG in bpy.context.preferences.addons, list(bpy.context.preferences.addons.keys())
prefs = bpy.context.preferences.addons[PKG].preferences
assert type(prefs).bl_idname == PKG and prefs.server_address.startswith("tcp://")
assert hasattr(bpy.types.Scene, "human3r") and hasattr(bpy.ops.human3r, "run")
assert bpy.ops.human3r.import_result(filepath=h3r) == {"FINISHED"}
coll = bpy.data.collections["synthetic"]
assert sorted({o.type for o in coll.all_objects}) >= ["ARMATURE", "CAMERA"]
if want_wheels:  # Blender unpacked the wheels matching its platform and Python into the extensions' site-packages
    import glob
    site = glob.glob(resources + "/extensions/.local/lib/python3.*/site-packages")
    assert site, "no extension site-packages"
    found = sorted(p.rsplit("/", 1)[-1] for p in glob.glob(site[0] + "/*.dist-info"))
    assert found == ["msgpack-1.2.4.dist-info", "pyzmq-27.3.0.dist-info"], found
addon_utils.disable(PKG, default_set=True)
assert not hasattr(bpy.types.Scene, "human3r")
print("INSTALLED-OK")
"""


def test_zip_installs_and_works_in_blender(tmp_path):
    want_wheels = os.environ.get("HUMAN3R_EXT_WHEELS") == "1"
    zip_path = build_extension.build(tmp_path / "dist", wheels=want_wheels, use_blender_ext=want_wheels,
                                     split_platforms=False)[0]
    h3r = write_job_file(tmp_path / "walk.h3r", frames=3, people=1)
    resources = tmp_path / "blender_user"
    resources.mkdir()
    env = dict(os.environ, BLENDER_USER_RESOURCES=str(resources))
    env.pop("PYTHONPATH", None)
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(zip_path), str(h3r), str(resources),
                             "1" if want_wheels else "0"], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=300)
    assert "INSTALLED-OK" in result.stdout, result.stdout[-3000:] + result.stderr[-3000:]
