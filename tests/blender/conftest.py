"""Fixtures for the tests that run Blender in-process through the PyPI `bpy` module.

Every test here is skipped when `bpy` cannot be imported. Blender versions: run the same files
under each interpreter that has a `bpy` wheel (bpy 5.0.1 in the system Python, bpy 4.2.0 in a venv).
Timers never fire in the bpy module, so live tests drive `live.poll_once()` themselves.

- `factory_scene`: Blender's factory startup without its default objects, a fresh empty scene.
- `addon`: the add-on enabled through Blender's add-on system (so its preferences exist), disabled
  again afterwards; yields the add-on module (`blender_addon`).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ADDON_MODULE = "blender_addon"


def pytest_collection_modifyitems(config, items):
    """Skip the bpy tier when bpy is missing (one import attempt for the whole session)."""
    try:
        import bpy  # noqa: F401  (the import itself is the check)
    except ImportError as exc:
        skip = pytest.mark.skip(reason=f"bpy is not importable: {exc}")
        for item in items:
            if "tests/blender/" in item.nodeid.replace("\\", "/") or item.get_closest_marker("bpy"):
                item.add_marker(skip)


def pytest_sessionfinish(session, exitstatus):
    session.config._h3r_exitstatus = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    """bpy 4.2's module segfaults in interpreter teardown once any class with Python methods has been
    registered, even after unregistering it (4.2.0 and 4.2.23 alike; 4.5 and 5.0 don't): leave right
    after pytest has reported, with pytest's own exit status."""
    bpy = sys.modules.get("bpy")
    if bpy is not None and tuple(bpy.app.version) < (4, 3, 0):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(getattr(config, "_h3r_exitstatus", 0))


@pytest.fixture
def factory_scene():
    bpy = pytest.importorskip("bpy")
    bpy.ops.wm.read_factory_settings(use_empty=True)
    yield bpy.context.scene
    bpy.ops.wm.read_factory_settings(use_empty=True)


@pytest.fixture
def addon(factory_scene):
    import addon_utils

    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    module = addon_utils.enable(ADDON_MODULE, default_set=True, handle_error=_raise)
    assert module is not None, "enabling the add-on failed"
    yield module
    addon_utils.disable(ADDON_MODULE, default_set=True, handle_error=_raise)


def _raise(exc):
    raise exc
