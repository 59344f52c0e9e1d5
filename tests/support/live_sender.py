"""A live video sender for tests and benchmarks: generated frames, paced in real time, over loopback.

Run as a process (`python -m tests.support.live_sender URL --format mpegts|rtsp|flv ...`) so the
receiver under test shares nothing with it but the socket. Frame i carries its index painted as
`CODE_BITS` black/white blocks along the top (`read_index` decodes it) and has pts i in a 1/fps
time base, so its stream time is i / fps. Frame i is "captured" (handed to the encoder) at
`t0 + i / fps` wall-clock seconds; the sender prints one JSON line {"t0": ..., "fps": ...} to stdout
once the first frame is out, {"written": n} once the last one is (then keeps the output open and silent
for `--linger` seconds), and {"sent": n} when it has closed the output.

`--settings` picks how the sender is configured (`SENDER_SETTINGS`): FFmpeg's defaults, or the
low-latency settings README's live section asks a user's sender for.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

CODE_BITS = 12  # indices up to 4095: over two minutes at 30 fps
BLOCK = 26  # pixels per code block (width and height): still ~9 px after scaling 320 px down to 112

# The encoder is the same for every setting: x264 ultrafast + zerolatency (no look-ahead, no frame
# threads: each frame leaves the encoder as soon as it went in), no B-frames, a keyframe every `gop`
# frames (a receiver joins at a keyframe). Without zerolatency x264 holds dozens of frames, which no
# muxer or receiver setting wins back. The settings differ in the muxer (format options):
SENDER_SETTINGS = {
    # FFmpeg's muxer defaults. MPEG-TS writes video PES packets without a length
    # (`omit_video_pes_length` defaults to 1), so a receiver's demuxer can end a frame only when the
    # next one starts: one frame interval late (33 ms at 30 fps).
    "ffmpeg-default": {},
    # A low-latency sender (README, "Live input"): every packet leaves at once (`flush_packets`), no
    # mux delay between PCR and timestamps (`max_delay`, the CLI's `-muxdelay`), and MPEG-TS video PES
    # packets carry their length, so the demuxer hands a frame over as soon as its last byte arrived
    # (FFmpeg can write the length only while a frame's PES fits 65,535 bytes; larger frames go
    # without and are held like the default's).
    "low-latency": {"flush_packets": "1", "max_delay": "0", "omit_video_pes_length": "0"},
}
MPEGTS_ONLY = ("omit_video_pes_length",)


def muxer_options(settings: str, fmt: str) -> dict:
    """The format options of `SENDER_SETTINGS[settings]` that apply to format `fmt`."""
    return {k: v for k, v in SENDER_SETTINGS[settings].items() if fmt == "mpegts" or k not in MPEGTS_ONLY}


def describe(settings: str, gop: int) -> str:
    """One line saying how the sender is configured (printed by the benchmark)."""
    muxer = ", ".join(f"{k}={v}" for k, v in SENDER_SETTINGS[settings].items()) or "FFmpeg defaults"
    return f"{settings}: libx264 ultrafast zerolatency g={gop} bf=0; muxer {muxer}"


def paint(index: int, width: int, height: int) -> np.ndarray:
    """uint8 [H, W, 3] RGB frame: index bits as white (1) / black (0) blocks in the top rows,
    a moving grey bar below (so the encoder sees motion)."""
    img = np.full((height, width, 3), 96, dtype=np.uint8)
    for bit in range(CODE_BITS):
        value = 255 if (index >> bit) & 1 else 0
        img[:BLOCK, bit * BLOCK:(bit + 1) * BLOCK] = value
    x = (index * 7) % max(1, width - 40)
    img[BLOCK * 2:, x:x + 40] = 200
    return img


def read_index(rgb: np.ndarray, sent_width: int | None = None, sent_height: int | None = None) -> int:
    """The frame index painted by `paint` (block centres, threshold 128: robust to codec noise).

    `rgb` may be the sent frame resized to a smaller width and centre-cropped vertically (the model
    input): pass the sent size so the block centres are scaled and the crop undone."""
    h, w = rgb.shape[:2]
    scale = 1.0 if sent_width is None else w / sent_width
    crop_top = 0 if sent_height is None else (round(sent_height * scale) - h) // 2
    y = int(BLOCK / 2 * scale) - crop_top
    bits = [int(rgb[y, int((bit + 0.5) * BLOCK * scale)].mean() > 128) for bit in range(CODE_BITS)]
    return sum(b << i for i, b in enumerate(bits))


def _connect(url: str, fmt: str, options: dict, muxer: dict, fps: int, width: int, height: int, gop: int,
             wait_s: float = 60.0):
    """Open the output and write its header (the moment RTSP/RTMP connect), retrying while a listening
    receiver is not up yet. Returns (container, video stream)."""
    import av

    deadline = time.monotonic() + wait_s
    while True:
        container = av.open(url, mode="w", format=fmt, options=options, container_options=muxer)
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.options = {"preset": "ultrafast", "tune": "zerolatency", "g": str(gop), "bf": "0"}
        try:
            container.start_encoding()
            return container, stream
        except (av.error.ConnectionRefusedError, av.error.ConnectionResetError, av.error.OSError):
            try:
                container.close()
            except av.error.FFmpegError:
                pass
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def send(url: str, fmt: str, fps: int, seconds: float, width: int, height: int, gop: int,
         start_index: int = 0, connect_options: dict | None = None, settings: str = "low-latency",
         linger_s: float = 0.0) -> int:
    """Stream `seconds` of frames to `url` in real time, then keep the output open `linger_s` seconds
    without sending anything; return the number of frames sent."""
    import av

    options = dict(connect_options or {})
    if fmt == "rtsp":
        options.setdefault("rtsp_transport", "tcp")
    container, stream = _connect(url, fmt, options, muxer_options(settings, fmt), fps, width, height, gop)
    try:
        total = int(round(seconds * fps))
        t0 = None
        for i in range(total):
            if t0 is not None:
                delay = t0 + i / fps - time.time()
                if delay > 0:
                    time.sleep(delay)
            captured = time.time()
            frame = av.VideoFrame.from_ndarray(paint(start_index + i, width, height), format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
            if t0 is None:
                t0 = captured
                print(json.dumps({"t0": t0, "fps": fps}), flush=True)
        for packet in stream.encode():
            container.mux(packet)
        print(json.dumps({"written": total}), flush=True)
        time.sleep(linger_s)
    finally:
        container.close()
    print(json.dumps({"sent": total}), flush=True)
    return total


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("url")
    p.add_argument("--format", default="mpegts", choices=["mpegts", "rtsp", "flv"])
    p.add_argument("--fps", type=int, default=30)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--width", type=int, default=320)
    p.add_argument("--height", type=int, default=240)
    p.add_argument("--gop", type=int, default=15, help="keyframe interval in frames (bounds the join time)")
    p.add_argument("--start-index", type=int, default=0)
    p.add_argument("--settings", default="low-latency", choices=sorted(SENDER_SETTINGS))
    p.add_argument("--linger", type=float, default=0.0, help="seconds to keep the output open after the last frame")
    args = p.parse_args(argv)
    send(args.url, args.format, args.fps, args.seconds, args.width, args.height, args.gop, args.start_index,
         settings=args.settings, linger_s=args.linger)
    return 0


if __name__ == "__main__":
    sys.exit(main())
