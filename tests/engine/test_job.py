"""`iter_job_messages`: the message stream the server and `infer` consume (tiny model, CPU)."""
from __future__ import annotations

import threading

import numpy as np
import PIL.Image

from backend.engine.job import iter_job_messages
from blender_addon.core import protocol
from tests.support.fixtures import tiny_job_options


def collect(engine, video, options, cancel=None, job="job1"):
    msgs = list(iter_job_messages(engine, str(video), options, job, cancel))
    for m in msgs:  # every message is a valid protocol message that survives the codec
        protocol.validate(m)
        protocol.decode(protocol.encode(m))
    return msgs


def test_stream_order_seq_and_stride(tiny_engine, tennis_video):
    msgs = collect(tiny_engine, tennis_video, tiny_job_options(start=1, end=9, stride=3, reset_interval=2))
    types = [m["type"] for m in msgs]
    assert types[0] == "header" and types[-1] == "done"
    assert [m["seq"] for m in msgs] == list(range(len(msgs)))
    assert all(m["job"] == "job1" for m in msgs)
    frames = [m for m in msgs if m["type"] == "frame"]
    assert [f["index"] for f in frames] == [1, 4, 7]  # source indices kept
    assert [f["reset"] for f in frames] == [False, True, False] and [f["chunk"] for f in frames] == [0, 0, 1]
    times = [f["time"] for f in frames]
    assert times == sorted(times) and times[0] > 0
    tracks = [m for m in msgs if m["type"] == "track"]
    assert tracks, "the tiny model finds people on this clip; no track messages means tracking broke"
    assert types.index("track") > max(i for i, t in enumerate(types) if t == "frame")
    ids = sorted({int(i) for f in frames for i in f["people"]["id"]})
    assert [t["id"] for t in tracks] == ids
    assert msgs[-1]["frames"] == 3 and msgs[-1]["people"] == len(tracks)
    for t in tracks:
        seen = [f["index"] for f in frames if t["id"] in f["people"]["id"]]
        assert (t["first_frame"], t["last_frame"], t["n_frames"]) == (seen[0], seen[-1], len(seen))
        assert t["betas"].shape == (10,) and t["betas"].dtype == np.float32


def test_cancel_between_frames(tiny_engine, tennis_video):
    cancel = threading.Event()
    out = []
    for m in iter_job_messages(tiny_engine, str(tennis_video), tiny_job_options(end=20), "j", cancel):
        out.append(m)
        if m["type"] == "frame" and m["index"] == 1:
            cancel.set()
    assert out[-1]["type"] == "cancelled" and out[-1]["frames"] == 2
    assert [m["type"] for m in out].count("frame") == 2


def test_missing_video_is_one_error(tiny_engine, tmp_path):
    msgs = collect(tiny_engine, tmp_path / "nope.mp4", tiny_job_options())
    assert len(msgs) == 1 and msgs[0]["type"] == "error"
    assert msgs[0]["code"] == "bad_video" and msgs[0]["reason"] == "not_found" and msgs[0]["seq"] == 0


def test_corrupt_video_reports_where_it_stopped(tiny_engine, tmp_path):
    from tests.video.media import noise_frame, write_video

    full = write_video(tmp_path / "clip.mkv", [noise_frame(96, 64, i) for i in range(24)])
    data = full.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) // 2])
    msgs = collect(tiny_engine, cut, tiny_job_options())
    end = msgs[-1]
    assert end["type"] == "error" and end["code"] == "bad_video" and end["reason"] == "corrupt"
    frames = [m["index"] for m in msgs if m["type"] == "frame"]
    assert 0 < len(frames) < 24 and frames == list(range(end["frame"]))


def test_a_frame_too_elongated_for_the_model_is_refused_before_processing(tiny_engine, tmp_path):
    # a frame so elongated that the model crop is empty: told from the video's size, before any frame
    path = tmp_path / "sliver.png"
    PIL.Image.fromarray(np.zeros((2, 600, 3), np.uint8)).save(path)
    msgs = collect(tiny_engine, path, tiny_job_options())
    assert [m["type"] for m in msgs] == ["error"]
    assert msgs[-1]["code"] == "bad_video" and msgs[-1]["reason"] == "too_elongated" and msgs[-1]["frame"] == 0
    assert "600x2" in msgs[-1]["message"] and "crop or pad the video" in msgs[-1]["message"]


def test_detection_threshold_option_reaches_the_model(tiny_engine, tennis_video):
    msgs = collect(tiny_engine, tennis_video, tiny_job_options(end=2, detection_threshold=0.999))
    frames = [m for m in msgs if m["type"] == "frame"]
    assert len(frames) == 2 and all(len(f["people"]["id"]) == 0 for f in frames)
    assert all(f["people"]["body_pose"].shape == (0, 21, 3) for f in frames)
    assert [m["type"] for m in msgs][-1] == "done" and msgs[-1]["people"] == 0


def test_a_video_cut_short_is_reported_in_the_done_summary(tiny_engine, tmp_path):
    from blender_addon.core.scene_plan import ScenePlanner
    from tests.video.media import noise_frame, write_video

    full = write_video(tmp_path / "clip.mkv", [noise_frame(96, 64, i) for i in range(39)])
    data = full.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: int(len(data) * 0.9)])  # too little missing for the reader to call it damaged
    msgs = collect(tiny_engine, cut, tiny_job_options(stride=4))  # every 4th frame: 0, 4, ..., 32
    end = msgs[-1]
    assert end["type"] == "done" and end["frames"] == 9
    [warning] = end["warnings"]
    assert "ended after source frame 32" in warning and "announces 39 frames" in warning
    assert "copy or download the video again" in warning
    assert "warnings" not in collect(tiny_engine, full, tiny_job_options(stride=4))[-1]  # whole: nothing to say
    assert "warnings" not in collect(tiny_engine, cut, tiny_job_options(end=3))[-1]  # the part asked for is there
    assert warning in ScenePlanner().end(end).summary["warnings"]  # what the add-on's panel lists


def test_skip_damaged_decodes_past_a_glitch_and_lists_the_gap(tiny_engine, tmp_path):
    from tests.video.media import noise_frame, write_video

    full = write_video(tmp_path / "clip.mp4", [noise_frame(96, 64, i) for i in range(40)])
    data = bytearray(full.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 4000] = np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes()
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(bytes(data))
    stop = collect(tiny_engine, damaged, tiny_job_options(start=16, end=26))[-1]
    assert stop["type"] == "error" and stop["reason"] == "corrupt" and "--skip-damaged" in stop["message"]
    msgs = collect(tiny_engine, damaged, tiny_job_options(start=16, end=26, skip_damaged=True))
    end = msgs[-1]
    indices = [m["index"] for m in msgs if m["type"] == "frame"]
    assert end["type"] == "done" and indices == [i for i in range(16, 26) if i != 21]
    assert any("skipped unreadable source frames 21 " in w for w in end["warnings"])
