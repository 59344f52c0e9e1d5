"""backend.video.reader: real footage, orientation, timing, pixel formats, damaged files and errors."""
from __future__ import annotations

import os
import pickle
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import PIL.Image
import pytest

from backend.video.reader import FrameSource, SourceFrame, VideoError, open_source

from tests.video.media import marker_frame, noise_frame

REPO = Path(__file__).resolve().parents[2]


def collect(source: FrameSource) -> tuple[list[SourceFrame], VideoError | None]:
    """All frames an iteration delivers, and the error that ended it (None if it ended cleanly)."""
    frames: list[SourceFrame] = []
    try:
        for frame in source:
            frames.append(frame)
    except VideoError as exc:
        return frames, exc
    return frames, None


def corner_colours(rgb: np.ndarray, block: int = 12) -> dict[str, np.ndarray]:
    """Mean colour of the four corner blocks."""
    return {
        "top_left": rgb[:block, :block].reshape(-1, 3).mean(0),
        "top_right": rgb[:block, -block:].reshape(-1, 3).mean(0),
        "bottom_left": rgb[-block:, :block].reshape(-1, 3).mean(0),
        "bottom_right": rgb[-block:, -block:].reshape(-1, 3).mean(0),
    }


def red_corner(rgb: np.ndarray) -> str:
    """The one corner that shows the red marker (asserts there is exactly one)."""
    red = [name for name, c in corner_colours(rgb).items() if c[0] > 180 and c[1] < 80 and c[2] < 80]
    assert len(red) == 1, corner_colours(rgb)
    return red[0]


# --------------------------------------------------------------------------------------------------
# real footage


def test_tennis_info_and_first_frames(tennis_video: Path):
    with open_source(tennis_video) as source:
        info = source.info
        assert (info.kind, info.width, info.height) == ("video", 812, 720)
        assert (info.coded_width, info.coded_height, info.rotation, info.mirrored) == (812, 720, 0, False)
        assert info.frame_count == 312 and info.frame_count_exact
        assert info.fps == pytest.approx(29.8, abs=0.05) and isinstance(info.fps_fraction, Fraction)
        assert info.duration == pytest.approx(10.44, abs=0.01)
        assert (info.codec, info.pixel_format, info.bit_depth) == ("h264", "yuv420p", 8)
        assert source.expected_frames == 312
        frames = []
        for frame in source:  # leave early: only the first frames are decoded
            frames.append(frame)
            if len(frames) == 3:
                break
    assert [f.index for f in frames] == [0, 1, 2]
    # this clip has irregular timestamps (90 kHz ticks 0, 3000, 7407): times follow pts, not index/fps
    assert [f.time for f in frames] == pytest.approx([0.0, 3000 / 90000, 7407 / 90000], abs=1e-9)
    rgb = frames[0].rgb
    assert rgb.shape == (720, 812, 3) and rgb.dtype == np.uint8 and rgb.flags.c_contiguous
    assert 20 < rgb.mean() < 235 and rgb.std() > 10  # real picture, not a blank frame


def test_tennis_range_and_stride_keep_source_indices(tennis_video: Path):
    source = open_source(tennis_video, start=20, end=41, stride=10)
    assert source.expected_frames == 3
    frames, error = collect(source)
    assert error is None
    assert [f.index for f in frames] == [20, 30, 40]
    sequential = {f.index: f for f in open_source(tennis_video, end=31)}
    assert len(sequential) == 31
    np.testing.assert_array_equal(frames[1].rgb, sequential[30].rgb)
    assert frames[1].time == sequential[30].time


def test_close_stops_unfinished_iterations(tennis_video: Path):
    with open_source(tennis_video) as source:
        iterator = iter(source)
        assert next(iterator).index == 0
    with pytest.raises(StopIteration):
        next(iterator)


# --------------------------------------------------------------------------------------------------
# orientation


@pytest.mark.parametrize("container", ["mp4", "mkv"])
@pytest.mark.parametrize(
    "rotation, mirror, expected_rotation, expected_corner",
    [
        (90, False, 90, "bottom_left"),  # counter-clockwise quarter turn: top-left goes down
        (-90, False, 270, "top_right"),  # clockwise (typical phone portrait): top-left goes right
        (180, False, 180, "bottom_right"),
        (90, True, 90, "bottom_right"),  # quarter turn, then mirrored left-right
    ],
)
def test_display_matrix_rotation(make_video, container, rotation, mirror, expected_rotation, expected_corner):
    frames = [marker_frame(64, 48) for _ in range(3)]
    path = make_video(f"rot.{container}", frames, rotation=rotation, mirror=mirror)
    source = open_source(path)
    info = source.info
    assert (info.rotation, info.mirrored) == (expected_rotation, mirror)
    assert (info.coded_width, info.coded_height) == (64, 48)
    quarter = expected_rotation in (90, 270)
    assert (info.width, info.height) == ((48, 64) if quarter else (64, 48))
    frames_out, error = collect(source)
    assert error is None and len(frames_out) == 3
    for frame in frames_out:
        assert frame.rgb.shape == (info.height, info.width, 3)
        assert red_corner(frame.rgb) == expected_corner


def test_portrait_without_metadata(make_video):
    path = make_video("portrait.mp4", [marker_frame(48, 80) for _ in range(2)])
    source = open_source(path)
    assert (source.info.width, source.info.height, source.info.rotation) == (48, 80, 0)
    frames, _ = collect(source)
    assert frames[0].rgb.shape == (80, 48, 3) and red_corner(frames[0].rgb) == "top_left"


# --------------------------------------------------------------------------------------------------
# timing and pixel formats


@pytest.mark.parametrize("container", ["mkv", "mp4"])
def test_variable_frame_rate_times_follow_pts(make_video, container):
    pts_ms = [0, 40, 50, 200, 210, 500, 1000, 1033]
    frames = [marker_frame(64, 48, value=20 * i) for i in range(len(pts_ms))]
    path = make_video(f"vfr.{container}", frames, pts_ms=pts_ms)
    out, error = collect(open_source(path))
    assert error is None
    assert [f.index for f in out] == list(range(len(pts_ms)))
    assert [f.time for f in out] == pytest.approx([p / 1000 for p in pts_ms], abs=1e-6)
    assert [f.time for f in open_source(path, start=3, stride=2)] == pytest.approx([0.2, 0.5, 1.033], abs=1e-6)


def test_odd_frame_size(make_video):
    source_frames = [np.full((239, 321, 3), (30 + 40 * i, 120, 200), np.uint8) for i in range(3)]
    path = make_video("odd.mkv", source_frames, codec="ffv1", pix_fmt="yuv420p")
    source = open_source(path)
    assert (source.info.width, source.info.height) == (321, 239)
    out, error = collect(source)
    assert error is None and len(out) == 3
    for src, frame in zip(source_frames, out):
        assert frame.rgb.shape == (239, 321, 3) and frame.rgb.flags.c_contiguous
        assert np.abs(frame.rgb.astype(int) - src.astype(int)).mean() < 3


def test_ten_bit_video_is_converted_to_8_bit(make_video):
    ramp = np.linspace(0, 255, 128)  # horizontal ramps: red up, blue down, green constant
    rgb = np.zeros((64, 128, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = ramp, 90, ramp[::-1]
    path = make_video("ten.mkv", [rgb] * 3, codec="libx264", pix_fmt="yuv420p10le", options={"qp": "0"})
    source = open_source(path)
    assert (source.info.pixel_format, source.info.bit_depth) == ("yuv420p10le", 10)
    out, error = collect(source)
    assert error is None and len(out) == 3
    assert out[0].rgb.dtype == np.uint8
    assert np.abs(out[0].rgb.astype(int) - rgb.astype(int)).mean() < 2.5


# --------------------------------------------------------------------------------------------------
# damaged files


def cut(path: Path, fraction: float) -> Path:
    data = path.read_bytes()
    out = path.with_name("cut_" + path.name)
    out.write_bytes(data[: int(len(data) * fraction)])
    return out


@pytest.mark.parametrize("container, options", [
    ("mkv", None),
    ("mp4", {"movflags": "faststart"}),  # header first: the sample table outlives the data
    ("mp4", None),  # header (moov) last: cutting removes it
])
def test_truncated_file(noisy_clip, container, options):
    full = noisy_clip(f"clip.{container}", n=60, container_options=options)
    truncated = cut(full, 0.5)
    try:
        source = open_source(truncated)
    except VideoError as exc:
        assert exc.code == "not_a_video" and str(truncated) in str(exc)
        assert options is None and container == "mp4"
        return
    frames, error = collect(source)
    assert error is not None and error.code == "corrupt", error
    assert 0 < error.frame_index < 60
    assert [f.index for f in frames] == list(range(error.frame_index))  # everything before it arrived
    assert str(truncated) in str(error)


def test_garbage_in_the_middle(noisy_clip):
    full = noisy_clip("clip.mp4", n=60, container_options={"movflags": "faststart"})
    data = bytearray(full.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 4000] = np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes()
    damaged = full.with_name("damaged.mp4")
    damaged.write_bytes(bytes(data))
    frames, error = collect(open_source(damaged))
    assert error is not None and error.code == "corrupt"
    assert 0 < error.frame_index < 60
    assert [f.index for f in frames] == list(range(error.frame_index))


def test_zero_frame_video(tmp_path: Path):
    import av

    path = tmp_path / "empty.avi"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        container.start_encoding()  # header with a video stream, then no packets
    with pytest.raises(VideoError) as info:
        open_source(path)
    assert info.value.code == "no_frames"


def test_text_file_renamed_mp4(tmp_path: Path):
    path = tmp_path / "notes.mp4"
    path.write_text("these are my notes, not a video\n" * 50)
    with pytest.raises(VideoError) as info:
        open_source(path)
    assert info.value.code == "not_a_video" and "notes.mp4" in str(info.value)


def test_audio_only_file(tmp_path: Path):
    import av

    path = tmp_path / "sound.mka"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        for packet in [*stream.encode(frame), *stream.encode()]:
            container.mux(packet)
    with pytest.raises(VideoError) as info:
        open_source(path)
    assert info.value.code == "no_video_stream"


def test_frame_above_max_pixels(make_video, tmp_path: Path):
    path = make_video("big.mp4", [marker_frame(64, 48)] * 2)
    with pytest.raises(VideoError) as info:
        open_source(path, max_pixels=64 * 48 - 1)
    assert info.value.code == "too_large" and "64x48" in str(info.value)
    folder = tmp_path / "imgs"
    folder.mkdir()
    PIL.Image.fromarray(marker_frame(64, 48)).save(folder / "0.png")
    with pytest.raises(VideoError) as info:
        open_source(folder, max_pixels=1000)
    assert info.value.code == "too_large"


# --------------------------------------------------------------------------------------------------
# image folders


def test_image_folder_sorted_with_exif_rotation(tmp_path: Path):
    folder = tmp_path / "shots"
    folder.mkdir()
    a, b = noise_frame(64, 48, 1), noise_frame(64, 48, 2)
    PIL.Image.fromarray(b).save(folder / "frame_b.png")
    PIL.Image.fromarray(a).save(folder / "frame_a.png")
    exif = PIL.Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown turned 90 degrees clockwise
    PIL.Image.fromarray(marker_frame(64, 48)).save(folder / "frame_c.jpg", quality=95, exif=exif)
    (folder / "notes.txt").write_text("not an image")
    PIL.Image.fromarray(a).save(folder / ".hidden.png")

    source = open_source(folder, image_fps=10)
    info = source.info
    assert (info.kind, info.frame_count, info.frame_count_exact, info.fps) == ("images", 3, True, 10.0)
    frames, error = collect(source)
    assert error is None
    assert [f.index for f in frames] == [0, 1, 2]
    assert [f.time for f in frames] == pytest.approx([0.0, 0.1, 0.2])
    np.testing.assert_array_equal(frames[0].rgb, a)
    np.testing.assert_array_equal(frames[1].rgb, b)
    assert frames[2].rgb.shape == (64, 48, 3)  # upright portrait
    assert red_corner(frames[2].rgb) == "top_right"

    assert [f.index for f in open_source(folder, start=1, stride=2)] == [1]
    single = open_source(folder / "frame_c.jpg")
    assert (single.info.rotation, single.info.width, single.info.height) == (270, 48, 64)


def test_missing_path(tmp_path: Path):
    with pytest.raises(VideoError) as info:
        open_source(tmp_path / "nope.mp4")
    assert info.value.code == "not_found" and "nope.mp4" in str(info.value)


def test_folder_without_images(tmp_path: Path):
    (tmp_path / "readme.txt").write_text("nothing here")
    with pytest.raises(VideoError) as info:
        open_source(tmp_path)
    assert info.value.code == "no_frames"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
@pytest.mark.timeout(20)  # opening the pipe would block: fail fast instead of hanging the suite
def test_not_a_regular_file(tmp_path: Path):
    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)
    with pytest.raises(VideoError) as info:
        open_source(fifo)
    assert info.value.code == "not_a_file"


# --------------------------------------------------------------------------------------------------
# ranges


@pytest.mark.parametrize("kwargs", [dict(stride=0), dict(start=-1), dict(start=5, end=5), dict(start=400),
                                    dict(start=1.5), dict(end="10")])
def test_bad_range_at_open(tennis_video: Path, kwargs):
    with pytest.raises(VideoError) as info:
        open_source(tennis_video, **kwargs)
    assert info.value.code == "bad_range"


def test_start_past_the_end_of_an_uncounted_stream(make_video):
    path = make_video("short.mkv", [marker_frame(64, 48)] * 4)  # Matroska stores no frame count
    source = open_source(path, start=50)
    frames, error = collect(source)
    assert frames == [] and error is not None and error.code == "bad_range"


def test_reader_does_not_import_torch():
    code = ("import sys; sys.modules['torch'] = None; import backend.video.reader as r; "
            "assert r.open_source")
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=60)


def test_frame_source_repr_and_expected_count(tennis_video: Path):
    source = open_source(tennis_video, start=np.int64(300), stride=5)  # numpy integers are fine
    assert source.expected_frames == 3
    assert "tennis.mp4" in repr(source)


def test_decoder_threads_change_speed_not_pixels(tennis_video: Path):
    with open_source(tennis_video, end=12) as source:
        auto = list(source)
        single = list(source.with_decode_threads(1))
    assert source.decode_threads == 0  # the copy carries the setting, the original is untouched
    assert [f.index for f in single] == [f.index for f in auto] == list(range(12))
    assert all(np.array_equal(a.rgb, b.rgb) and a.time == b.time for a, b in zip(auto, single))
    for bad in (-1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="decode threads"):
            source.with_decode_threads(bad)


def test_a_source_pickles_as_its_description(tennis_video: Path, tmp_path: Path):
    # the decoding process receives the source this way; a live iteration must not travel along
    source = open_source(tennis_video, start=2, end=8, stride=3).with_decode_threads(1)
    live = iter(source)
    next(live)
    copy = pickle.loads(pickle.dumps(source))
    assert (copy.start, copy.end, copy.stride, copy.decode_threads, copy.info) == (2, 8, 3, 1, source.info)
    assert [f.index for f in copy] == [2, 5]
    source.close()
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(2):
        PIL.Image.fromarray(np.full((20, 30, 3), 60 * i, np.uint8)).save(folder / f"{i}.png")
    images = pickle.loads(pickle.dumps(open_source(folder)))
    assert [int(f.rgb[0, 0, 0]) for f in images] == [0, 60]
