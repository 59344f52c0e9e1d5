"""Panel polish (issue 16 item 8) in real bpy: a re-run is versioned or replaces the earlier run
(never Blender's `.001` copies), F12 renders show the footage through the compositor, the Server box
says whether a server started by hand answers, and long errors wrap instead of being clipped."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from blender_addon.blender import job_collections, render_footage, server_status, ui_text  # noqa: E402
from blender_addon.blender.operators import import_report  # noqa: E402
from blender_addon.blender.scene_builder import SceneBuilder  # noqa: E402
from blender_addon.core.scene_plan import ImportOptions  # noqa: E402
from tests.support.synthetic_job import decoded, make_job  # noqa: E402

pytestmark = pytest.mark.bpy
FOOTAGE_RGB = (230, 40, 30)  # the clip's one colour (sRGB 8-bit)


def job(video_path="/videos/clip.mp4"):
    return decoded(make_job(n_frames=6, people=((1, 0, 6), (2, 0, 6)), points_per_frame=0, scene_points=20,
                            video_path=video_path, width=64, height=48))


def run_import(msgs, **options):
    builder = SceneBuilder(None, ImportOptions(**{"import_meshes": True, "point_mode": "ACCUMULATED", **options}))
    builder.on_header(msgs[0])
    builder.on_frames([m for m in msgs if m["type"] == "frame"])
    for m in msgs:
        if m["type"] == "track":
            builder.on_track(m)
    return builder.on_end(msgs[-1])


def _names():
    return {"objects": sorted(o.name for o in bpy.data.objects), "actions": sorted(a.name for a in bpy.data.actions),
            "collections": sorted(c.name for c in bpy.data.collections),
            "meshes": len(bpy.data.meshes), "armatures": len(bpy.data.armatures)}


def test_a_rerun_is_a_new_version_by_default(factory_scene):
    first = run_import(job())
    second = run_import(job())
    third = run_import(job())
    assert (first["collection"], second["collection"], third["collection"]) == ("clip", "clip v2", "clip v3")
    names = _names()
    assert not [n for n in names["objects"] + names["actions"] + names["collections"] if ".00" in n], names
    ours = {o.name for o in bpy.data.collections["clip v2"].all_objects}
    assert ours and all(n.startswith("clip v2 ") for n in ours), ours
    assert second["replaced"] == []


def test_replace_previous_removes_the_earlier_runs_and_their_data(factory_scene):
    run_import(job())
    one_run = _names()
    run_import(job())  # clip v2
    assert len(bpy.data.objects) == 2 * len(one_run["objects"])
    summary = run_import(job(), rerun="REPLACE")
    assert summary["collection"] == "clip" and sorted(summary["replaced"]) == ["clip", "clip v2"]
    assert _names() == one_run  # exactly one run's objects, actions, meshes and armatures are left
    report = dict((text, level) for level, text in import_report("clip.h3r", summary))
    assert any(t.startswith("Replaced the earlier run(s): ") and "clip v2" in t for t in report), report
    # another video's run is not touched
    other = run_import(job("/videos/other.mp4"), rerun="REPLACE")
    assert other["collection"] == "other" and other["replaced"] == []
    assert "clip" in bpy.data.collections


def _write_clip(path: Path, frames=3, size=(64, 48)) -> Path:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv444p"
        stream.options = {"crf": "0"}
        img = np.zeros((size[1], size[0], 3), np.uint8)
        img[:] = FOOTAGE_RGB
        for _ in range(frames):
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _render_centre(scene, tmp_path: Path, name: str) -> np.ndarray:
    scene.render.engine = "CYCLES"
    scene.cycles.samples = 1
    scene.cycles.device = "CPU"
    scene.render.resolution_percentage = 25
    scene.render.image_settings.file_format = "PNG"
    scene.render.filepath = str(tmp_path / name)
    scene.frame_set(scene.frame_start)
    bpy.ops.render.render(write_still=True)
    image = bpy.data.images.load(str(tmp_path / f"{name}.png"))
    w, h = image.size
    pixels = np.asarray(image.pixels[:], np.float32).reshape(h, w, 4)
    return pixels[h // 2, w // 2, :3]


def test_f12_renders_show_the_footage(factory_scene, tmp_path):
    clip = _write_clip(tmp_path / "red.mp4")
    msgs = job(str(clip))
    summary = run_import(msgs, import_meshes=False, point_mode="NONE")
    scene = bpy.context.scene
    camera = bpy.data.objects[summary["camera"]]
    for arm in summary["armatures"].values():  # nothing in front of the camera: only the backdrop shows
        bpy.data.objects[arm].hide_render = True
    assert render_footage.footage_clip(camera) is not None
    assert render_footage.footage_in_renders(scene) and scene.render.film_transparent
    shown = _render_centre(scene, tmp_path, "with_footage")
    expected = np.asarray(FOOTAGE_RGB, np.float32) / 255.0
    assert np.abs(shown - expected).max() < 0.06, (shown, expected)
    # the option off: the same render shows no footage
    bpy.ops.wm.read_factory_settings(use_empty=True)
    summary = run_import(job(str(clip)), import_meshes=False, point_mode="NONE", footage_in_renders=False)
    scene = bpy.context.scene
    for arm in summary["armatures"].values():
        bpy.data.objects[arm].hide_render = True
    assert not render_footage.footage_in_renders(scene)
    plain = _render_centre(scene, tmp_path, "without")
    assert np.abs(plain - expected).max() > 0.3, plain


def test_long_errors_wrap_at_spaces_and_keep_every_word():
    text = ("Cannot open /very/long/path/to/some/footage/folder/with/a/name_that_goes_on_and_on.mp4: the server "
            "said path_not_allowed (outside its media roots)")
    lines = ui_text.wrap(text, 30)
    assert len(lines) > 3 and all(len(line) <= 30 for line in lines)
    assert "".join(lines).replace(" ", "") == text.replace(" ", "")  # nothing clipped
    for word in text.split():  # a word that fits on a line is never split
        if len(word) <= 30:
            assert any(word in line.split() for line in lines), (word, lines)


def test_status_lines_are_wrapped_to_what_the_default_sidebar_shows():
    import types

    ctx = types.SimpleNamespace(region=None, preferences=bpy.context.preferences)
    width = ui_text.label_width_px(ctx)
    # shown as "Importing crowd.h3r: 256/300 fra…" in a box of Blender 4.3's default sidebar
    assert ui_text.text_px("Importing crowd.h3r: 256/300 frames") > width
    text = ("Importing crowd.h3r: 256/300 frames (86 %) and a path /footage/shoot_2026_12_07/"
            "camera_a/take_0042_a_very_long_name.mp4 that is longer than one line")
    lines = ui_text.lines_for(ctx, text)
    assert len(lines) >= 4 and all(ui_text.text_px(line) <= width for line in lines), lines
    assert "".join(lines).replace(" ", "") == text.replace(" ", "")


def _tick_until(probe, endpoint: str, reachable: bool, limit_s: float = 15.0) -> list[str]:
    """Run the Server box's timer step until the probe answers `reachable`; return the box's lines."""
    server_status.wanted()
    deadline = time.monotonic() + limit_s
    while probe.answer.reachable is not reachable and time.monotonic() < deadline:
        server_status.tick()
        time.sleep(0.05)
    return [t for t, _ in server_status.status_lines(endpoint)]


def test_the_server_box_says_a_hand_started_server_is_reachable(addon, tmp_path):
    from backend.server.app import Server
    from backend.server.settings import ServerSettings

    server = Server(ServerSettings(bind="tcp://127.0.0.1:0", media_roots=(tmp_path,), results_dir=tmp_path / "r"),
                    lambda *a: iter(()), None, info={"device": "cpu", "model": {"name": "tiny"}})
    endpoint = server.start()
    prefs = bpy.context.preferences.addons["blender_addon"].preferences
    prefs.server_address = endpoint
    probe = server_status.probe()
    probe.ttl_s = 0.5
    try:
        lines = _tick_until(probe, endpoint, True)
        assert lines[0] == "Reachable: tiny on cpu", lines
        assert lines[1] == "Started outside Blender"
    finally:
        server.stop()
    lines = _tick_until(probe, endpoint, False)
    assert lines[0].startswith("Not answering: no answer within"), lines
    assert lines[1] == "No server started from Blender"


def test_the_versions_of_a_name(factory_scene):
    for name in ("clip", "clip v2", "clip.001", "clipper", "other"):
        bpy.data.collections.new(name)
    assert job_collections.claim("clip", "VERSION") == ("clip v3", [])
    assert job_collections.claim("new", "VERSION") == ("new", [])
