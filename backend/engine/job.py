"""One inference job as a stream of protocol messages — the engine's only entry point for the server
and the `infer` command.

    for msg in iter_job_messages(engine, video, options, job_id, cancel):
        ...  # msg is a protocol message map (numpy arrays inside), seq 0, 1, 2, ...

Stream: `header`, then per processed frame a `frame` (and a `progress` about every 0.5 s), then the
`track` summaries, then exactly one of `done` / `error` / `cancelled`. Video problems end the
stream with an `error` of code 'bad_video' (`frame` = the source frame it stopped before, frames
already sent stay valid; `reason` = the reader's code); any other failure gives 'job_failed'. The
generator itself never raises for video or model errors. `cancel` is checked between frames.
If the video cannot be opened at all, the stream is a single `error` (no header).
"""
from __future__ import annotations

import os

import threading
import time
import traceback
from typing import Any, Iterator

from blender_addon.core import protocol
from backend.engine.options import JobOptions
from backend.engine.scene_cloud import VoxelCloud
from backend.engine.stream import Engine
from backend.engine.tracks import TrackBook

PROGRESS_INTERVAL_S = 0.5
SCENE_POINTS_PER_FRAME = 4096  # points of each frame fed into the accumulated scene cloud (at most)

CONVENTIONS: dict[str, Any] = {
    "world": "OpenCV camera frame of the first processed frame (x right, y down, z forward); units as "
             "predicted (metres); chunks after a state reset are re-based online onto the reset view's pose",
    "camera_axes": "OpenCV (x right, y down, z forward); cam_to_world maps camera coordinates to world",
    "intrinsics": "K in pixels of the original (upright) frame, OpenCV pixel convention: the centre of pixel "
                  "(col, row) is at (col, row), the image spans [-0.5, width-0.5]; fx = f * W/W_resized, "
                  "fy = f * H/H_resized, principal point mapped through the resize and the centre crop "
                  "(exact; the reference's rescale ignores the crop)",
    "smplx": "world-frame SMPL-X parameters: rotations axis-angle, local per joint; global_orient and transl "
             "for SMPL-X rotating about the shaped pelvis rest joint (v = R (v0 - j0) + j0 + transl)",
    "head_xy": "head keypoint of each person in original pixels, OpenCV pixel convention",
    "time": "seconds since the start of the video stream (from the frame's pts); index = source frame index",
    "points": "world xyz, colours of the model input image, confidence conf_self (>= 1); kept where "
              "conf > conf_threshold (strict)",
}


def display_path(path: str | os.PathLike) -> str:
    """A path as UTF-8 text for messages and files. Names the OS gives as undecodable bytes (Python's
    surrogate escapes) show U+FFFD where those bytes were; the file itself is still opened by its
    exact name."""
    return os.fsencode(path).decode("utf-8", "replace")


def utf8_text(text: str) -> str:
    """`text` made encodable as UTF-8 (error texts quoting such a path), like `display_path`."""
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:  # surrogates that stand for no byte
        return text.encode("utf-8", "replace").decode("utf-8")


def skipped_warning(skipped: list[tuple[int, int]]) -> str | None:
    """The damaged stretches a `skip_damaged` job decoded past, as one warning (None if none)."""
    if not skipped:
        return None
    ranges = ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in skipped)
    return (f"skipped unreadable source frames {ranges} (damaged packets, --skip-damaged): the result has a gap "
            "there; re-copy or re-encode the video to recover them")


def truncation_warning(info, next_index: int | None, options: JobOptions) -> str | None:
    """A warning when the video ran out of frames before its container said it would, by too little
    for the reader to call it damaged (a file cut at 90 %, or still being copied), else None.

    `next_index` is the source frame the job would have processed next (its last index + stride)."""
    if info.frame_count is None or next_index is None:
        return None
    expected = info.frame_count if options.end is None else min(info.frame_count, options.end)
    missing = expected - next_index  # frames the stride would have reached after the last one
    if missing < 2 or missing < 0.01 * expected:  # count estimates from the duration are off by a frame or so
        return None
    return (f"the video ended after source frame {next_index - options.stride} but its container announces "
            f"{info.frame_count} frames: about {missing} at the end are missing (a truncated file, or one still "
            "being copied). Every frame present was processed; copy or download the video again if its end matters")


def _video_facts(info, path: str) -> dict[str, Any]:
    frac = info.fps_fraction
    return {
        "path": path, "width": info.width, "height": info.height, "fps": info.fps,
        "fps_fraction": None if frac is None else [frac.numerator, frac.denominator],
        "frame_count": info.frame_count, "frame_count_exact": info.frame_count_exact,
        "rotation": info.rotation, "mirrored": info.mirrored, "duration": info.duration,
        "kind": info.kind, "codec": info.codec,
    }


def _frame_fields(res) -> dict:
    cam = res.camera
    return dict(
        index=int(res.index), time=float(res.time),
        camera={"cam_to_world": cam.cam_to_world, "K": cam.K, "width": cam.width, "height": cam.height,
                "K_model": cam.K_model},
        people=res.people, points=res.points, chunk=int(res.chunk), reset=bool(res.reset),
    )


class MessageNumbering:
    """Stamps a job's messages with its id and consecutive `seq` numbers (0, 1, 2, ...)."""

    def __init__(self, job_id: str):
        self.job_id, self.seq = job_id, 0

    def __call__(self, mtype: protocol.MessageType, **fields) -> dict:
        if isinstance(fields.get("message"), str):  # OS text (a non-UTF-8 file name) must still encode
            fields["message"] = utf8_text(fields["message"])
        m = protocol.make_message(mtype, self.job_id, self.seq, **fields)
        self.seq += 1
        return m

    def frame(self, res) -> dict:
        return self(protocol.MessageType.FRAME, **_frame_fields(res))


def accumulate(res, tracks: TrackBook, cloud: VoxelCloud) -> None:
    """Feed one `FrameResult` to the track book and (an even subset of its points) to the scene cloud."""
    tracks.update(res.index, res.people["id"], res.people["betas"])
    if len(res.points["xyz"]):  # an even subset is plenty for a voxel-averaged cloud
        step = -(-len(res.points["xyz"]) // SCENE_POINTS_PER_FRAME)
        cloud.add(res.points["xyz"][::step], res.points["rgb"][::step])


def track_messages(tracks: TrackBook, msg: MessageNumbering) -> Iterator[dict]:
    """One `track` message per finished track."""
    for t in tracks.summaries():
        yield msg(protocol.MessageType.TRACK, id=int(t.id), first_frame=int(t.first_frame),
                  last_frame=int(t.last_frame), n_frames=int(t.n_frames), betas=t.robust_betas())


def iter_job_messages(engine: Engine, video: str, options: JobOptions, job_id: str,
                      cancel: threading.Event | None = None) -> Iterator[dict]:
    """Run one job and yield its protocol messages; with `options.cleanup` they pass through the causal
    motion clean-up (`blender_addon.core.motion.refine_stream`) as they are produced."""
    messages = _job_messages(engine, video, options, job_id, cancel)
    if options.cleanup is not None:
        from blender_addon.core.motion import refine_stream

        messages = refine_stream(messages, options.cleanup)
    yield from messages


def _job_messages(engine: Engine, video: str, options: JobOptions, job_id: str,
                  cancel: threading.Event | None = None) -> Iterator[dict]:
    """Run one job and yield its raw protocol messages (see the module docstring).

    Args:
        engine: a loaded `Engine`.
        video: path of the video file / image folder (already checked against media roots), or a
            configured `backend.video.live.LiveSpec` (see `backend.engine.live_job`).
        options: validated `JobOptions`.
        job_id: id stamped on every message.
        cancel: set it to stop, within a layer of the current frame (`cancelled` is then the last message).
    """
    from backend.engine.interrupt import JobInterrupted, interruptible
    from backend.video.live import LiveSpec
    from backend.video.preprocess import frame_size_problem
    from backend.video.reader import VideoError, open_source

    if isinstance(video, LiveSpec):  # a configured camera/stream: keep-latest, runs until cancelled
        from backend.engine.live_job import iter_live_job_messages

        yield from iter_live_job_messages(engine, video, options, job_id, cancel)
        return
    msg = MessageNumbering(job_id)
    try:
        source = open_source(video, start=options.start, end=options.end, stride=options.stride,
                             skip_damaged=options.skip_damaged)
    except VideoError as exc:
        yield msg(protocol.MessageType.ERROR, code=protocol.ErrorCode.BAD_VIDEO.value, message=str(exc),
                  frame=None, reason=exc.code)
        return
    except Exception as exc:  # anything else while opening: still a clean end of stream
        yield msg(protocol.MessageType.ERROR, code=protocol.ErrorCode.JOB_FAILED.value,
                  message=f"could not open {video}: {type(exc).__name__}: {exc}", frame=None)
        return
    if (problem := frame_size_problem(source.info.width, source.info.height, options.size)) is not None:
        source.close()
        yield msg(protocol.MessageType.ERROR, code=protocol.ErrorCode.BAD_VIDEO.value, message=problem,
                  frame=options.start, reason="too_elongated")
        return

    tracks = TrackBook()
    cloud = VoxelCloud(options.scene_voxel_size, options.scene_max_points)
    frames_done = 0
    next_index: int | None = options.start  # the source frame the job would process next
    total = source.expected_frames
    started = time.perf_counter()
    last_progress = started
    results = None
    skipped: list[tuple[int, int]] = []  # source frame ranges lost to damaged packets (skip_damaged)
    try:
        yield msg(protocol.MessageType.HEADER, video=_video_facts(source.info, display_path(video)),
                  options=options.to_dict(), model={**engine.describe(), "dtype": options.precision}, smplx=engine.body.header_settings(),
                  conventions=CONVENTIONS, body_model=engine.body.header_arrays())
        terminal: dict | None = None
        results = engine.run(source, options)
        while True:
            if cancel is not None and cancel.is_set():
                terminal = {"type": protocol.MessageType.CANCELLED, "frames": frames_done}
                break
            try:
                with interruptible(cancel):
                    res = next(results)
            except StopIteration:
                break
            except JobInterrupted:  # cancelled in the middle of a frame: that frame is dropped
                terminal = {"type": protocol.MessageType.CANCELLED, "frames": frames_done}
                break
            except VideoError as exc:
                stop = exc.frame_index if exc.frame_index is not None else next_index
                terminal = {"type": protocol.MessageType.ERROR, "code": protocol.ErrorCode.BAD_VIDEO.value,
                            "message": f"{exc} (frames before {stop} are valid)", "frame": stop,
                            "reason": exc.code}
                break
            except Exception as exc:  # model / post-processing failure: report, never raise
                terminal = {"type": protocol.MessageType.ERROR, "code": protocol.ErrorCode.JOB_FAILED.value,
                            "message": f"processing failed at source frame {next_index}: {type(exc).__name__}: "
                                       f"{exc}", "frame": next_index,
                            "detail": traceback.format_exc(limit=8)}
                break
            frames_done += 1
            if next_index is not None and res.index > next_index:  # frames of damaged packets were dropped
                skipped.append((next_index, res.index - 1))
            next_index = res.index + options.stride
            accumulate(res, tracks, cloud)
            yield msg.frame(res)
            now = time.perf_counter()
            if now - last_progress >= PROGRESS_INTERVAL_S:
                last_progress = now
                fps = frames_done / max(now - started, 1e-9)
                eta = None if total is None else max(total - frames_done, 0) / max(fps, 1e-9)
                yield msg(protocol.MessageType.PROGRESS, done=frames_done, total=total, fps=fps, eta_s=eta,
                          stage="inference")
        results.close()  # stops the decoding process now, before the summaries
        yield from track_messages(tracks, msg)
        if terminal is None:
            elapsed = time.perf_counter() - started
            xyz, rgb = cloud.result()
            warnings = [w for w in (truncation_warning(source.info, next_index, options), skipped_warning(skipped))
                        if w]
            yield msg(protocol.MessageType.DONE, frames=frames_done, people=len(tracks), elapsed_s=elapsed,
                      **({"warnings": warnings} if warnings else {}),
                      fps=frames_done / max(elapsed, 1e-9),
                      scene_points={"xyz": xyz, "rgb": rgb, "voxel_size": cloud.voxel_size})
        else:
            mtype = terminal.pop("type")
            yield msg(mtype, **terminal)
    except Exception as exc:  # header / summary failures: still end the stream with an error
        yield msg(protocol.MessageType.ERROR, code=protocol.ErrorCode.JOB_FAILED.value,
                  message=f"job failed: {type(exc).__name__}: {exc}", frame=next_index,
                  detail=traceback.format_exc(limit=8))
    finally:
        if results is not None:
            results.close()  # the decoder (process or thread) must be gone before its source is closed
        source.close()
