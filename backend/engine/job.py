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


import threading
import time
import traceback
from typing import Iterator

from blender_addon.core import protocol
from backend.engine.messages import (
    CONVENTIONS, PROGRESS_INTERVAL_S, MessageNumbering, accumulate, display_path, track_messages, video_facts,
)
from backend.engine.options import JobOptions
from backend.engine.scene_cloud import VoxelCloud
from backend.engine.stream import Engine
from backend.engine.tracks import TrackBook

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
        yield msg(protocol.MessageType.HEADER, video=video_facts(source.info, display_path(video)),
                  options=options.to_dict(), model={**engine.describe(), "dtype": engine.job_precision(options)}, smplx=engine.body.header_settings(),
                  conventions=CONVENTIONS, body_model=engine.body.header_arrays())
        terminal: dict | None = None
        results = engine.run(source, options, cancel=cancel)  # stops a pipelined (CUDA) step mid-frame
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
