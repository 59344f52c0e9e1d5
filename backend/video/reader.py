"""Streaming frame source: a video file (decoded with PyAV) or a folder of images.

Frames are decoded one at a time and handed out as upright uint8 RGB arrays; nothing keeps more than
the decoder's own look-ahead in memory. This module deliberately does not import torch.

Conventions (the same in the result files and the add-on):

* ``SourceFrame.index`` is the frame's position in the source, counting **every** decoded frame in
  presentation order from 0, also when a ``start``/``stride`` skips it. For an image folder it is
  the position in the sorted file list.
* ``SourceFrame.time`` is seconds since the start of the video stream: ``(pts - start) * time_base``
  with ``start`` the stream's start time (the first frame of ordinary files has time 0). Variable
  frame rate files keep their real timestamps. Without a pts it falls back to ``index / fps``. Image
  folders use ``index / image_fps``.
* Orientation: the container's display matrix (what phones write for portrait video) is applied, so
  ``rgb`` is what a player shows. `VideoInfo.rotation` is the counter-clockwise angle that was applied
  (0, 90, 180 or 270) and ``mirrored`` says whether a horizontal flip followed it. For images the
  EXIF orientation is applied like PIL's ``ImageOps.exif_transpose`` (what the reference does).
* Colour: PyAV/libswscale converts every pixel format (8/10/12-bit, 4:2:0/4:2:2/4:4:4, full or
  limited range, tagged colour matrix) to 8-bit RGB. This is not bit-identical to OpenCV's
  conversion used by the reference (which also ignores the colour matrix tag).
* Sample aspect ratio is not corrected (like the reference); `VideoInfo.sample_aspect_ratio` reports it.

Errors are `VideoError` with a machine-readable ``code``:
``not_found``, ``not_a_file``, ``unreadable`` (permission), ``not_a_video``, ``no_video_stream``,
``no_frames``, ``corrupt`` (with ``frame_index``: frames before it were delivered), ``too_large``,
``bad_range``; live sources (`backend.video.live`) add ``unreachable``, ``stream_lost`` and
``cancelled`` (stopped while waiting for the stream to start).

Seeking is not used: reaching ``start`` decodes (but does not convert) all earlier frames, which keeps
indices exact for any codec and container.
"""
from __future__ import annotations

import copy
import logging
import operator
import os
import weakref
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator, Literal

import numpy as np

import av
import av.error
import av.sidedata.sidedata
import PIL.Image
import PIL.ImageOps

from blender_addon.core.frame_range import expected_frames

log = logging.getLogger(__name__)

DEFAULT_MAX_PIXELS = 50_000_000  # above 8K UHD (33 Mpx); one RGB frame of this size is 150 MB
DEFAULT_IMAGE_FPS = 30.0
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})

VideoErrorCode = Literal["not_found", "not_a_file", "unreadable", "not_a_video", "no_video_stream", "no_frames",
                         "corrupt", "too_large", "bad_range", "unreachable", "stream_lost", "cancelled"]


class VideoError(Exception):
    """A source cannot be read (or stopped being readable).

    Attributes:
        code: machine-readable reason (see the module docstring).
        path: the file or folder concerned.
        frame_index: for ``corrupt``: source index of the first frame that could not be decoded;
            frames with smaller indices were already delivered. None otherwise.
    """

    def __init__(self, code: VideoErrorCode, message: str, *, path: str | os.PathLike | None = None,
                 frame_index: int | None = None):
        super().__init__(message)
        self.code = code
        self.path = None if path is None else str(path)
        self.frame_index = frame_index


@dataclass(frozen=True)
class VideoInfo:
    """What is known about a source before decoding it all.

    Attributes:
        path: the file or folder.
        kind: 'video', 'images' or 'live' (a camera or stream: no frame count, no duration).
        width, height: size of the frames handed out (after rotation), pixels. For image folders:
            of the first image (others may differ).
        coded_width, coded_height: size as stored, before rotation.
        rotation: counter-clockwise degrees applied to make frames upright (0, 90, 180, 270).
        mirrored: a horizontal flip was applied after the rotation (display matrix with a mirror).
        fps: average frame rate (frames per second), None if unknown.
        fps_fraction: the same as an exact fraction when the container gives one.
        frame_count: number of frames in the source (exact or estimated, see below), None if unknown.
        frame_count_exact: True when the container (or the folder listing) states the count.
        duration: seconds, None if unknown.
        codec: decoder name ('h264', 'hevc', ...) or the image format of the first image ('JPEG', ...).
        pixel_format: FFmpeg pixel format ('yuv420p10le', ...) or the PIL mode of the first image.
        bit_depth: bits per colour sample of the stored format (8, 10, 12, 16).
        sample_aspect_ratio: pixel aspect ratio (1 for square pixels); not corrected.
    """

    path: str
    kind: Literal["video", "images", "live"]
    width: int
    height: int
    coded_width: int
    coded_height: int
    rotation: int
    mirrored: bool
    fps: float | None
    fps_fraction: Fraction | None
    frame_count: int | None
    frame_count_exact: bool
    duration: float | None
    codec: str
    pixel_format: str
    bit_depth: int
    sample_aspect_ratio: Fraction | None = None


@dataclass(frozen=True)
class SourceFrame:
    """One upright frame.

    Attributes:
        index: source frame index (every decoded frame counts, also the skipped ones).
        time: seconds since the start of the stream (from pts; see the module docstring).
        rgb: uint8 [H, W, 3] RGB, C-contiguous, upright.
    """

    index: int
    time: float
    rgb: np.ndarray


# --------------------------------------------------------------------------------------------------
# orientation


def _orientation_from_display_matrix(raw: bytes) -> tuple[int, bool] | None:
    """(counter-clockwise degrees, mirrored) from FFmpeg's 3x3 int32 16.16 display matrix.

    The matrix maps stored (x, y) to displayed (x', y') = (a x + c y, b x + d y) with y pointing down.
    Only 90-degree multiples, optionally mirrored, are representable; others return None.
    """
    m = np.frombuffer(raw[:36], dtype=np.int32).astype(np.float64) / 65536.0
    a, b, c, d = m[0], m[1], m[3], m[4]
    norm = max(abs(a), abs(b), abs(c), abs(d))
    if norm == 0:
        return None
    a, b, c, d = (round(v / norm) for v in (a, b, c, d))
    # undo the mirror (applied after the rotation) to read the rotation off the remaining matrix
    mirrored = a * d - b * c < 0
    if mirrored:
        a, c = -a, -c
    if (a, b, c, d) == (1, 0, 0, 1):
        return 0, mirrored
    if (a, b, c, d) == (0, -1, 1, 0):
        return 90, mirrored
    if (a, b, c, d) == (-1, 0, 0, -1):
        return 180, mirrored
    if (a, b, c, d) == (0, 1, -1, 0):
        return 270, mirrored
    return None


def _frame_orientation(frame: av.VideoFrame, stream: av.video.stream.VideoStream) -> tuple[int, bool]:
    """Orientation of a decoded frame: display matrix side data, else the legacy ``rotate`` tag."""
    # look the entry up by type: iterating the container yields SideData objects before PyAV 18.1.1
    # and their types from 18.1.1 on (a Mapping's keys); `get` means the same in every version >= 12
    display_matrix = frame.side_data.get(av.sidedata.sidedata.Type.DISPLAYMATRIX)
    if display_matrix is not None:
        found = _orientation_from_display_matrix(bytes(display_matrix))
        if found is not None:
            return found
        # arbitrary angle: snap to the nearest quarter turn (players would letterbox it)
        log.warning("display matrix rotates by %s degrees; using the nearest quarter turn", frame.rotation)
        return int(round(frame.rotation / 90.0)) % 4 * 90, False
    rotate_tag = stream.metadata.get("rotate")
    if rotate_tag:
        try:  # legacy tag: clockwise degrees
            return int(round(-float(rotate_tag) / 90.0)) % 4 * 90, False
        except ValueError:
            pass
    return 0, False


def _upright(rgb: np.ndarray, rotation: int, mirrored: bool) -> np.ndarray:
    """Rotate [H, W, 3] counter-clockwise by ``rotation`` degrees, then mirror left-right if asked."""
    if rotation:
        rgb = np.rot90(rgb, k=rotation // 90)
    if mirrored:
        rgb = rgb[:, ::-1]
    return np.ascontiguousarray(rgb)  # one copy at most; also drops FFmpeg's row padding


# --------------------------------------------------------------------------------------------------
# public entry point


def open_source(
    path: str | os.PathLike,
    *,
    start: int = 0,
    end: int | None = None,
    stride: int = 1,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    image_fps: float = DEFAULT_IMAGE_FPS,
    skip_damaged: bool = False,
) -> "FrameSource":
    """Open a video file, a folder of images, or a single image, and read its `VideoInfo`.

    The first frame is decoded once here (to learn the orientation and to fail early on files with
    no frames); iterating the returned `FrameSource` decodes from the beginning again.

    Args:
        path: video file, image file, or folder of images (sorted by file name, like the reference).
            Cameras and streams open as `backend.video.live.LiveSource` (keep-latest reader).
        start: first source frame index to deliver (inclusive).
        end: source frame index to stop at (exclusive); None = to the end. Decoding stops there.
        stride: deliver every ``stride``-th frame from ``start`` (indices start, start+stride, ...).
        max_pixels: frames with more pixels (width * height) are refused with ``too_large``.
        image_fps: frame rate assigned to image folders (their times are ``index / image_fps``).
        skip_damaged: video files: drop packets that fail to decode and go on (indices then follow
            the timestamps, so the lost frames leave a gap) instead of raising ``corrupt``.
    Raises:
        VideoError: any problem with the path, the file, the range, or the first frame.
    """
    path = Path(path)
    start, end, stride = _check_range(path, start, end, stride)
    if not os.path.lexists(path):
        raise VideoError("not_found", f"{path}: no such file or folder", path=path)
    if not path.exists():
        raise VideoError("not_found", f"{path}: broken symbolic link", path=path)
    if path.is_dir():
        source: FrameSource = _ImageFolderSource(path, _list_images(path), start, end, stride, max_pixels,
                                                 image_fps)
    elif not path.is_file():
        raise VideoError("not_a_file", f"{path}: not a regular file or folder", path=path)
    elif not os.access(path, os.R_OK):
        raise VideoError("unreadable", f"{path}: permission denied", path=path)
    elif path.suffix.lower() in IMAGE_EXTENSIONS:
        source = _ImageFolderSource(path, [path], start, end, stride, max_pixels, image_fps)
    else:
        source = _VideoFileSource(path, start, end, stride, max_pixels)
    count = source.info.frame_count
    if source.info.frame_count_exact and count is not None and start >= count:
        raise VideoError("bad_range", f"{path}: start={start} is past the last frame ({count} frames)", path=path)
    source.skip_damaged = skip_damaged
    return source


def _check_range(path: Path, start, end, stride) -> tuple[int, int | None, int]:
    """Validate the range arguments (any integer type) and return them as Python ints."""
    def as_int(name: str, value) -> int:
        if isinstance(value, bool):
            raise VideoError("bad_range", f"{path}: {name} must be an integer, got {value!r}", path=path)
        try:
            return operator.index(value)
        except TypeError:
            raise VideoError("bad_range", f"{path}: {name} must be an integer, got {value!r}", path=path) from None

    start, stride = as_int("start", start), as_int("stride", stride)
    end = None if end is None else as_int("end", end)
    if start < 0:
        raise VideoError("bad_range", f"{path}: start must be >= 0, got {start}", path=path)
    if stride < 1:
        raise VideoError("bad_range", f"{path}: stride must be >= 1, got {stride}", path=path)
    if end is not None and end <= start:
        raise VideoError("bad_range", f"{path}: end ({end}) must be greater than start ({start})", path=path)
    return start, end, stride


class FrameSource:
    """Iterable over the selected `SourceFrame`s of one source; re-iterable (each pass decodes anew).

    Use as a context manager, or call `close`, to release decoders of unfinished iterations.
    A source pickles as its description (path, range, settings), so another process can iterate a
    copy of it; live iterations stay with the original.

    Attributes:
        decode_threads: FFmpeg decoder threads for video files: 0 = FFmpeg's choice (frame + slice
            threads, one per core), n >= 1 = exactly n. A decoder that shares the CPU with the model
            should use 1: extra decoder threads pre-empt the model's thread.
    """

    def __init__(self, path: Path, info: VideoInfo, start: int, end: int | None, stride: int):
        self.path = path
        self.info = info
        self.start = start
        self.end = end
        self.stride = stride
        self.decode_threads = 0
        self.skip_damaged = False  # see open_source
        self._live: weakref.WeakSet = weakref.WeakSet()

    def with_decode_threads(self, threads: int) -> "FrameSource":
        """A copy of this source (no live iterations) that decodes with `threads` decoder threads."""
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
            raise ValueError(f"decode threads must be an integer >= 0, got {threads!r}")
        clone = copy.copy(self)
        clone._live = weakref.WeakSet()
        clone.decode_threads = threads
        return clone

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("_live", None)  # generators do not travel
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._live = weakref.WeakSet()

    @property
    def expected_frames(self) -> int | None:
        """How many frames an iteration should deliver (from `VideoInfo.frame_count`; may be an
        estimate, see ``info.frame_count_exact``). None when the source length is unknown."""
        return expected_frames(self.info.frame_count, self.start, self.end, self.stride)

    def __iter__(self) -> Iterator[SourceFrame]:
        gen = self._frames()
        self._live.add(gen)
        return gen

    def _frames(self) -> Iterator[SourceFrame]:
        raise NotImplementedError

    def _selected(self, index: int) -> bool:
        return index >= self.start and (index - self.start) % self.stride == 0

    def close(self) -> None:
        """Stop every unfinished iteration and free its decoder (idempotent)."""
        for gen in list(self._live):
            gen.close()

    def __enter__(self) -> "FrameSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        i = self.info
        return (f"<{type(self).__name__} {i.path!r} {i.width}x{i.height} frames={i.frame_count} "
                f"range=[{self.start}:{self.end}:{self.stride}]>")


# --------------------------------------------------------------------------------------------------
# video files


def _open_container(path: Path):
    """av.open with errors translated; returns (container, video stream)."""
    try:
        container = av.open(str(path), mode="r")
    except av.error.EOFError:
        raise VideoError("no_frames", f"{path}: the file ends before any video frame (empty or unfinished "
                                      f"recording)", path=path) from None
    except av.error.PermissionError:
        raise VideoError("unreadable", f"{path}: permission denied", path=path) from None
    except av.error.FFmpegError as exc:
        raise VideoError("not_a_video", f"{path}: not a readable video (unknown format, or a damaged/missing "
                                        f"header as in an unfinished recording): {exc.strerror}",
                         path=path) from None
    try:
        streams = [s for s in container.streams.video
                   if not (s.disposition & av.stream.Disposition.attached_pic)]  # skip cover art
        if not streams:
            kinds = ", ".join(sorted({s.type for s in container.streams})) or "none"
            raise VideoError("no_video_stream", f"{path}: contains no video stream (streams: {kinds})", path=path)
        stream = streams[0]
        stream.thread_type = "AUTO"  # frame + slice threads; FFmpeg picks the count
        return container, stream
    except BaseException:
        container.close()
        raise


def _check_pixels(path: Path, width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise VideoError("too_large", f"{path}: frame size {width}x{height} ({width * height / 1e6:.1f} Mpx) "
                                      f"exceeds the limit of {max_pixels / 1e6:.1f} Mpx", path=path)


def _decoded_frames(container, stream, skip_damaged: bool = False) -> Iterator[av.VideoFrame]:
    """Frames of one stream in presentation order; FFmpeg errors propagate, except that with
    `skip_damaged` a packet that fails to decode is dropped and decoding goes on with the next."""
    for packet in container.demux(stream):
        if not skip_damaged:
            yield from packet.decode()  # the final empty packet flushes the decoder
            continue
        try:
            decoded = packet.decode()
        except av.error.FFmpegError as exc:
            log.info("skipping a damaged packet at pts %s: %s", packet.pts, exc.strerror)
            continue
        yield from decoded


def _stream_duration(stream) -> float | None:
    """The video stream's own duration in seconds (not the container's, which may include audio)."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    tag = stream.metadata.get("DURATION")  # Matroska writes the per-stream duration as a tag
    if tag:
        try:
            h, m, s = tag.split(":")
            return int(h) * 3600 + int(m) * 60 + float(s)
        except ValueError:
            pass
    return None


class _VideoFileSource(FrameSource):
    def __init__(self, path: Path, start: int, end: int | None, stride: int, max_pixels: int):
        self.max_pixels = max_pixels
        container, stream = _open_container(path)
        try:
            cc = stream.codec_context
            if cc.width and cc.height:
                _check_pixels(path, cc.width, cc.height, max_pixels)  # before decoding anything
            try:
                first = next(_decoded_frames(container, stream), None)
            except av.error.FFmpegError as exc:
                raise VideoError("corrupt", f"{path}: cannot decode frame 0: {exc.strerror}", path=path,
                                 frame_index=0) from None
            if first is None:
                raise VideoError("no_frames", f"{path}: the video stream has no frames", path=path)
            _check_pixels(path, first.width, first.height, max_pixels)
            self._rotation, self._mirrored = _frame_orientation(first, stream)
            self._start_pts = stream.start_time if stream.start_time is not None else first.pts
            self._time_base = stream.time_base
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            fps_fraction = Fraction(rate) if rate else None
            fps = float(fps_fraction) if fps_fraction else None
            self._stream_duration = _stream_duration(stream)
            duration = self._stream_duration
            if duration is None and container.duration is not None:  # all streams; may include audio
                duration = container.duration / av.time_base
            if stream.frames > 0:
                frame_count, exact = stream.frames, True
            elif duration is not None and fps:
                frame_count, exact = max(1, int(round(duration * fps))), False
            else:
                frame_count, exact = None, False
            fmt = first.format
            bit_depth = max(c.bits for c in fmt.components) if fmt.components else 8
            swap = self._rotation in (90, 270)
            info = VideoInfo(
                path=str(path), kind="video",
                width=first.height if swap else first.width, height=first.width if swap else first.height,
                coded_width=first.width, coded_height=first.height,
                rotation=self._rotation, mirrored=self._mirrored,
                fps=fps, fps_fraction=fps_fraction,
                frame_count=frame_count, frame_count_exact=exact, duration=duration,
                codec=cc.name, pixel_format=fmt.name, bit_depth=bit_depth,
                sample_aspect_ratio=stream.sample_aspect_ratio,
            )
        finally:
            container.close()
        super().__init__(path, info, start, end, stride)

    def _time(self, frame: av.VideoFrame, index: int) -> float:
        if frame.pts is not None and self._time_base is not None:
            return float((frame.pts - (self._start_pts or 0)) * self._time_base)
        return index / self.info.fps if self.info.fps else float(index)

    def _frames(self) -> Iterator[SourceFrame]:
        path = self.path
        container, stream = _open_container(path)
        if self.decode_threads:
            stream.thread_type = "SLICE" if self.decode_threads == 1 else "AUTO"
            stream.codec_context.thread_count = self.decode_threads
        index = -1
        last_time = None
        skip = getattr(self, "skip_damaged", False)
        try:
            frames = _decoded_frames(container, stream, skip)
            while True:
                try:
                    frame = next(frames, None)
                except av.error.FFmpegError as exc:
                    raise VideoError("corrupt", f"{path}: decoding failed at frame {index + 1}: {exc.strerror}; "
                                     "--skip-damaged decodes on past unreadable parts",
                                     path=path, frame_index=index + 1) from None
                if frame is None:
                    break
                if skip and self.info.fps and frame.pts is not None:  # frames of dropped packets leave a gap
                    index = max(index + 1, int(round(self._time(frame, index + 1) * self.info.fps)))
                else:
                    index += 1
                last_time = self._time(frame, index)
                if self._selected(index):
                    _check_pixels(path, frame.width, frame.height, self.max_pixels)
                    rgb = _upright(frame.to_ndarray(format="rgb24"), self._rotation, self._mirrored)
                    yield SourceFrame(index=index, time=last_time, rgb=rgb)
                # unselected frames are decoded (later frames may depend on them) but never converted
                if self.end is not None and index + 1 >= self.end:
                    break  # do not decode past the range
        finally:
            container.close()
        self._check_complete(index)
        self._check_duration(index + 1, last_time)

    def _check_complete(self, last_index: int) -> None:
        """After the last frame: catch a start past the end and streams cut short (truncated files)."""
        decoded = last_index + 1
        if decoded <= self.start and (self.end is None or self.end > decoded):
            raise VideoError("bad_range", f"{self.path}: start={self.start} is past the last frame "
                                          f"({decoded} frames)", path=self.path)
        if self.end is not None and decoded >= self.end:
            return
        info = self.info
        if info.frame_count is None:
            return
        # tolerate a few frames: edit lists and rounding make container counts slightly optimistic
        missing = info.frame_count - decoded
        if missing <= max(2, 0.02 * info.frame_count):
            return
        if info.frame_count_exact:  # mp4/mov: the sample table lists every frame
            raise VideoError("corrupt", f"{self.path}: the stream ends at frame {decoded} but the container "
                                        f"lists {info.frame_count} frames (truncated file?)",
                             path=self.path, frame_index=decoded)

    def _check_duration(self, decoded: int, last_time: float | None) -> None:
        """Streams without a frame count (Matroska & co): compare the end time with the stream's own
        stated duration; only a clear shortfall counts (variable frame rate makes counts unreliable)."""
        if self._stream_duration is None or last_time is None or self.info.frame_count_exact:
            return
        if self.end is not None and decoded >= self.end:
            return
        interval = 1.0 / self.info.fps if self.info.fps else 0.0
        gap = self._stream_duration - (last_time + interval)
        if gap > max(0.5, 5 * interval):
            raise VideoError("corrupt", f"{self.path}: the stream ends at frame {decoded} ({last_time:.2f} s), "
                                        f"{gap:.1f} s before its stated duration of {self._stream_duration:.1f} s "
                                        f"(truncated file?)", path=self.path, frame_index=decoded)


# --------------------------------------------------------------------------------------------------
# image folders


def _list_images(folder: Path) -> list[Path]:
    try:
        names = sorted(os.listdir(folder))  # plain name order, like the reference
    except PermissionError:
        raise VideoError("unreadable", f"{folder}: permission denied", path=folder) from None
    images = [folder / n for n in names
              if not n.startswith(".") and Path(n).suffix.lower() in IMAGE_EXTENSIONS and (folder / n).is_file()]
    if not images:
        raise VideoError("no_frames", f"{folder}: the folder contains no images "
                                      f"({', '.join(sorted(IMAGE_EXTENSIONS))})", path=folder)
    return images


@dataclass(frozen=True)
class _ImageMeta:
    format: str
    mode: str
    width: int  # as stored, before the EXIF orientation
    height: int
    orientation: int  # EXIF tag 0x0112 (1 = upright)


def _load_image(path: Path, index: int, max_pixels: int) -> tuple[np.ndarray, _ImageMeta]:
    """Upright uint8 [H, W, 3] RGB of one image (EXIF transpose, then convert('RGB')) and its metadata."""
    try:
        with PIL.Image.open(path) as im:
            _check_pixels(path, im.width, im.height, max_pixels)  # header only, nothing decoded yet
            meta = _ImageMeta(im.format or "unknown", im.mode, im.width, im.height,
                              int(im.getexif().get(0x0112, 1) or 1))
            upright = PIL.ImageOps.exif_transpose(im)
            return np.array(upright.convert("RGB")), meta
    except VideoError:
        raise
    except PIL.Image.DecompressionBombError as exc:
        raise VideoError("too_large", f"{path}: {exc}", path=path) from None
    except PermissionError:
        raise VideoError("unreadable", f"{path}: permission denied", path=path, frame_index=index) from None
    except (OSError, ValueError, SyntaxError) as exc:  # PIL's UnidentifiedImageError is an OSError
        raise VideoError("corrupt", f"{path}: cannot read image {index}: {exc}", path=path,
                         frame_index=index) from None


class _ImageFolderSource(FrameSource):
    def __init__(self, path: Path, files: list[Path], start: int, end: int | None, stride: int,
                 max_pixels: int, image_fps: float):
        self.files = files
        self.max_pixels = max_pixels
        first, meta = _load_image(files[0], 0, max_pixels)
        rotation, mirrored = _EXIF_ORIENTATION.get(meta.orientation, (0, False))
        info = VideoInfo(
            path=str(path), kind="images",
            width=first.shape[1], height=first.shape[0],
            coded_width=meta.width, coded_height=meta.height,
            rotation=rotation, mirrored=mirrored,
            fps=float(image_fps), fps_fraction=Fraction(image_fps).limit_denominator(1001),
            frame_count=len(files), frame_count_exact=True, duration=len(files) / image_fps,
            codec=meta.format, pixel_format=meta.mode, bit_depth=_PIL_MODE_BITS.get(meta.mode, 8),
            sample_aspect_ratio=Fraction(1),
        )
        super().__init__(path, info, start, end, stride)

    def _frames(self) -> Iterator[SourceFrame]:
        stop = len(self.files) if self.end is None else min(self.end, len(self.files))
        for index in range(self.start, stop, self.stride):
            rgb, _ = _load_image(self.files[index], index, self.max_pixels)
            yield SourceFrame(index=index, time=index / self.info.fps, rgb=rgb)


# EXIF orientation tag -> (counter-clockwise degrees, mirrored after rotating), as exif_transpose applies it
_EXIF_ORIENTATION: dict[int, tuple[int, bool]] = {
    1: (0, False), 2: (0, True), 3: (180, False), 4: (180, True),
    5: (270, True), 6: (270, False), 7: (90, True), 8: (90, False),
}
_PIL_MODE_BITS = {"1": 1, "I;16": 16, "I;16B": 16, "I;16L": 16, "I": 32, "F": 32, "RGB;16": 16}


__all__ = ["DEFAULT_MAX_PIXELS", "FrameSource", "SourceFrame", "VideoError", "VideoInfo", "open_source"]
