"""Crowds: every rig of a batch built in one edit-mode pass in a private scene, bodies copied from one
template, short tracks left out and reported, work split into bounded units, file imports in steps
with cancel."""
from __future__ import annotations

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from blender_addon.blender import build_people  # noqa: E402
from blender_addon.blender.file_import import FileImport  # noqa: E402
from blender_addon.blender.operators import import_report  # noqa: E402
from blender_addon.blender.scene_builder import SceneBuilder  # noqa: E402
from blender_addon.core.scene_plan import ImportOptions  # noqa: E402
from tests.support.synthetic_job import decoded, make_job, write_job  # noqa: E402

pytestmark = pytest.mark.bpy


def crowd(n_people=9, n_frames=8, blips=2):
    """n_people tracks over the whole clip, plus `blips` one-frame tracks."""
    spans = tuple((pid, 0, n_frames) for pid in range(1, n_people + 1))
    spans += tuple((100 + k, k, k + 1) for k in range(blips))
    return make_job(n_frames=n_frames, people=spans, points_per_frame=0, scene_points=0)


@pytest.fixture
def passes(monkeypatch):
    """Records the armatures of every edit-mode pass."""
    seen = []
    original = build_people.edit_mode.__enter__

    def enter(self):
        seen.append([a.name for a in self.arms])
        return original(self)

    monkeypatch.setattr(build_people.edit_mode, "__enter__", enter)
    return seen


def test_a_crowd_is_built_in_few_passes_outside_the_users_scene(factory_scene, passes):
    msgs = decoded(crowd())
    builder = SceneBuilder("crowd", ImportOptions(point_mode="NONE"))
    builder.on_header(msgs[0])
    scene_before = bpy.context.window.scene if bpy.context.window else None
    builder.on_frames([m for m in msgs if m["type"] == "frame"])
    summary = builder.on_end(msgs[-1])
    assert summary["people"] == list(range(1, 10)) and summary["tracks_dropped"] == 2
    assert [len(p) for p in passes] == [4, 4, 1]  # RIGS_PER_UNIT rigs per pass, not one pass per person
    assert not any(s.name.startswith(build_people.BUILD_SCENE) for s in bpy.data.scenes)
    if scene_before is not None:
        assert bpy.context.window.scene == scene_before
    assert not [m for m in bpy.data.meshes if m.name.startswith("Human3R body template")]
    assert not [a for a in bpy.data.armatures if a.name.startswith("Human3R rig template")]
    for pid, arm in builder.armatures.items():
        assert arm.name in bpy.context.scene.objects and arm.users_scene == (bpy.context.scene,)
        rest = builder.planner.people[pid].rest
        heads = np.array([arm.data.bones[n].head_local for n in rest.names])
        np.testing.assert_allclose(heads, rest.heads, atol=1e-5)  # copied rigs get their own rest
        body = builder.meshes[pid]
        co = np.empty(3 * len(body.data.vertices), np.float32)
        body.data.vertices.foreach_get("co", co)
        np.testing.assert_allclose(co.reshape(-1, 3), rest.vertices, atol=1e-5)  # own shape, not the template's
        assert [g.name for g in body.vertex_groups] == list(rest.names)
        key = body.data.shape_keys
        assert key is not None and key.user == body.data  # its own shape keys
        offset = np.empty(3 * len(body.data.vertices), np.float32)
        key.key_blocks["Exp000"].data.foreach_get("co", offset)
        expected = builder.planner.shape_key_set().offsets[0]
        np.testing.assert_allclose(offset.reshape(-1, 3) - rest.vertices, expected, atol=1e-5)
    # the skinning weights came along with the copy: a vertex's weights are the model's
    w = builder.planner.persons.body.lbs_weights
    v = int(np.argmax(w[:, 18]))
    body = builder.meshes[1]
    got = {body.vertex_groups[g.group].name: g.weight for g in body.data.vertices[v].groups}
    names = builder.planner.people[1].rest.names
    assert got == pytest.approx({names[j]: w[v, j] for j in np.flatnonzero(w[v] > 0)}, abs=1e-6)


def test_every_track_with_min_length_one(factory_scene):
    msgs = decoded(crowd(n_people=2, blips=3))
    builder = SceneBuilder("all", ImportOptions(point_mode="NONE", min_track_frames=1))
    builder.on_header(msgs[0])
    builder.on_frames([m for m in msgs if m["type"] == "frame"])
    assert builder.on_end(msgs[-1])["people"] == [1, 2, 100, 101, 102]


def test_work_is_applied_in_units_within_a_budget(factory_scene):
    msgs = decoded(crowd(n_people=6, n_frames=6, blips=0))
    frames = [m for m in msgs if m["type"] == "frame"]
    live = SceneBuilder("live", ImportOptions(point_mode="NONE"))
    live.on_header(msgs[0])
    live.on_frames(frames[:3], budget_s=0.0)  # one unit only (a live tick: people planned one by one)
    assert live.busy and live.frames_applied == 0 and not live.armatures
    units, rigs = 1, [0]
    while live.pump(0.0):
        units += 1
        rigs.append(len(live.armatures))
    assert max(np.diff(rigs)) == 1  # one rig per unit of work
    # camera, its keys, per person: plan, build, keys; the body template in steps; bookkeeping
    assert units >= 2 + 3 * 6 + 3
    assert live.frames_applied == 3 and len(live.armatures) == 6
    live.on_frames(frames[3:])  # no budget: all of it
    assert not live.busy and live.frames_applied == 6
    # the same keys as one pass without a budget
    whole = SceneBuilder("whole", ImportOptions(point_mode="NONE"))
    whole.on_header(msgs[0])
    whole.on_frames(frames)
    for pid in live.armatures:
        assert _keys(live.armatures[pid]) == _keys(whole.armatures[pid]), pid


def test_a_batch_planned_while_the_last_is_queued_builds_every_rig(factory_scene):
    msgs = decoded(crowd(n_people=5, n_frames=8, blips=0))
    frames = [m for m in msgs if m["type"] == "frame"]
    live = SceneBuilder("live", ImportOptions(point_mode="NONE"))
    live.on_header(msgs[0])
    live.on_frames(frames[:4], budget_s=0.0)
    live.on_frames(frames[4:], budget_s=0.0)  # the first batch's people are planned first
    while live.pump(0.0):
        pass
    whole = SceneBuilder("whole", ImportOptions(point_mode="NONE"))
    whole.on_header(msgs[0])
    whole.on_frames(frames)
    assert sorted(live.armatures) == sorted(whole.armatures) and live.frames_applied == 8
    for pid in live.armatures:
        assert _keys(live.armatures[pid]) == _keys(whole.armatures[pid]), pid


def _keys(ob):
    from blender_addon.blender import compat

    fc = compat.find_fcurve(ob, 'pose.bones["left_knee"].rotation_quaternion', 1)
    return [tuple(round(c, 5) for c in k.co) for k in fc.keyframe_points]


def test_file_import_in_steps_reports_progress_and_can_be_cancelled(factory_scene, tmp_path):
    path = write_job(tmp_path / "crowd.h3r", crowd(n_people=6, n_frames=20))
    job = FileImport(path, {"point_mode": "NONE"}, batch_frames=4)
    fractions = []
    while job.step(budget_s=0.0):
        fractions.append(job.fraction)
        if len(job.builder.armatures if job.builder else ()) >= 4 and job.builder.frames_applied >= 8:
            break
    assert fractions == sorted(fractions) and 0.0 <= fractions[0] < fractions[-1] < 1.0
    summary = job.cancel()
    assert summary["status"] == "cancelled" and 8 <= summary["frames"] < 20
    lines = import_report("crowd.h3r", summary)
    assert lines[0][0] == "WARNING" and "Stopped importing crowd.h3r" in lines[0][1]
    assert bpy.data.objects.get("clip camera") is not None  # what was built stays (video /videos/clip.mp4)

    bpy.ops.wm.read_factory_settings(use_empty=True)
    done = FileImport(path, {"point_mode": "NONE"}, batch_frames=4).run()
    assert done["status"] == "done" and done["frames"] == 20 and done["tracks_dropped"] == 2
    lines = import_report("crowd.h3r", done)
    assert lines[0] == ("INFO", "Imported crowd.h3r: 20 frame(s), 6 people (2 short track(s) left out)")
    assert any("Min Track (Scene Import)" in text for _, text in lines[1:])
