"""Live frame sources: a camera or network stream, read through PyAV with a keep-latest slot.

A live source never ends on its own schedule and must not fall behind it: a reader thread decodes
the stream continuously (so the socket is drained and the sender never backs up) and keeps only the
newest decoded frame in a slot of depth one. A consumer that is slower than the feed (the model)
takes whatever is newest when it is ready; every frame overwritten before it was taken counts as
dropped. Latency therefore stays bounded by transport + one model step, however long it runs.

Sources are configured server-side as ``NAME=URL`` (`LiveSpec`) and never come from a client:

==================  =================================================  ==========================
URL                  what it opens                                      FFmpeg protocols allowed
==================  =================================================  ==========================
``v4l2:///dev/videoN`` or ``/dev/videoN``   a V4L2 capture device (Linux)          (none: a device)
``rtsp://host/path``        RTSP, RTP over TCP (reliable default)        rtsp, rtp, tcp, udp
``rtsp+udp://host/path``    RTSP, RTP over UDP                           rtsp, rtp, tcp, udp
``rtsps://...``             RTSP over TLS                                + tls
``rtmp://host/app/key``     RTMP (FFmpeg's native client)                rtmp, tcp
``udp://host:port``         MPEG-TS over UDP (multicast works)           udp
``rtp://host:port``         MPEG-TS over RTP                             rtp, udp
``http(s)://...``           HTTP(S) stream (MPEG-TS, MJPEG, HLS, ...)    http, https, tls, tcp
==================  =================================================  ==========================

``?listen=1`` on an rtsp/rtmp URL makes this side the listener (the camera or phone pushes to us:
FFmpeg's ``rtsp_flags=listen`` / ``listen=1``); on a udp URL binding is what happens anyway. The
protocol allow-list (FFmpeg's ``protocol_whitelist``) keeps ``file:``, ``concat:`` and nested
playlists from being opened from inside a stream (an SDP or HLS playlist naming a local file).

Timestamps: ``SourceFrame.time`` is seconds from the stream's pts, counted from the stream's start
time of the first connection, and strictly increasing over the whole source: after a reconnect the
new connection's times continue from the wall-clock time elapsed since the source opened (never
below the previous time plus one frame interval). A frame without a pts gets wall-clock time.
``SourceFrame.index`` counts every decoded frame (taken or dropped) over all connections, so
``index`` gaps are the drops.

Ending: a dropped connection is re-opened with exponential back-off (0.5 s doubling to 5 s; a
listening source listens again at once) until
`LiveSpec.reconnect_s` seconds pass without a frame; then iteration ends with a `VideoError`
``stream_lost``. A stream that was never reached fails the same way with ``unreachable``.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Iterator
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import av
import av.error

from backend.video.reader import DEFAULT_MAX_PIXELS, FrameSource, SourceFrame, VideoError, VideoInfo, _upright, \
    _frame_orientation

log = logging.getLogger(__name__)

LIVE_PREFIX = "live:"
READ_TIMEOUT_S = 3.0  # a stream silent this long counts as dropped (and is re-opened)
LISTEN_TIMEOUT_S = 5  # a listening source re-arms this often (so it can be stopped)
RECONNECT_S = 30.0  # give up after this long without a frame
BACKOFF_FIRST_S, BACKOFF_MAX_S = 0.5, 5.0
LISTEN_REARM_S = 0.1
WAIT_TICK_S = 0.25  # how often a waiting consumer looks at `stop`

# FFmpeg options that make the demuxer hand over frames as soon as they are decodable (no probing
# buffers). Measured on loopback: `fflags=nobuffer` breaks the FLV (RTMP) demuxer's start-up, and
# FLV's stream probe otherwise waits for the whole default probe size (seconds of a small stream),
# so RTMP gets a minimal probe instead (first frame ~0.4 s after the publisher starts, then ~5 ms).
_LOW_DELAY = {"fflags": "nobuffer", "flags": "low_delay"}
# The MPEG-TS and RTSP demuxers already hand out the coded data in decode order; FFmpeg's frame parser
# only regroups it into frames, holding each frame back until the next one starts: one frame interval
# (33 ms at 30 fps). `noparse` hands the packets to the decoder as they come. Measured on
# loopback (320x240, 30 fps): RTSP 35 -> 2 ms, UDP MPEG-TS 69 -> 36 ms, frames and times unchanged.
_LOW_DELAY_WHOLE_FRAMES = {"fflags": "nobuffer+noparse", "flags": "low_delay"}
# MPEG-TS over UDP/RTP. The demuxer ends a video packet as soon as its last byte arrived only when the
# sender wrote the PES packet's length (FFmpeg's muxer: `-omit_video_pes_length 0`, possible up to
# 65,535 bytes per frame); without it a frame ends when the next one starts: one frame interval late,
# which no receiver option changes (README, "Live input", says what a sender should set).
# Joining: a TS stream states no frame rate, so FFmpeg's probe decodes ~20 frames to estimate it, and
# `nobuffer` throws away what the probe read: the first picture came from the second keyframe after
# the open (2 GOPs). `fpsprobesize=0` ends the probe at the first decodable keyframe (the rate comes
# from the H.264 headers instead, `_frame_rate`), and without `nobuffer` that keyframe is decoded
# too. The probe size only has to cover the tables (PAT/PMT, sent every 0.1 s or so): 32 KB was less
# than two 720p frames and failed ("no video", "invalid data") until a lucky re-open.
# Measured joining mid-stream, 30 fps, GOP 15: 320x240 synthetic, first picture 0.8-1.2 s -> 0.1-0.3 s
# after the open and 4-16 ms old; 1280x720 camera footage, 3.3 s (3 opens) -> 0.3-0.4 s (one open).
# Steady-state latency unchanged.
# `overrun_nonfatal`: should the reader fall so far behind that FFmpeg's UDP buffer (~5 MB) overflows,
# drop the oldest data (a keep-latest reader wants the newest) instead of failing the connection.
_TS_LOW_DELAY = {"fflags": "noparse", "flags": "low_delay", "probesize": "1000000", "analyzeduration": "0",
                 "fpsprobesize": "0"}
_FLV_PROBE = {"flags": "low_delay", "probesize": "32", "analyzeduration": "0"}


@dataclass(frozen=True)
class Transport:
    """How one URL scheme is opened: FFmpeg URL scheme, input format, options, protocol allow-list."""

    scheme: str
    format: str | None
    options: dict
    whitelist: str | None


_TRANSPORTS: dict[str, Transport] = {
    "rtsp": Transport("rtsp", "rtsp", {**_LOW_DELAY_WHOLE_FRAMES, "rtsp_transport": "tcp"}, "rtsp,rtp,tcp,udp"),
    "rtsp+udp": Transport("rtsp", "rtsp", {**_LOW_DELAY_WHOLE_FRAMES, "rtsp_transport": "udp"}, "rtsp,rtp,tcp,udp"),
    "rtsps": Transport("rtsps", "rtsp", {**_LOW_DELAY_WHOLE_FRAMES, "rtsp_transport": "tcp"}, "rtsps,rtsp,rtp,tcp,udp,tls"),
    "rtmp": Transport("rtmp", "flv", dict(_FLV_PROBE), "rtmp,tcp"),
    "rtmps": Transport("rtmps", "flv", dict(_FLV_PROBE), "rtmps,rtmp,tcp,tls"),
    "udp": Transport("udp", "mpegts", {**_TS_LOW_DELAY, "overrun_nonfatal": "1"}, "udp"),
    "rtp": Transport("rtp", "mpegts", dict(_TS_LOW_DELAY), "rtp,udp"),
    "http": Transport("http", None, {"flags": "low_delay"}, "http,https,tls,tcp"),
    "https": Transport("https", None, {"flags": "low_delay"}, "http,https,tls,tcp"),
    "v4l2": Transport("v4l2", "v4l2", dict(_LOW_DELAY), None),
}
SCHEMES = tuple(sorted(_TRANSPORTS))


@dataclass(frozen=True)
class LiveSpec:
    """A live source the operator configured (``human3r serve --live NAME=URL``).

    Attributes:
        name: what clients ask for (letters, digits, ``_.-``; at most 40 characters).
        url: the stream (see the module docstring); never sent to clients (it may hold credentials).
        reconnect_s: seconds without a frame after which a source that was streaming gives up.
        connect_s: seconds to wait for the very first frame (a camera booting, a sender that
            starts later than the listener); None = `reconnect_s`.
        read_timeout_s: a connection silent this long is dropped and re-opened.
    """

    name: str
    url: str
    reconnect_s: float = RECONNECT_S
    read_timeout_s: float = READ_TIMEOUT_S
    connect_s: float | None = None

    def __post_init__(self):
        check_name(self.name)
        transport_for(self.url)  # refuse unknown schemes when configured, not at the first job

    @property
    def label(self) -> str:
        """'live:NAME': how jobs and results name the source (the URL stays on the server)."""
        return LIVE_PREFIX + self.name

    @property
    def kind(self) -> str:
        """The URL scheme ('rtsp', 'udp', 'v4l2', ...): safe to show to clients."""
        return _scheme(self.url)

    @classmethod
    def parse(cls, text: str) -> "LiveSpec":
        """'NAME=URL' (the command-line form); ValueError says what is wrong."""
        name, sep, url = text.partition("=")
        if not sep or not url.strip():
            raise ValueError(f"live source {text!r}: expected NAME=URL, e.g. cam1=rtsp://192.168.1.20:8554/cam")
        return cls(name.strip(), url.strip())


def check_name(name: str) -> str:
    if not (isinstance(name, str) and 0 < len(name) <= 40
            and all(c.isascii() and (c.isalnum() or c in "_.-") for c in name)):
        raise ValueError(f"live source name {name!r}: use 1-40 letters, digits, '_', '.' or '-'")
    return name


def _scheme(url: str) -> str:
    if url.startswith("/dev/"):
        return "v4l2"
    return urlsplit(url).scheme.lower()


def transport_for(url: str) -> Transport:
    """The `Transport` of a configured URL; ValueError names the supported schemes."""
    scheme = _scheme(url)
    if scheme not in _TRANSPORTS:
        raise ValueError(f"live source {url!r}: unsupported scheme {scheme or '(none)'!r}; supported: "
                         f"{', '.join(SCHEMES)} (SRT/RIST/NDI are not in this FFmpeg build: relay them to "
                         f"RTSP or UDP)")
    return _TRANSPORTS[scheme]


def open_arguments(url: str, read_timeout_s: float = READ_TIMEOUT_S) -> tuple[str, str | None, dict]:
    """(FFmpeg URL, input format, options) for `av.open` of a configured URL."""
    transport = transport_for(url)
    options = dict(transport.options)
    if transport.whitelist:
        options["protocol_whitelist"] = transport.whitelist
    if transport.scheme == "v4l2":
        return (url[len("v4l2://"):] if url.startswith("v4l2://") else url), "v4l2", options
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    listen = any(k == "listen" and v not in ("", "0") for k, v in query)
    if transport.format in ("rtsp", "flv"):  # our listen flag is not a URL option of these protocols
        query = [(k, v) for k, v in query if k != "listen"]
    timeout_us = str(int(read_timeout_s * 1e6))
    if transport.format == "rtsp":
        options["timeout"] = timeout_us  # socket I/O timeout (µs)
        if listen:
            options["rtsp_flags"] = "listen"
            options["listen_timeout"] = str(LISTEN_TIMEOUT_S)  # seconds
    elif transport.format == "flv":
        options["rw_timeout"] = timeout_us
        if listen:
            options["listen"] = "1"
            options["timeout"] = str(LISTEN_TIMEOUT_S)  # seconds to wait for the publisher
    else:
        options["timeout"] = timeout_us  # udp/rtp/http read timeout (µs)
    ffmpeg_url = urlunsplit((transport.scheme, parts.netloc, parts.path, urlencode(query), ""))
    return ffmpeg_url, transport.format, options


@dataclass
class LiveStats:
    """What happened so far (read by the job layer for progress and reconnect reports).

    decoded: frames decoded (all connections); taken: frames handed to the consumer; dropped:
    decoded frames overwritten before the consumer took them; waited_s: seconds the consumer spent
    waiting for a new frame (near 0 while the feed is faster than the consumer); connects: successful opens
    (1 + reconnects); state: 'connecting' | 'streaming' | 'reconnecting' | 'ended';
    last_error: why the last connection ended (None while the first one lasts).
    """

    decoded: int = 0
    taken: int = 0
    dropped: int = 0
    waited_s: float = 0.0
    connects: int = 0
    state: str = "connecting"
    last_error: str | None = None

    @property
    def reconnects(self) -> int:
        return max(0, self.connects - 1)


class LiveSource(FrameSource):
    """A `FrameSource` over a `LiveSpec` (see the module docstring). One iteration at a time.

    ``expected_frames`` is None (unknown length); ``info`` describes the first connection (the
    constructor waits for the first decoded frame, up to ``reconnect_s``, or until `cancel` is set:
    then it raises `VideoError` ``cancelled``).
    """

    is_live = True

    def __init__(self, spec: LiveSpec, max_pixels: int = DEFAULT_MAX_PIXELS, cancel: threading.Event | None = None):
        self.spec = spec
        self.max_pixels = max_pixels
        self.stats = LiveStats()
        self._cond = threading.Condition()
        self._latest = None  # (index, time, av.VideoFrame, perf_counter when decoded) not yet taken
        self.taken_decoded_at: float | None = None  # perf_counter() when the last taken frame was decoded
        self._stop = threading.Event()
        self._end: VideoError | None = None  # set by the reader once it gives up
        self._info: VideoInfo | None = None
        self._orientation = (0, False)
        self._opened_at = time.monotonic()
        _, _, options = open_arguments(spec.url)
        self._listening = options.get("rtsp_flags") == "listen" or options.get("listen") == "1"
        self._reader = threading.Thread(target=self._read_forever, name=f"human3r-live-{spec.name}", daemon=True)
        self._reader.start()
        try:
            with self._cond:
                while self._info is None and self._end is None and not (cancel is not None and cancel.is_set()):
                    self._cond.wait(WAIT_TICK_S)
            if self._info is None:
                raise self._end or VideoError("cancelled", f"{spec.label}: stopped before the stream started",
                                              path=spec.label)
        except BaseException:
            self.close()
            raise
        super().__init__(spec.label, self._info, 0, None, 1)
        self.path = spec.label

    # consumer side --------------------------------------------------------------------------------
    def frames(self, stop: threading.Event | None = None, tick_s: float = WAIT_TICK_S) -> Iterator[SourceFrame | None]:
        """The newest frame each time one is asked for, or None every `tick_s` while none is new
        (so a caller can report progress and check `stop`). Ends when `stop` is set or the source is
        closed; raises `VideoError` (``stream_lost``/``unreachable``/``too_large``) when it gives up."""
        while not self._stop.is_set() and not (stop is not None and stop.is_set()):
            with self._cond:
                if self._latest is None and self._end is None:
                    t0 = time.perf_counter()
                    self._cond.wait(tick_s)
                    self.stats.waited_s += time.perf_counter() - t0
                item, self._latest = self._latest, None
                end = self._end
                if item is not None:
                    self.stats.taken += 1
            if item is None:
                if end is not None:
                    raise end
                yield None
                continue
            index, time_s, frame, self.taken_decoded_at = item
            rotation, mirrored = self._orientation
            yield SourceFrame(index, time_s, _upright(frame.to_ndarray(format="rgb24"), rotation, mirrored))

    def _frames(self) -> Iterator[SourceFrame]:
        for frame in self.frames():
            if frame is not None:
                yield frame

    def with_decode_threads(self, threads: int) -> "LiveSource":
        return self  # one reader per source; the decoder thread count is FFmpeg's

    def __getstate__(self):
        raise TypeError("a live source cannot be pickled: it is read by a thread of the process that opened it")

    def close(self) -> None:
        """Stop the reader (it leaves within one read timeout) and end iterations (idempotent)."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if hasattr(self, "_live"):
            super().close()

    # reader thread ----------------------------------------------------------------------------------
    def _read_forever(self) -> None:
        backoff = BACKOFF_FIRST_S
        last_frame_at = time.monotonic()
        time_offset = 0.0
        last_time = -float("inf")
        while not self._stop.is_set():
            try:
                container, stream = self._open()
            except VideoError as exc:
                if exc.code == "too_large":
                    return self._give_up(exc)
                self.stats.last_error = str(exc)
            else:
                self.stats.connects += 1
                self.stats.state = "streaming"
                backoff = BACKOFF_FIRST_S
                try:
                    time_offset, last_time, last_frame_at = self._pump(container, stream, time_offset, last_time,
                                                                        last_frame_at)
                except VideoError as exc:
                    return self._give_up(exc)
                finally:
                    container.close()
            if self._stop.is_set():
                return
            silent = time.monotonic() - last_frame_at
            patience = self.spec.reconnect_s if self.stats.decoded or self.spec.connect_s is None else self.spec.connect_s
            if silent >= patience:
                code = "stream_lost" if self.stats.decoded else "unreachable"
                return self._give_up(VideoError(code, f"{self.spec.label}: no frames for {silent:.0f} s "
                                                      f"({self.stats.last_error or 'no connection'}); check "
                                                      f"that the camera or sender is running",
                                                path=self.spec.label))
            self.stats.state = "reconnecting" if self.stats.connects else "connecting"
            if self._listening:  # nobody to spare: listen again almost at once (a listen times out by itself;
                self._stop.wait(LISTEN_REARM_S)  # the pause only keeps a failing bind from spinning)
                continue
            log.info("%s: %s; retrying in %.1f s", self.spec.label, self.stats.last_error, backoff)
            self._stop.wait(backoff)
            backoff = min(2 * backoff, BACKOFF_MAX_S)
        self.stats.state = "ended"

    def _give_up(self, error: VideoError) -> None:
        self.stats.state = "ended"
        with self._cond:
            self._end = error
            self._cond.notify_all()

    def _open(self):
        url, fmt, options = open_arguments(self.spec.url, self.spec.read_timeout_s)
        try:
            container = av.open(url, mode="r", format=fmt, options=options)
        except av.error.FFmpegError as exc:
            raise VideoError("unreachable", f"{self.spec.label}: cannot open the stream: {exc.strerror}",
                             path=self.spec.label) from None
        streams = list(container.streams.video)
        if not streams:
            container.close()
            raise VideoError("no_video_stream", f"{self.spec.label}: the stream carries no video",
                             path=self.spec.label)
        stream = streams[0]
        stream.thread_type = "SLICE"  # frame threads would add a frame of delay each
        return container, stream

    def _pump(self, container, stream, time_offset: float, last_time: float, last_frame_at: float):
        """Decode one connection until it ends; returns the updated (offset, last time, last frame at)."""
        start_pts = stream.start_time
        tb = stream.time_base
        interval = 1.0 / float(_frame_rate(stream) or 30)
        first = True
        try:
            for packet in container.demux(stream):
                if self._stop.is_set():
                    break
                for frame in packet.decode():
                    if frame.width * frame.height > self.max_pixels:
                        raise VideoError("too_large", f"{self.spec.label}: frame size {frame.width}x{frame.height} "
                                                      f"exceeds the limit of {self.max_pixels / 1e6:.1f} Mpx",
                                         path=self.spec.label)
                    now = time.monotonic()
                    if frame.pts is None or tb is None:
                        t = now - self._opened_at
                    else:
                        if start_pts is None:
                            start_pts = frame.pts
                        if first and self.stats.connects > 1:  # continue after the previous connection
                            time_offset = max(last_time + interval, now - self._opened_at) - float(
                                (frame.pts - start_pts) * tb)
                        t = time_offset + float((frame.pts - start_pts) * tb)
                    if t <= last_time:  # a wrapped or repeated pts: keep times strictly increasing
                        t = last_time + interval
                    first = False
                    last_time, last_frame_at = t, now
                    self._offer(frame, t, stream)
        except av.error.FFmpegError as exc:  # timeouts and dropped connections end up here
            self.stats.last_error = f"connection lost: {exc.strerror}"
        else:
            self.stats.last_error = "the stream ended"
        return time_offset, last_time, last_frame_at

    def _offer(self, frame, time_s: float, stream) -> None:
        """Put a decoded frame in the slot, dropping the one there (keep-latest, depth 1)."""
        with self._cond:  # counts change under the lock: decoded == taken + dropped + (slot full)
            index = self.stats.decoded
            self.stats.decoded += 1
            if self._info is None:
                self._orientation = _frame_orientation(frame, stream)
                self._info = _live_info(self.spec, frame, stream, self._orientation)
            if self._latest is not None:
                self.stats.dropped += 1
            self._latest = (index, time_s, frame, time.perf_counter())
            self._cond.notify_all()

    def __repr__(self) -> str:
        return f"<LiveSource {self.spec.label} {self.spec.kind} {self.stats}>"


def _frame_rate(stream):
    """Frames per second (a Fraction) or None. The probe's average comes first; a stream opened without
    rate probing (MPEG-TS, `fpsprobesize=0`) has none, and its guess counts H.264 fields (twice the
    rate), so the decoder's rate from the stream headers comes before the guess."""
    return stream.average_rate or stream.codec_context.framerate or stream.guessed_rate


def _live_info(spec: LiveSpec, frame, stream, orientation: tuple[int, bool]) -> VideoInfo:
    from fractions import Fraction

    rotation, mirrored = orientation
    rate = _frame_rate(stream)
    fmt = frame.format
    swap = rotation in (90, 270)
    return VideoInfo(
        path=spec.label, kind="live", width=frame.height if swap else frame.width,
        height=frame.width if swap else frame.height, coded_width=frame.width, coded_height=frame.height,
        rotation=rotation, mirrored=mirrored, fps=float(rate) if rate else None,
        fps_fraction=Fraction(rate) if rate else None, frame_count=None, frame_count_exact=False, duration=None,
        codec=stream.codec_context.name, pixel_format=fmt.name,
        bit_depth=max(c.bits for c in fmt.components) if fmt.components else 8,
        sample_aspect_ratio=stream.sample_aspect_ratio)


__all__ = ["LIVE_PREFIX", "LiveSource", "LiveSpec", "LiveStats", "SCHEMES", "open_arguments", "transport_for"]
