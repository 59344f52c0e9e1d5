"""What the panel shows: Run and Cancel in different places, progress of the scene and of the server,
a label on the video field, what End 0 means, the server's model by name, Locate Video for a camera
whose video is missing, the end of a job with its warnings in the Info log, a file import's progress,
and labels that fit the default sidebar (found clipped in Blender 4.3's GUI: scripts/gui_screenshots.sh)."""
from __future__ import annotations

import types

import pytest

bpy = pytest.importorskip("bpy")

pytestmark = pytest.mark.bpy


class Recorder:
    """A stand-in UILayout that records what is drawn: (path of containers, kind, name, kwargs)."""

    def __init__(self, log, path=()):
        self.log, self.path = log, path

    def _child(self, kind):
        return Recorder(self.log, self.path + (f"{kind}{len(self.log)}",))

    def row(self, **_):
        self.log.append((self.path, "row", None, {}))
        return self._child("row")

    def column(self, **_):
        return self._child("col")

    def box(self):
        self.log.append((self.path, "box", None, {}))
        return self._child("box")

    def operator(self, idname, **kwargs):
        self.log.append((self.path, "operator", idname, kwargs))
        return types.SimpleNamespace()

    def label(self, **kwargs):
        self.log.append((self.path, "label", kwargs.get("text"), kwargs))

    def prop(self, data, name, **kwargs):
        assert hasattr(data, name), name
        self.log.append((self.path, "prop", name, {**kwargs, "_data": data}))

    def progress(self, **kwargs):
        self.log.append((self.path, "progress", None, kwargs))

    def __setattr__(self, name, value):
        object.__setattr__(self, name, value)


def draw(panel_cls, active_object=None):
    log = []
    ctx = types.SimpleNamespace(scene=bpy.context.scene, preferences=bpy.context.preferences, region=None,
                                active_object=active_object)
    panel_cls.draw(types.SimpleNamespace(layout=Recorder(log)), ctx)
    return log


def find(log, kind, name):
    return [entry for entry in log if entry[1] == kind and entry[2] == name]


@pytest.fixture
def session(addon):
    from blender_addon.blender import live
    from blender_addon.core.session import LiveSession, State

    s = LiveSession(client=types.SimpleNamespace(close=lambda: None), sink=None)
    s.state, s.message = State.RUNNING, "Running: clip.mp4"
    s.progress.frames_total, s.progress.frames_done, s.progress.frames_inferred = 120, 12, 40
    live._session = s
    yield s
    live.forget()


def test_run_and_cancel_never_share_a_spot(session):
    from blender_addon.blender import panels
    from blender_addon.core.session import State

    log = draw(panels.HUMAN3R_PT_main)
    (run,) = find(log, "operator", "human3r.run")
    (cancel,) = find(log, "operator", "human3r.cancel")
    assert run[3]["text"] == "Running…" and run[0] != cancel[0] and cancel[0][-1].startswith("box")
    assert not bpy.ops.human3r.run.poll()  # greyed while the job runs
    shown = " ".join(e[2] or e[3].get("text", "") for e in log if e[1] in ("label", "progress"))
    assert "inferred 40/120, imported 12" in shown  # what the server did and what the scene has
    session.state, session.message = State.DONE, "Done: 120 frames"
    log = draw(panels.HUMAN3R_PT_main)
    assert not find(log, "operator", "human3r.cancel")
    (clear,) = find(log, "operator", "human3r.clear_status")
    (first,) = [e for e in log if e[1] == "label" and e[2] == "Done: 120 frames"]
    assert clear[0] == first[0] and clear[0][-1].startswith("row")  # beside the message, not where Cancel was


def test_video_label_and_end_zero_explained(addon):
    from blender_addon.blender import panels

    settings = bpy.context.scene.human3r
    log = draw(panels.HUMAN3R_PT_main)
    assert find(log, "prop", "video_path")[0][3]["text"] == "Video"
    assert find(log, "label", "End: to the end of the video")
    settings.frame_start, settings.frame_end = 0, 90
    assert not find(draw(panels.HUMAN3R_PT_main), "label", "End: to the end of the video")


def test_server_box_names_the_model(session):
    from blender_addon.blender import panels

    session.address = bpy.context.preferences.addons["blender_addon"].preferences.server_address
    session.server_info = {"device": "cuda:0", "model": {"name": "human3r-tiny", "checkpoint_digest": "ab"}}
    labels = [e[2] for e in draw(panels.HUMAN3R_PT_server) if e[1] == "label"]
    assert any("human3r-tiny on cuda:0" in t for t in labels) and not any("{" in t for t in labels)


def test_locate_video_for_a_camera_without_its_video(addon, tmp_path):
    from blender_addon.blender import panels
    from blender_addon.blender.scene_builder import SceneBuilder
    from blender_addon.core.scene_plan import ImportOptions
    from tests.support.synthetic_job import decoded, make_job

    msgs = decoded(make_job(n_frames=3, people=(), points_per_frame=0, scene_points=0,
                            video_path=str(tmp_path / "moved.mp4")))
    builder = SceneBuilder(None, ImportOptions(point_mode="NONE", scene_frame_start=5))
    builder.on_header(msgs[0])
    builder.on_frames(msgs[1:4])
    summary = builder.on_end(msgs[-1])
    assert any("video not found" in w and "Locate Video" in w for w in summary["warnings"])
    cam = builder.camera
    assert find(draw(panels.HUMAN3R_PT_main, active_object=cam), "operator", "human3r.locate_video")
    video = _tiny_video(tmp_path / "found.mp4")
    with bpy.context.temp_override(active_object=cam, object=cam):
        assert bpy.ops.human3r.locate_video(filepath=str(video)) == {"FINISHED"}
    (bg,) = cam.data.background_images
    assert bg.clip.filepath == str(video) and bg.clip.frame_start == 5  # video frame 0 at Blender frame 5
    assert not find(draw(panels.HUMAN3R_PT_main, active_object=cam), "operator", "human3r.locate_video")


def _tiny_video(path):
    import av
    import numpy as np

    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=30)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(3):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 40 * i, np.uint8), format="rgb24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def test_end_of_a_job_and_its_warnings_go_to_the_info_log(addon):
    from blender_addon.blender import live
    from blender_addon.core.session import LiveSession, State

    sink = types.SimpleNamespace(summary={"warnings": ["video not found, no camera background: /x.mp4"]})
    s = LiveSession(client=types.SimpleNamespace(close=lambda: None), sink=sink)
    s.state, s.message = State.DONE, "Done: 30 frames, 2 people"
    assert live.end_messages(s) == [("INFO", "Done: 30 frames, 2 people"),
                                    ("WARNING", "video not found, no camera background: /x.mp4")]


# Widths (Blender's UI font at size 11, scale 1) that show whole in the default sidebar, measured in
# Blender 4.3's GUI: a property-split label up to "Reset Interval" (73 px; "Detection Threshold" showed as
# "Detection Th…"), a checkbox's text up to "Pose Correctives" (89 px; "Keep Frame Range", 98 px, clipped).
LABEL_PX, CHECKBOX_PX = 73, 90


def _text_px(text: str) -> float:
    import blf

    blf.size(0, 11)
    return blf.dimensions(0, text)[0]


@pytest.mark.parametrize("panel", ["HUMAN3R_PT_model", "HUMAN3R_PT_scene"])
def test_option_labels_fit_the_default_sidebar(addon, panel):
    from blender_addon.blender import panels

    too_wide = []
    for _, kind, name, kwargs in draw(getattr(panels, panel)):
        if kind != "prop":
            continue
        rna = kwargs["_data"].bl_rna.properties[name]
        text = kwargs.get("text", rna.name)
        limit = CHECKBOX_PX if rna.type == "BOOLEAN" else LABEL_PX
        if _text_px(text) > limit:
            too_wide.append((name, text, _text_px(text)))
    assert not too_wide, too_wide


def test_server_box_shows_the_one_button_that_applies(addon):
    from blender_addon.blender import panels

    ops = [e[2] for e in draw(panels.HUMAN3R_PT_server) if e[1] == "operator"]
    assert ops == ["human3r.start_server"]  # no local server: Start, at full width (two clipped side by side)


def test_a_file_import_shows_its_progress_in_the_panel(addon, tmp_path):
    from blender_addon.blender import file_import, panels
    from tests.support.synthetic_job import write_job_file

    path = write_job_file(tmp_path / "crowd.h3r", frames=12, people=3)
    job = file_import.FileImport(path, {"point_mode": "NONE"}, batch_frames=4)
    while job.builder is None or job.builder.frames_applied == 0:
        job.step(0.0)  # one unit at a time: stop as soon as the first frames are in
    file_import.in_progress.append(job)
    try:
        log = draw(panels.HUMAN3R_PT_main)
        (bar,) = [e for e in log if e[1] == "progress"]
        assert 0.1 < bar[3]["factor"] < 1.0 and bar[3]["text"] == f"{int(100 * job.fraction)} %"
        text = " ".join(e[2] for e in log if e[1] == "label")  # wrapped over labels
        assert f"Importing crowd.h3r: {job.builder.frames_applied}/12 frames ({int(100 * job.fraction)} %)" in text
        assert "Esc" in text
    finally:
        file_import.in_progress.remove(job)
    job.run()
    assert not [e for e in draw(panels.HUMAN3R_PT_main) if e[1] == "progress"]


def test_a_long_end_message_wraps_beside_its_clear_button(session):
    from blender_addon.blender import panels, ui_text
    from blender_addon.core.session import State

    session.state = State.DONE
    session.message = "Done: 40 frame(s), 46 tracks (5 of at least 10 frames) in 6.0 s."  # clipped in 4.3's GUI
    log = draw(panels.HUMAN3R_PT_main)
    (clear,) = [e for e in log if e[1] == "operator" and e[2] == "human3r.clear_status"]
    first = next(e for e in log if e[1] == "label" and e[0] == clear[0])  # the label on Clear's row
    ctx = types.SimpleNamespace(region=None, preferences=bpy.context.preferences)
    assert ui_text.text_px(first[2]) <= ui_text.label_width_px(ctx, ui_text.BUTTON_PX)
    assert " ".join(e[2] for e in log if e[1] == "label").endswith("in 6.0 s.")
