"""A live job: a `LiveSource` through the engine until cancelled or the stream is gone for good.

Same message stream as `backend.engine.job.iter_job_messages` (header, frames, tracks, one terminal
message), with these differences:

* the header's ``video`` has ``kind`` 'live', ``path`` 'live:NAME' (never the URL), ``source`` (the
  URL scheme) and no frame count or duration;
* each processed frame is the newest one decoded when the model became free (keep-latest), so
  ``frame.index`` has gaps: the frames dropped in between;
* `progress` messages (about every 0.5 s, also while no frame arrives) carry ``stage`` 'live',
  'connecting' or 'reconnecting', plus ``decoded``, ``dropped``, ``reconnects``, ``latency_s`` (median
  seconds from a frame leaving the decoder to its result message, over the last interval) and ``status`` (one
  line for people, e.g. why the stream is being re-opened);
* the job ends with `cancelled` when asked (checked between model steps and every 0.25 s while
  waiting for a frame, also before the stream first arrives; the header comes with the first frame), with `done` (``end_reason`` 'stream_lost') when the stream stays away longer
  than the source's reconnect window, and with `error` 'bad_video' when it cannot be reached at all.
"""
from __future__ import annotations

import statistics
import threading
import time
import traceback
from typing import Iterator

from blender_addon.core import protocol
from backend.engine.options import JobOptions
from backend.engine.scene_cloud import VoxelCloud
from backend.engine.tracks import TrackBook


_END = object()


class _Feed:
    """The engine's source during a live job: hands out exactly the frame the job loop put in.

    `Engine.run` pulls one frame per result (live sources are never read ahead, see
    `backend.video.ready_frames`), so the job loop stays in control between steps and can report
    progress or stop while the stream is silent."""

    is_live = True

    def __init__(self):
        self.frame = None

    def __iter__(self):
        while True:
            frame, self.frame = self.frame, None
            yield frame


def iter_live_job_messages(engine, spec, options: JobOptions, job_id: str,
                           cancel: threading.Event | None = None) -> Iterator[dict]:
    """Run a live job on the configured source `spec` (`backend.video.live.LiveSpec`); see the module
    docstring. Never raises for stream or model errors."""
    from backend.engine.messages import (CONVENTIONS, PROGRESS_INTERVAL_S, MessageNumbering, accumulate,
                                         track_messages, video_facts)
    from backend.video.live import LiveSource
    from backend.video.reader import VideoError

    cancel = cancel or threading.Event()
    msg = MessageNumbering(job_id)

    try:
        source = LiveSource(spec, cancel=cancel)  # waits for the first frame (or the cancel)
    except VideoError as exc:
        if cancel.is_set():
            yield msg(protocol.MessageType.CANCELLED, frames=0)
            return
        yield msg(protocol.MessageType.ERROR, code=protocol.ErrorCode.BAD_VIDEO.value, message=str(exc),
                  frame=None, reason=exc.code)
        return
    except Exception as exc:
        yield msg(protocol.MessageType.ERROR, code=protocol.ErrorCode.JOB_FAILED.value,
                  message=f"could not open {spec.label}: {type(exc).__name__}: {exc}", frame=None)
        return

    tracks = TrackBook()
    cloud = VoxelCloud(options.scene_voxel_size, options.scene_max_points)
    feed = _Feed()
    results = None
    frames_done = 0
    latencies: list[float] = []
    started = time.perf_counter()
    last_progress = started
    end_reason = None
    terminal: dict | None = None
    stats = source.stats

    def progress() -> dict:
        now = time.perf_counter()
        stage = "live" if stats.state == "streaming" else stats.state
        status = (f"re-opening the stream: {stats.last_error}" if stage in ("reconnecting", "connecting")
                  else f"{stats.dropped} of {stats.decoded} frames dropped (the model takes the newest)")
        latency = statistics.median(latencies) if latencies else None
        latencies.clear()
        return msg(protocol.MessageType.PROGRESS, done=frames_done, total=None,
                   fps=frames_done / max(now - started, 1e-9), eta_s=None, stage=stage, decoded=stats.decoded,
                   dropped=stats.dropped, reconnects=stats.reconnects, latency_s=latency, status=status)

    try:
        yield msg(protocol.MessageType.HEADER, video={**video_facts(source.info, spec.label), "source": spec.kind},
                  options=options.to_dict(), model={**engine.describe(), "dtype": engine.job_precision(options)},
                  smplx=engine.body.header_settings(), conventions=CONVENTIONS,
                  body_model=engine.body.header_arrays())
        results = engine.run(feed, options, prefetch="off")
        frames = source.frames(cancel)
        while True:
            try:
                frame = next(frames, _END)
            except VideoError as exc:
                if exc.code == "stream_lost":
                    end_reason = exc.code
                else:
                    terminal = {"type": protocol.MessageType.ERROR, "code": protocol.ErrorCode.BAD_VIDEO.value,
                                "message": str(exc), "frame": None, "reason": exc.code}
                break
            if cancel.is_set() or frame is _END:
                terminal = {"type": protocol.MessageType.CANCELLED, "frames": frames_done}
                break
            if frame is not None:
                feed.frame = frame
                try:
                    res = next(results)
                except Exception as exc:  # model / post-processing failure: report, never raise
                    terminal = {"type": protocol.MessageType.ERROR, "code": protocol.ErrorCode.JOB_FAILED.value,
                                "message": f"processing failed at live frame {frame.index}: {type(exc).__name__}: "
                                           f"{exc}", "frame": frame.index, "detail": traceback.format_exc(limit=8)}
                    break
                frames_done += 1
                accumulate(res, tracks, cloud)
                message = msg.frame(res)
                latencies.append(time.perf_counter() - source.taken_decoded_at)
                yield message
            now = time.perf_counter()
            if now - last_progress >= PROGRESS_INTERVAL_S:
                last_progress = now
                yield progress()
        results.close()
        source.close()
        yield progress()  # final counts (drops, reconnects) for the record
        yield from track_messages(tracks, msg)
        if terminal is None:
            elapsed = time.perf_counter() - started
            xyz, rgb = cloud.result()
            yield msg(protocol.MessageType.DONE, frames=frames_done, people=len(tracks), elapsed_s=elapsed,
                      fps=frames_done / max(elapsed, 1e-9), end_reason=end_reason, dropped=stats.dropped,
                      reconnects=stats.reconnects,
                      scene_points={"xyz": xyz, "rgb": rgb, "voxel_size": cloud.voxel_size})
        else:
            yield msg(terminal.pop("type"), **terminal)
    except Exception as exc:
        yield msg(protocol.MessageType.ERROR, code=protocol.ErrorCode.JOB_FAILED.value,
                  message=f"live job failed: {type(exc).__name__}: {exc}", frame=None,
                  detail=traceback.format_exc(limit=8))
    finally:
        if results is not None:
            results.close()
        source.close()
