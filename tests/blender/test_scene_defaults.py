"""What a user meets in Blender's default scene: the scene range is the processed frames (or kept on
request), and the default cube around the first camera position is hidden."""
from __future__ import annotations

import math

from fractions import Fraction

import pytest

bpy = pytest.importorskip("bpy")

from blender_addon.blender.scene_builder import SceneBuilder  # noqa: E402
from blender_addon.core.scene_plan import ImportOptions  # noqa: E402
from tests.support.synthetic_job import decoded, make_job  # noqa: E402

pytestmark = pytest.mark.bpy


def processed_job(start=10, end=100, stride=3, frame_count=312):
    """A job over source frames [start, end) of a longer video, every `stride`-th frame."""
    msgs = make_job(n_frames=end, people=((1, 0, end),), points_per_frame=0, scene_points=0)
    header = dict(msgs[0], video=dict(msgs[0]["video"], frame_count=frame_count),
                  options={"start": start, "end": end, "stride": stride})
    frames = [m for m in msgs[1:] if m["type"] == "frame" and m["index"] >= start
              and (m["index"] - start) % stride == 0]
    return decoded([header] + frames + [msgs[-1]])


def build(msgs, **options):
    builder = SceneBuilder(None, ImportOptions(point_mode="NONE", import_meshes=False, **options))
    builder.on_header(msgs[0])
    builder.on_frames([m for m in msgs if m["type"] == "frame"])
    return builder


def test_scene_range_is_the_processed_frames(factory_scene):
    msgs = processed_job()  # source 10, 13, ..., 97 of a 312-frame video
    builder = build(msgs, scene_frame_start=1)
    scene = bpy.context.scene
    assert (scene.frame_start, scene.frame_end) == (11, 98)  # Blender frame = 1 + source index
    builder.on_end(msgs[-1])
    assert (scene.frame_start, scene.frame_end) == (11, 98)


def test_scene_range_follows_a_job_that_stopped_early(factory_scene):
    msgs = processed_job()
    builder = build(msgs[:11])  # header + 10 frames: source 10 .. 37
    builder.on_end(None)
    assert (bpy.context.scene.frame_start, bpy.context.scene.frame_end) == (11, 38)


def test_scene_range_can_be_kept(factory_scene):
    scene = bpy.context.scene
    scene.frame_start, scene.frame_end = 7, 77
    builder = build(processed_job(), keep_frame_range=True)
    builder.on_end(None)
    assert (scene.frame_start, scene.frame_end) == (7, 77)


def test_default_cube_around_the_camera_is_hidden():
    bpy.ops.wm.read_factory_settings(use_empty=False)  # Blender's startup scene: Cube, Light, Camera
    try:
        cube = bpy.data.objects["Cube"]
        assert not cube.hide_get()
        builder = build(decoded(make_job(n_frames=3, people=((1, 0, 3),), points_per_frame=0, scene_points=0)))
        assert cube.hide_get() and cube.hide_render  # the first camera sits at the origin, inside the cube
        assert any("'Cube' enclosed the camera" in w for w in builder.warnings)
        assert not bpy.data.objects["Light"].hide_get()  # only what blocks the view
    finally:
        bpy.ops.wm.read_factory_settings(use_empty=True)


def test_a_cube_away_from_the_camera_stays(factory_scene):
    bpy.ops.mesh.primitive_cube_add(location=(0, 10, 0))
    cube = bpy.context.object
    build(decoded(make_job(n_frames=3, people=((1, 0, 3),), points_per_frame=0, scene_points=0)))
    assert not cube.hide_get() and not cube.hide_render


def _video(path, rate, frames):
    import av
    import numpy as np

    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=rate)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(frames):
            image = np.full((48, 64, 3), 20 * i % 256, np.uint8)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        out.mux(stream.encode(None))
    return path


@pytest.mark.parametrize("rate,retimed", [(Fraction(30000, 1001), False), (60, True)])
def test_a_plate_blender_reads_at_another_rate_is_retimed(factory_scene, tmp_path, rate, retimed):
    # the results are at 29.97 fps over 6 frames; Blender plays clip picture N at scene frame N unless retimed
    video = _video(tmp_path / "plate.mp4", rate, 6)
    msgs = decoded(make_job(n_frames=6, people=(), points_per_frame=0, scene_points=0, video_path=str(video)))
    builder = build(msgs)
    clip = builder.camera.data.background_images[0].clip
    summary = builder.on_end(msgs[-1])
    assert bool(summary["video_retimed"]) is retimed, summary
    if retimed:  # result i (i / 29.97 s) shows picture ceil(i * 60 / 29.97): offset = that - i
        assert "at 60.00 fps" in summary["video_retimed"] and "results are at 29.97 fps" in summary["video_retimed"]
        for i in range(6):
            bpy.context.scene.frame_set(builder.setup.frame_start + i)
            assert clip.frame_offset == math.ceil(i * 60 * 1001 / 30000 - 1e-3) - i
    else:
        assert clip.animation_data is None or clip.animation_data.action is None
