"""A result file made by the real engine (tiny checkpoint, real footage) imports end to end, and a
truncated copy of it imports up to its last whole frame."""
from __future__ import annotations

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from backend.engine.job import iter_job_messages  # noqa: E402
from blender_addon.blender import compat  # noqa: E402
from blender_addon.blender.file_import import import_result_file  # noqa: E402
from blender_addon.core.resultfile import ResultFileWriter, read_result  # noqa: E402
from tests.support.fixtures import tiny_job_options  # noqa: E402

pytestmark = [pytest.mark.bpy, pytest.mark.timeout(300)]
OPENCV_TO_BLENDER_CAMERA = np.diag([1.0, -1.0, -1.0, 1.0])
W_TO_BLENDER = np.array([[1, 0, 0, 0], [0, 0, 1, 0], [0, -1, 0, 0], [0, 0, 0, 1]], float)  # (x,y,z)->(x,z,-y)


@pytest.fixture(scope="module")
def engine_file(tiny_engine, tennis_video, tmp_path_factory):
    path = tmp_path_factory.mktemp("engine_file") / "tennis.h3r"
    with ResultFileWriter(path) as writer:
        for msg in iter_job_messages(tiny_engine, str(tennis_video), tiny_job_options(start=2, end=8), "e2e"):
            if msg["type"] != "progress":
                writer.write(msg)
    contents = read_result(path)
    assert contents.end["type"] == "done", contents.end
    return path, contents


def test_engine_file_imports_with_camera_people_and_points(factory_scene, engine_file):
    path, contents = engine_file
    summary = import_result_file(path, {"point_mode": "ACCUMULATED"})
    assert summary["truncated"] is False and summary["frames"] == len(contents.frames) == 6
    # tracks seen in fewer than 3 frames (the default Min Track) get no rig and are counted
    track_ids = sorted(int(t["id"]) for t in contents.tracks if t["n_frames"] >= 3)
    assert summary["people"] == track_ids and track_ids
    assert summary["tracks_dropped"] == len(contents.tracks) - len(track_ids)
    coll = bpy.data.collections[summary["collection"]]
    cams = [o for o in coll.objects if o.type == "CAMERA"]
    rigs = [o for o in coll.objects if o.type == "ARMATURE"]
    assert len(cams) == 1 and len(rigs) == len(track_ids)
    assert all(any(c.type == "MESH" for c in rig.children) for rig in rigs)
    assert any(o.type in {"MESH", "POINTCLOUD"} and "points" in o.name for o in coll.objects)

    # source frame i lands on Blender frame 1 + i, and the camera there is M4 · cam_to_world · flip
    scene, cam = factory_scene, cams[0]
    loc_keys = compat.find_fcurve(cam, "location", 0)
    frames_keyed = sorted({int(round(k.co[0])) for k in loc_keys.keyframe_points})
    assert frames_keyed == [1 + f["index"] for f in contents.frames] == list(range(3, 9))
    checked = 0
    for frame in contents.frames:
        if frame["camera"]["K"][0, 0] <= 0:
            continue  # the random tiny model may predict no focal length; the builder holds the last camera
        scene.frame_set(1 + frame["index"])
        expected = W_TO_BLENDER @ frame["camera"]["cam_to_world"].astype(float) @ OPENCV_TO_BLENDER_CAMERA
        np.testing.assert_allclose(np.array(cam.matrix_world), expected, atol=1e-4)
        checked += 1
    assert checked >= 1


def test_truncated_engine_file_imports_up_to_its_last_whole_frame(factory_scene, engine_file, tmp_path):
    path, contents = engine_file
    data = path.read_bytes()
    cut = tmp_path / "cut.h3r"
    header_end = 16 + 8 + int.from_bytes(data[16:20], "little")  # file head, then the header record
    cut.write_bytes(data[: header_end + (len(data) - header_end) * 3 // 5])
    partial = read_result(cut)
    assert partial.truncated and 0 < len(partial.frames) < len(contents.frames)
    summary = import_result_file(cut, {"point_mode": "NONE"})
    assert summary["truncated"] is True and summary["frames"] == len(partial.frames)
    cam = next(o for o in bpy.data.collections[summary["collection"]].objects if o.type == "CAMERA")
    keyed = compat.find_fcurve(cam, "location", 0).keyframe_points
    assert len(keyed) == len(partial.frames)
