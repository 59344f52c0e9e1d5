"""`backend.video.live`: configured URLs, the protocol allow-list, and real loopback streams from a
sender process (UDP MPEG-TS, RTSP and RTMP with this side listening) through the keep-latest reader."""
from __future__ import annotations

import dataclasses
import threading
import time

import numpy as np
import pytest

from backend.video.live import LiveSource, LiveSpec, open_arguments, transport_for
from backend.video.reader import VideoError
from tests.support.live_rig import Loopback, Sender, require_quiet_cpu
from tests.support.live_sender import paint, read_index


# ------------------------------------------------------------------------------------------------
# configuration (no network)


@pytest.mark.parametrize("url, fmt, whitelist", [
    ("rtsp://cam.local:8554/main", "rtsp", "rtsp,rtp,tcp,udp"),
    ("rtsp+udp://cam.local/main", "rtsp", "rtsp,rtp,tcp,udp"),
    ("rtmp://127.0.0.1/live/key", "flv", "rtmp,tcp"),
    ("udp://239.0.0.1:1234", "mpegts", "udp"),
    ("rtp://127.0.0.1:5004", "mpegts", "rtp,udp"),
    ("https://example.org/stream.ts", None, "http,https,tls,tcp"),
])
def test_each_scheme_opens_with_its_own_allow_list(url, fmt, whitelist):
    ffmpeg_url, got_fmt, options = open_arguments(url)
    assert got_fmt == fmt
    assert options["protocol_whitelist"] == whitelist
    assert "file" not in options["protocol_whitelist"].split(",")
    assert int(options["timeout"] if "timeout" in options else options["rw_timeout"]) == 3_000_000


def test_rtsp_transport_and_listen_flags():
    url, _, options = open_arguments("rtsp+udp://127.0.0.1:8554/cam?listen=1")
    assert url == "rtsp://127.0.0.1:8554/cam"  # our flag is not passed on as a URL option
    assert options["rtsp_transport"] == "udp" and options["rtsp_flags"] == "listen"
    url, _, options = open_arguments("rtmp://127.0.0.1:1935/live/x?listen=1")
    assert url == "rtmp://127.0.0.1:1935/live/x" and options["listen"] == "1"
    assert "fflags" not in options  # nobuffer breaks the FLV demuxer's start-up


def test_v4l2_device_paths():
    assert open_arguments("/dev/video0")[:2] == ("/dev/video0", "v4l2")
    assert open_arguments("v4l2:///dev/video2")[:2] == ("/dev/video2", "v4l2")


@pytest.mark.parametrize("url", ["file:///etc/passwd", "concat:a.ts|b.ts", "srt://127.0.0.1:9000", "/etc/passwd",
                                 "pipe:0", "cam.mp4"])
def test_unsupported_urls_are_refused_with_the_supported_list(url):
    with pytest.raises(ValueError, match="supported: .*rtsp"):
        transport_for(url)


@pytest.mark.parametrize("text, problem", [("cam", "NAME=URL"), ("=rtsp://x/y", "name"),
                                           ("my cam=rtsp://x/y", "name"), ("cam=ftp://x/y", "unsupported")])
def test_live_spec_parse_errors(text, problem):
    with pytest.raises(ValueError, match=problem):
        LiveSpec.parse(text)


def test_spec_label_hides_the_url():
    spec = LiveSpec.parse("door=rtsp://user:secret@10.0.0.5/stream")
    assert spec.label == "live:door" and spec.kind == "rtsp" and "secret" not in spec.label


def test_nested_file_inside_a_playlist_is_not_opened(tmp_path):
    """An HTTP playlist naming a local file: the allow-list stops FFmpeg from following it."""
    import http.server
    import socketserver

    secret = tmp_path / "secret.ts"
    secret.write_bytes(b"\x47" * 188 * 10)
    playlist = f"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1.0,\nfile://{secret}\n#EXT-X-ENDLIST\n"

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = playlist.encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/vnd.apple.mpegurl")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    with socketserver.TCPServer(("127.0.0.1", 0), Handler) as httpd:
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        try:
            spec = LiveSpec("pl", f"http://127.0.0.1:{httpd.server_address[1]}/list.m3u8", reconnect_s=1.0,
                            read_timeout_s=1.0)
            with pytest.raises(VideoError) as err:
                LiveSource(spec)
            assert err.value.code == "unreachable"
        finally:
            httpd.shutdown()


def test_missing_device_fails_with_unreachable_after_the_reconnect_window():
    t0 = time.monotonic()
    with pytest.raises(VideoError) as err:
        LiveSource(LiveSpec("webcam", "/dev/video-that-does-not-exist", reconnect_s=1.0))
    assert err.value.code == "unreachable" and "webcam" in str(err.value)
    assert time.monotonic() - t0 < 10


# ------------------------------------------------------------------------------------------------
# real streams over loopback


def test_paint_and_read_index_round_trip():
    for i in (0, 1, 77, 1800, 4095):
        assert read_index(paint(i, 320, 240)) == i


def _consume(source: LiveSource, seconds: float, work_s: float, sender: Sender):
    """Take frames like a model that needs `work_s` per frame; returns (frame, age at take) pairs."""
    taken = []
    deadline = time.monotonic() + seconds
    for frame in source.frames():
        if frame is None:
            if time.monotonic() > deadline:
                break
            continue
        taken.append((frame, time.time() - sender.captured_at(read_index(frame.rgb))))
        if time.monotonic() > deadline:
            break
        time.sleep(work_s)
    return taken


@pytest.mark.parametrize("transport", ["udp", "rtsp", "rtmp"])
def test_keep_latest_over_loopback(transport):
    """A consumer 6x slower than the 30 fps feed gets the newest frame each time: bounded age, drops
    counted exactly, indices and stream times increasing, painted frames in order."""
    loop = Loopback.make(transport)
    sender = Sender(loop, seconds=6.0)
    try:
        with LiveSource(LiveSpec("cam", loop.receive_url, reconnect_s=5.0, connect_s=60.0)) as source:
            assert source.expected_frames is None and source.info.kind == "live"
            assert (source.info.width, source.info.height) == (320, 240)
            taken = _consume(source, 3.5, 0.2, sender)
            with source._cond:  # the reader keeps decoding: count under its lock
                stats = dataclasses.replace(source.stats)
                pending = source._latest is not None
            assert stats.decoded == stats.taken + stats.dropped + pending
    finally:
        sender.stop()
    frames = [f for f, _ in taken]
    ages = np.array([a for _, a in taken[1:]])  # the first one waited for the open
    assert len(frames) >= 8, f"only {len(frames)} frames in 3.5 s"
    assert stats.dropped >= 3 * len(frames)  # 30 fps in, ~5 taken per second
    painted = [read_index(f.rgb) for f in frames]
    assert painted == sorted(set(painted))
    indices = [f.index for f in frames]
    assert all(b > a for a, b in zip(indices, indices[1:]))
    # index gaps are the drops: consecutive taken frames are as far apart in the stream as painted
    assert np.diff(indices).tolist() == np.diff(painted).tolist()
    times = np.array([f.time for f in frames])
    assert np.all(np.diff(times) > 0)
    np.testing.assert_allclose(np.diff(times), np.diff(painted) / 30.0, atol=1e-3)  # times from the pts
    require_quiet_cpu()
    # transport (a few ms with the low-latency sender) + at most one 0.2 s wait
    assert np.percentile(ages, 95) < 0.45, ages


def test_sender_that_comes_back_is_picked_up_with_monotone_times():
    loop = Loopback.make("udp")
    first = Sender(loop, seconds=2.5)
    try:
        with LiveSource(LiveSpec("cam", loop.receive_url, reconnect_s=20.0, read_timeout_s=1.0)) as source:
            seen = []
            second = None
            deadline = time.monotonic() + 25
            for frame in source.frames():
                if time.monotonic() > deadline:
                    break
                if frame is None:
                    if second is None and first.process.poll() is not None and source.stats.state == "reconnecting":
                        # long enough to be seen whatever back-off the source is in; killed at the end
                        second = Sender(loop, seconds=20.0, start_index=1000)
                    continue
                seen.append((read_index(frame.rgb), frame.time, frame.index))
                if seen[-1][0] >= 1030:
                    break
            reconnects = source.stats.reconnects
    finally:
        first.stop()
        if second is not None:
            second.stop()
    painted = [p for p, _, _ in seen]
    assert second is not None, "the source never reported the dropped stream"
    assert any(p < 1000 for p in painted) and any(p >= 1000 for p in painted)
    assert reconnects >= 1
    times = [t for _, t, _ in seen]
    assert all(b > a for a, b in zip(times, times[1:]))
    assert all(b > a for a, b in zip([i for *_, i in seen], [i for *_, i in seen][1:]))


def _video_pes_lengths(ts: bytes) -> list[int]:
    """PES_packet_length of every H.264 video PES (stream id 0xE0) in an MPEG-TS byte string."""
    lengths = []
    for at in range(0, len(ts) - 187, 188):
        packet = ts[at:at + 188]
        assert packet[0] == 0x47
        if not packet[1] & 0x40:  # payload_unit_start_indicator: a PES starts here
            continue
        start = 4 + (1 + packet[4] if packet[3] & 0x20 else 0)  # after the adaptation field
        if packet[start:start + 4] == b"\x00\x00\x01\xe0":
            lengths.append(int.from_bytes(packet[start + 4:start + 6], "big"))
    return lengths


@pytest.mark.parametrize("settings, with_length", [("ffmpeg-default", False), ("low-latency", True)])
def test_sender_settings_decide_whether_video_pes_packets_carry_their_length(tmp_path, capsys, settings,
                                                                              with_length):
    """FFmpeg's MPEG-TS muxer omits the video PES length unless told (`omit_video_pes_length=0`), and
    only a PES with a length can end before the next one starts."""
    from tests.support.live_sender import send

    out = tmp_path / "out.ts"
    sent = send(str(out), "mpegts", fps=30, seconds=0.5, width=320, height=240, gop=15, settings=settings)
    lengths = _video_pes_lengths(out.read_bytes())
    assert len(lengths) == sent == 15
    assert all(n > 0 for n in lengths) if with_length else lengths == [0] * sent


@pytest.mark.parametrize("settings, last_arrives", [("ffmpeg-default", False), ("low-latency", True)])
def test_last_frame_arrives_while_the_sender_is_silent_only_with_pes_lengths(settings, last_arrives):
    """The sender sends 90 frames (3 s) and then stays silent with its output open. A frame whose PES
    carries its length is handed over at once, so the last one arrives without any later data; without
    the length the demuxer holds it until the next PES starts (never here) or the connection times
    out (30 s here, far beyond the test)."""
    loop = Loopback.make("udp")
    last = 89
    sender = Sender(loop, seconds=(last + 1) / 30, settings=settings, linger_s=60.0)
    try:
        with LiveSource(LiveSpec("cam", loop.receive_url, reconnect_s=60.0, read_timeout_s=30.0)) as source:
            newest, seen_at = -1, None
            deadline = time.monotonic() + 20.0
            for frame in source.frames():
                if frame is not None:
                    newest = read_index(frame.rgb)
                    if newest == last:
                        break
                    if newest == last - 1:  # released by the last frame's PES start
                        seen_at = time.monotonic()
                if time.monotonic() > deadline or (seen_at is not None and sender.wait_written(0)
                                                   and time.monotonic() > seen_at + 1.0):
                    break
            assert sender.process.poll() is None  # still silent: nothing flushed the last frame out
    finally:
        sender.stop()
    if last_arrives:
        assert newest == last
    else:
        assert newest == last - 1 and seen_at is not None


def _wait_until_bound(port: int, timeout: float = 30.0) -> None:
    """Return once something is bound to UDP `port` on loopback (our own bind is then refused)."""
    import socket

    deadline = time.monotonic() + timeout
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                return
        assert time.monotonic() < deadline, f"nothing bound UDP port {port}"
        time.sleep(0.01)


def test_udp_receiver_decodes_from_the_first_keyframe_it_receives():
    """A receiver listening before the sender starts decodes the stream from its first frame: the
    stream probe ends at the first keyframe and keeps what it read (FFmpeg's frame-rate probe with
    `nobuffer` threw away the first two keyframe intervals); the rate comes from the H.264 headers."""
    loop = Loopback.make("udp")
    opened = {}
    opener = threading.Thread(target=lambda: opened.update(
        source=LiveSource(LiveSpec("cam", loop.receive_url, reconnect_s=60.0))), daemon=True)
    opener.start()
    _wait_until_bound(int(loop.receive_url.rsplit(":", 1)[1]))
    sender = Sender(loop, seconds=3.0)
    try:
        opener.join(60)
        with opened["source"] as source:
            frame = next(f for f in source.frames() if f is not None)
            assert source.info.fps == 30.0
    finally:
        sender.stop()
    # `index` counts every frame decoded: painted - index = frames sent before the first decoded one
    assert read_index(frame.rgb) - frame.index == 0


def test_stop_ends_iteration_within_a_tick():
    loop = Loopback.make("udp")
    sender = Sender(loop, seconds=5.0)
    try:
        with LiveSource(LiveSpec("cam", loop.receive_url)) as source:
            stop = threading.Event()
            frames = source.frames(stop)
            assert next(f for f in frames if f is not None)
            stop.set()
            t0 = time.monotonic()
            assert list(frames) == []
            assert time.monotonic() - t0 < 0.5  # no wait at all: the generator looks at `stop` first
            assert source.stats.state == "streaming"
        time.sleep(0.1)
    finally:
        sender.stop()


def test_stream_that_never_comes_is_unreachable():
    loop = Loopback.make("udp")
    with pytest.raises(VideoError) as err:
        LiveSource(LiveSpec("cam", loop.receive_url, reconnect_s=1.0, read_timeout_s=0.5))
    assert err.value.code == "unreachable"


def test_live_sources_do_not_pickle():
    import pickle

    loop = Loopback.make("udp")
    sender = Sender(loop, seconds=3.0)
    try:
        with LiveSource(LiveSpec("cam", loop.receive_url)) as source:
            with pytest.raises(TypeError, match="cannot be pickled"):
                pickle.dumps(source)
    finally:
        sender.stop()
