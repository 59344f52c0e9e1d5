"""Footage in sync for variable-frame-rate and odd-rate video (issue 16 item 2) in real bpy: Blender reads
a VFR clip as a constant rate, so the import keys the clip's frame_offset and each result's frame shows
that result's own picture. The pictures are read back from real renders (the compositor's Movie Clip
node shows the clip as the camera background does)."""
from __future__ import annotations

import fractions
from pathlib import Path

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from blender_addon.blender import render_footage  # noqa: E402
from blender_addon.blender.operators import import_report  # noqa: E402
from blender_addon.blender.scene_builder import SceneBuilder  # noqa: E402
from blender_addon.core.scene_plan import ImportOptions  # noqa: E402
from tests.support.synthetic_job import decoded, make_job  # noqa: E402

pytestmark = pytest.mark.bpy
# picture i is the flat colour CODES[i]: bit b of i switches channel b fully on, far apart after any rounding
CODES = [tuple(255 * ((i >> b) & 1) for b in range(3)) for i in range(8)]
# seconds from the stream start of each frame: gaps alternate 1/30 and 1/15 s (Blender reads 30 fps, 2 pictures
# per long gap), and uneven gaps off any grid (Blender reads the mean rate, ~26 fps, so some frames have no
# picture of their own)
ON_GRID = np.cumsum([0.0] + [1 / 30 if i % 2 == 0 else 1 / 15 for i in range(7)])
OFF_GRID = np.array([0, 2, 5, 6, 9, 11, 12, 15]) / 60 + np.array([0] + [0.004] * 7)


def _write_clip(path: Path, times, stream_rate: int, ticks_per_s: int = 1000) -> Path:
    """An H.264 clip whose frame i (colour CODES[i]) starts at times[i] seconds."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=stream_rate)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv444p"
        stream.time_base = stream.codec_context.time_base = fractions.Fraction(1, ticks_per_s)  # pts off the rate grid
        for i, t in enumerate(times):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), CODES[i], np.uint8), format="rgb24")
            frame.pts, frame.time_base = int(round(t * ticks_per_s)), stream.time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _import(video: Path, times, rate: float) -> dict:
    """A job of len(times) frames (result i at `times[i]` s, header rate `rate`) with `video` behind the camera."""
    msgs = decoded(make_job(n_frames=len(times), people=((1, 0, len(times)),), points_per_frame=0, scene_points=0,
                            video_path=str(video), width=64, height=48))
    fraction = fractions.Fraction(rate).limit_denominator(1001)
    msgs[0]["video"].update(fps=rate, fps_fraction=[fraction.numerator, fraction.denominator], frame_count=len(times))
    frames = [m for m in msgs if m["type"] == "frame"]
    for m, t in zip(frames, times):
        m["time"] = float(t)
    builder = SceneBuilder(None, ImportOptions(import_meshes=False, point_mode="NONE"))
    builder.on_header(msgs[0])
    builder.on_frames(frames[:3])  # two batches: the retiming carries across them
    builder.on_frames(frames[3:])
    summary = builder.on_end(msgs[-1])
    summary["camera_object"] = builder.camera
    for arm in summary["armatures"].values():  # only the footage shows in the renders
        bpy.data.objects[arm].hide_render = True
    return summary


def _shown_picture(scene, frame: int, tmp_path: Path) -> int:
    """The CODES index of the footage a render shows at `frame`."""
    scene.render.engine = "CYCLES"
    scene.cycles.samples = 1
    scene.cycles.device = "CPU"
    scene.render.resolution_percentage = 25
    scene.render.image_settings.file_format = "PNG"
    scene.render.filepath = str(tmp_path / f"f{frame}")
    scene.frame_set(frame)
    bpy.ops.render.render(write_still=True)
    image = bpy.data.images.load(str(tmp_path / f"f{frame}.png"))
    w, h = image.size
    rgb = np.asarray(image.pixels[:], np.float32).reshape(h, w, 4)[h // 2, w // 2, :3]
    bpy.data.images.remove(image)
    assert np.all((rgb < 0.2) | (rgb > 0.8)), rgb  # a flat code colour, not a blend
    return int(sum(int(rgb[b] > 0.5) << b for b in range(3)))


def _own_pictures(times: np.ndarray, rate: float, pictures: int) -> list[int]:
    """The frames Blender can show at all: picture k shows the last frame starting at or before k / rate s."""
    starts = np.arange(pictures) / rate
    return sorted({int(np.searchsorted(times, t + 1e-9, side="right") - 1) for t in starts})


@pytest.mark.parametrize("times", [ON_GRID, OFF_GRID], ids=["on-grid", "off-grid"])
def test_a_variable_frame_rate_clip_shows_each_results_own_picture(factory_scene, tmp_path, times):
    clip_path = _write_clip(tmp_path / "vfr.mp4", times, stream_rate=30)
    summary = _import(clip_path, times, rate=30.0)
    scene = bpy.context.scene
    clip = render_footage.footage_clip(bpy.data.objects[summary["camera"]])
    reachable = _own_pictures(times, clip.fps, clip.frame_duration)
    assert len(reachable) >= 5, (clip.fps, reachable)
    shown = [_shown_picture(scene, scene.frame_start + i, tmp_path) for i in range(len(times))]
    assert [shown[i] for i in reachable] == reachable, (shown, reachable)
    report = [text for level, text in import_report("vfr.h3r", summary) if level == "INFO"]
    assert any("retimed" in t and "vfr.mp4" in t for t in report), report


def test_a_clip_blender_reads_at_the_results_rate_is_left_alone(factory_scene, tmp_path):
    times = np.arange(8) / 24.0
    clip_path = _write_clip(tmp_path / "cfr.mp4", times, stream_rate=24, ticks_per_s=24)
    summary = _import(clip_path, times, rate=24.0)
    clip = render_footage.footage_clip(bpy.data.objects[summary["camera"]])
    assert clip.animation_data is None or clip.animation_data.action is None
    assert summary["video_retimed"] is None
    scene = bpy.context.scene
    assert [_shown_picture(scene, scene.frame_start + i, tmp_path) for i in (0, 3, 7)] == [0, 3, 7]


def test_locate_video_retimes_a_variable_frame_rate_clip_as_the_import_does(addon, tmp_path):
    """The .h3r's video was missing at import; Locate Video… then attaches the VFR clip in sync."""
    times = OFF_GRID
    summary = _import(tmp_path / "moved" / "vfr.mp4", times, rate=30.0)
    cam = summary["camera_object"]
    assert render_footage.footage_clip(cam) is None and any("Locate Video" in w for w in summary["warnings"])
    clip_path = _write_clip(tmp_path / "vfr.mp4", times, stream_rate=30)
    with bpy.context.temp_override(active_object=cam, object=cam):
        assert bpy.ops.human3r.locate_video(filepath=str(clip_path)) == {"FINISHED"}
    clip = render_footage.footage_clip(cam)
    assert clip.animation_data is not None and clip.animation_data.action is not None  # retimed, not left at 0
    scene = bpy.context.scene
    reachable = _own_pictures(times, clip.fps, clip.frame_duration)
    assert len(reachable) >= 5, (clip.fps, reachable)
    shown = [_shown_picture(scene, scene.frame_start + i, tmp_path) for i in range(len(times))]
    assert [shown[i] for i in reachable] == reachable, (shown, reachable)
