"""The live path in Blender against a REAL `human3r serve` on loopback.

The server runs as a subprocess (started with the add-on's own `LocalServer`) with the tiny parity
checkpoint (../shared/fixtures/parity-small/checkpoint.pth) and the synthetic SMPL-X model, on a short
clip generated here. Timers never fire in the bpy module, so the tests call `live.poll_once()` the way
the timer would. The server needs torch and PyAV: it runs under the first interpreter that has them
(this one, or the base interpreter of a venv that only holds bpy).
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

bpy = pytest.importorskip("bpy")
zmq = pytest.importorskip("zmq")

pytestmark = pytest.mark.bpy

REPO = Path(__file__).resolve().parents[2]
CLIP_SCRIPT = """
import sys
import av, numpy as np
path, frames = sys.argv[1], int(sys.argv[2])
with av.open(path, 'w') as c:
    s = c.add_stream('libx264', rate=10)
    s.width, s.height, s.pix_fmt = 128, 96, 'yuv420p'
    y, x = np.mgrid[0:96, 0:128]
    for i in range(frames):
        rgb = np.stack([(x * 2 + i * 8) % 256, (y * 2) % 256, np.full_like(x, 90)], -1).astype(np.uint8)
        rgb[30:80, 50 + i:70 + i] = (200, 150, 120)
        for p in s.encode(av.VideoFrame.from_ndarray(rgb, format='rgb24')):
            c.mux(p)
    for p in s.encode():
        c.mux(p)
"""
JOB_SIZE = 112  # the parity fixture's model input size (fast on CPU)


def server_python() -> str:
    """An interpreter that can run the backend (torch + PyAV + this repo)."""
    candidates = [sys.executable, getattr(sys, "_base_executable", "")]
    for exe in dict.fromkeys(c for c in candidates if c):
        ok = subprocess.run([exe, "-c", "import torch, av, backend.cli"], cwd=REPO, capture_output=True,
                            timeout=120).returncode == 0
        if ok:
            return exe
    pytest.fail(f"no interpreter among {candidates} can import torch, av and backend: the live tests need "
                f"the backend installed beside one of them")


def make_clip(python: str, path: Path, frames: int) -> Path:
    subprocess.run([python, "-c", CLIP_SCRIPT, str(path), str(frames)], check=True, timeout=120)
    return path


def start_server(tmp: Path, smplx: Path, checkpoint: Path):
    """Start `human3r serve` on a free loopback port; return (LocalServer, its endpoint)."""
    from blender_addon.core.local_server import LocalServer, ServerCommand

    server = LocalServer()
    cmd = ServerCommand(executable=server_python(), bind="tcp://127.0.0.1:0", checkpoint=str(checkpoint),
                        smplx=str(smplx), device="cpu", media_roots=(str(tmp),),
                        extra_args=("--results-dir", str(tmp / "results"), "--heartbeat", "0.5"))
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    server.start(cmd, cwd=str(REPO), env=env)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        for line in server.log_tail(50).splitlines():
            if line.startswith("human3r server listening on "):
                return server, line.rsplit(" ", 1)[-1]
        if not server.running:
            break
        time.sleep(0.2)
    log = server.log_tail(30)
    server.stop()
    pytest.fail(f"`human3r serve` did not come up ({server.state()}):\n{log}")


@pytest.fixture(scope="module")
def live_server(tmp_path_factory, synthetic_smplx_path, parity_fixture_dir):
    tmp = tmp_path_factory.mktemp("live")
    make_clip(server_python(), tmp / "clip.mp4", frames=6)
    make_clip(server_python(), tmp / "long.mp4", frames=40)
    server, address = start_server(tmp, synthetic_smplx_path, parity_fixture_dir / "checkpoint.pth")
    yield address, tmp / "clip.mp4"
    server.stop()


def set_prefs(**values):
    prefs = bpy.context.preferences.addons["blender_addon"].preferences
    for k, v in values.items():
        setattr(prefs, k, v)


def drive(live, limit_s: float, max_messages: int = 32, between=lambda: None):
    """Call poll_once like the timer until the job ends; return the slowest call's seconds."""
    t0, slowest = time.monotonic(), 0.0
    while live.is_active():
        assert time.monotonic() - t0 < limit_s, f"job still {live.current().state.value} after {limit_s} s"
        t = time.monotonic()
        live.poll_once(max_messages=max_messages)
        slowest = max(slowest, time.monotonic() - t)
        between()
        time.sleep(0.005)
    return slowest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def live(addon):
    from blender_addon.blender import live

    yield live
    live.forget()


def test_live_job_streams_into_the_scene(live, live_server):
    address, clip = live_server
    set_prefs(server_address=address, timeout_s=10.0)
    settings = bpy.context.scene.human3r
    settings.video_path = str(clip)
    settings.input_size = JOB_SIZE
    from blender_addon.blender import timers

    timers.stop_polling()
    assert bpy.ops.human3r.run() == {"FINISHED"}
    assert bpy.app.timers.is_registered(timers._tick)  # the operator starts the pump (live.start does not)
    session = live.current()
    seen_camera_while_running = False

    def watch():
        nonlocal seen_camera_while_running
        coll = bpy.data.collections.get("clip")
        if live.is_active() and coll is not None and any(o.type == "CAMERA" for o in coll.all_objects):
            seen_camera_while_running = True

    drive(live, limit_s=180, max_messages=2, between=watch)  # 2 messages per tick: results arrive in steps
    assert session.state.value == "done", session.message
    assert seen_camera_while_running, "objects should appear while the job is still streaming"
    assert session.progress.frames_done == 6 and session.progress.frames_total == 6
    coll = bpy.data.collections["clip"]
    types = [o.type for o in coll.all_objects]
    assert types.count("CAMERA") == 1
    people = session.summary["people"]  # the `done` message's count of tracked people
    dropped = session.sink.summary["tracks_dropped"]  # tracks shorter than Min Track (3 frames)
    assert people > dropped and types.count("ARMATURE") == people - dropped  # (the tiny model finds people here)
    cam = next(o for o in coll.all_objects if o.type == "CAMERA")
    assert cam.animation_data.action is not None
    assert bpy.context.scene.frame_end >= bpy.context.scene.frame_start + 5
    assert session.message.startswith("Done: 6 frame(s)")


def test_cancel_stops_the_job_and_keeps_the_partial_import(live, live_server):
    from blender_addon.client import Human3RClient

    address, clip = live_server
    settings = bpy.context.scene.human3r
    settings.input_size = JOB_SIZE
    client = Human3RClient(address, timeout_s=10.0, credit_window=2)  # the server stays at most 2 frames ahead
    session = live.start(str(clip.with_name("long.mp4")), settings.job_options(), settings.import_options(),
                         address=address, client=client)
    deadline = time.monotonic() + 120
    while session.progress.frames_done < 2:
        assert session.active and time.monotonic() < deadline, session.message
        live.poll_once(max_messages=1)
        time.sleep(0.005)
    assert bpy.ops.human3r.cancel() == {"FINISHED"}
    drive(live, limit_s=30)
    assert session.state.value == "cancelled", session.message
    assert 2 <= session.progress.frames_done < 40
    assert any(o.type == "CAMERA" for o in bpy.data.collections["long"].all_objects)


def test_server_not_running_gives_clear_error(live):
    address = f"tcp://127.0.0.1:{free_port()}"
    set_prefs(server_address=address, timeout_s=1.0)
    settings = bpy.context.scene.human3r
    settings.video_path = __file__  # any existing file: nothing will read it
    t0 = time.monotonic()
    assert bpy.ops.human3r.run() == {"FINISHED"}
    slowest = drive(live, limit_s=10)
    session = live.current()
    assert session.state.value == "error" and session.error_code == "server_gone"
    assert f"No Human3R server is answering at {address}" in session.message
    assert time.monotonic() - t0 < 6.0 and slowest < 0.5
    assert not bpy.data.objects


def test_version_mismatch_is_explained(live):
    import msgpack

    from blender_addon.core.protocol import PROTOCOL_VERSION

    router = zmq.Context.instance().socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    newer = msgpack.packb({"v": PROTOCOL_VERSION + 1, "type": "hello", "job": None, "seq": 0,
                           "software": "human3r-server/9", "role": "server"})

    def answer():
        while router.poll(0):
            peer, *_ = router.recv_multipart()
            router.send_multipart([peer, newer])

    set_prefs(server_address=f"tcp://127.0.0.1:{port}", timeout_s=5.0)
    bpy.context.scene.human3r.video_path = __file__
    try:
        assert bpy.ops.human3r.run() == {"FINISHED"}
        drive(live, limit_s=8, between=answer)
    finally:
        router.close(0)
    session = live.current()
    assert session.error_code == "version_mismatch"
    assert "different protocol version" in session.message


def test_dropped_connection_keeps_what_was_imported(live, tmp_path, synthetic_smplx_path, parity_fixture_dir):
    from blender_addon.client import Human3RClient

    clip = make_clip(server_python(), tmp_path / "long.mp4", frames=40)
    server, address = start_server(tmp_path, synthetic_smplx_path, parity_fixture_dir / "checkpoint.pth")
    try:
        settings = bpy.context.scene.human3r
        settings.input_size = JOB_SIZE
        # a 2-frame credit window keeps the server from running ahead, so it is mid-job when killed
        client = Human3RClient(address, timeout_s=1.5, credit_window=2)
        session = live.start(str(clip), settings.job_options(), settings.import_options(), address=address,
                             client=client)
        deadline = time.monotonic() + 120
        while session.progress.frames_done < 2:
            assert session.active and time.monotonic() < deadline, session.message
            live.poll_once(max_messages=1)
            time.sleep(0.005)
        os.kill(server.pid, signal.SIGKILL)
        drive(live, limit_s=15)
    finally:
        server.stop()
    assert session.state.value == "error" and session.error_code == "server_gone", session.message
    assert "Lost the connection" in session.message and "already imported are kept" in session.message
    coll = bpy.data.collections["long"]
    assert any(o.type == "CAMERA" for o in coll.all_objects)  # the partial import stays
    assert session.progress.frames_done < 40


def test_curve_client_key_file_is_read(live, tmp_path):
    public, secret = zmq.curve_keypair()
    path = tmp_path / "client.key_secret"
    path.write_text(f'metadata\ncurve\n    public-key = "{public.decode()}"\n    secret-key = "{secret.decode()}"\n')
    assert live.read_curve_keypair(str(path)) == (public.decode(), secret.decode())
    server_public, _ = zmq.curve_keypair()
    client = live.make_client("tcp://127.0.0.1:5555", server_public.decode(), str(path), timeout_s=1.0)
    assert client.curve_keys == (public, secret)
    client.close()
    (tmp_path / "bad.key").write_text("nothing here")
    with pytest.raises(ValueError, match="not a CurveZMQ key .*human3r keys"):
        live.read_curve_keypair(str(tmp_path / "bad.key"))


def test_loading_a_file_stops_the_job(live):
    address = f"tcp://127.0.0.1:{free_port()}"
    set_prefs(server_address=address, timeout_s=30.0)
    bpy.context.scene.human3r.video_path = __file__
    assert bpy.ops.human3r.run() == {"FINISHED"}
    session = live.current()
    assert session.active
    bpy.ops.wm.read_homefile(use_empty=True)  # fires load_pre like File > Open
    assert not session.active and session.state.value == "cancelled"
    assert "new file was loaded" in session.message
