"""The panel's job options default to what `human3r infer` uses (the engine's JobOptions defaults),
and its choice lists are the core's."""
from __future__ import annotations

import dataclasses

import pytest

bpy = pytest.importorskip("bpy")

pytestmark = pytest.mark.bpy


def test_job_options_of_a_new_scene_equal_the_engine_defaults(addon):
    from backend.engine.options import JobOptions

    submitted = bpy.context.scene.human3r.job_options()
    defaults = {f.name: f.default for f in dataclasses.fields(JobOptions)}
    assert set(submitted) <= set(defaults), set(submitted) - set(defaults)
    assert {k: defaults[k] for k in submitted} == submitted
    JobOptions.from_dict(submitted)  # and the engine accepts them as they are


def test_choice_lists_come_from_the_core(addon):
    from blender_addon.core.choices import POINT_MODES, PRECISIONS

    props = bpy.context.scene.human3r.bl_rna.properties
    assert tuple(i.identifier for i in props["point_mode"].enum_items) == POINT_MODES
    assert tuple(i.identifier for i in props["precision"].enum_items) == PRECISIONS


def test_import_options_of_a_new_scene_equal_the_import_defaults(addon):
    from blender_addon.core.choices import RERUN_MODES
    from blender_addon.core.plans import ImportOptions

    chosen = bpy.context.scene.human3r.import_options()
    defaults = ImportOptions()
    assert chosen["rerun"] == defaults.rerun == "VERSION" and chosen["footage_in_renders"] is defaults.footage_in_renders
    ImportOptions.from_dict(chosen)  # the builder accepts them as they are
    props = bpy.context.scene.human3r.bl_rna.properties
    assert tuple(i.identifier for i in props["rerun"].enum_items) == RERUN_MODES
