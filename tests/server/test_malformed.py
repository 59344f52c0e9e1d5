"""Malformed and hostile input is answered with its specific ErrorCode while the server keeps serving."""
from __future__ import annotations

import msgpack
import numpy as np
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backend.server.app import Server
from backend.server.settings import ServerSettings
from blender_addon.core import protocol
from blender_addon.core.protocol import ErrorCode

from .conftest import GOLDEN, RawDealer, assert_serving, replay_runner

pytestmark = pytest.mark.timeout(120)
CODES = {c.value for c in ErrorCode}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(endpoint, media dir) of one server shared by this module (fast replay runner)."""
    media = tmp_path_factory.mktemp("malformed-media")
    (media / "clip.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(64))
    server = Server(ServerSettings(bind="tcp://127.0.0.1:0", media_roots=(media,),
                                   results_dir=tmp_path_factory.mktemp("malformed-results"),
                                   max_request_bytes=256 * 1024, max_socket_message_bytes=2 * 1024 * 1024,
                                   peer_timeout_s=30),
                    replay_runner(GOLDEN / "tiny.h3r"), options_parser=_options)
    server.start()
    yield server.endpoint, media
    server.stop()


def _options(options: dict) -> dict:
    from backend.engine.options import JobOptions

    JobOptions.from_dict(options)  # the production validation (raises ValueError naming the option)
    return options


@pytest.fixture(scope="module")
def raw(served):
    sock = RawDealer(served[0])
    yield sock
    sock.close()


def _error(raw: RawDealer, frames: list) -> dict:
    raw.send(frames)
    reply = raw.recv()
    assert reply["type"] == "error", reply
    assert reply["code"] in CODES
    return reply


def _env(**fields) -> bytes:
    return msgpack.packb({"v": protocol.PROTOCOL_VERSION, "job": None, "seq": 0, **fields})


@pytest.mark.parametrize("frames,code", [
    ([b""], "bad_message"),
    ([b"\xc1"], "bad_message"),  # never-used msgpack byte
    ([b"\x92\x01\x02"], "bad_message"),  # a list, not a map
    ([msgpack.packb({"type": "ping", "job": None, "seq": 0})], "bad_message"),  # no version
    ([msgpack.packb({"v": 99, "type": "hello", "job": None, "seq": 0, "software": "x", "role": "client"})],
     "version_mismatch"),
    ([msgpack.packb({"v": "1", "type": "ping", "job": None, "seq": 0})], "bad_message"),
    ([_env(type="explode")], "unknown_type"),
    ([_env(type=["ping"])], "unknown_type"),
    ([_env(type="submit", video=123, options={})], "bad_message"),
    ([_env(type="submit", video="/x.mp4", options="fast")], "bad_message"),
    ([_env(type="submit", video="/x.mp4")], "bad_message"),
    ([msgpack.packb({"v": 1, "type": "credit", "job": "j", "seq": 0, "credits": "many"})], "bad_message"),
    ([msgpack.packb({"v": 1, "type": "credit", "job": "j", "seq": 0, "credits": True})], "bad_message"),
    ([msgpack.packb({"v": 1, "type": "ping", "job": 7, "seq": 0})], "bad_message"),
    ([msgpack.packb({"v": 1, "type": "ping", "job": None, "seq": -1})], "bad_message"),
    ([msgpack.packb({"v": 1, "type": "cancel", "job": None, "seq": 0})], "bad_message"),
    ([_env(type="frame", index=0, time=0.0, camera={}, people={}, points={})], "bad_message"),  # not a request
    ([_env(type="ping", a={"__nd__": 0, "dtype": "<c8", "shape": [1]}), b"\0" * 8], "bad_dtype"),
    ([_env(type="ping", a={"__nd__": 0, "dtype": ">f4", "shape": [1]}), b"\0" * 4], "bad_dtype"),
    ([_env(type="ping", a={"__nd__": 0, "dtype": "|O", "shape": [1]}), b"\0" * 8], "bad_dtype"),
    ([_env(type="ping", a={"__nd__": 0, "dtype": "<f4", "shape": [3]}), b"\0" * 8], "bad_array"),
    ([_env(type="ping", a={"__nd__": 1, "dtype": "<f4", "shape": [1]}), b"\0" * 4], "bad_array"),
    ([_env(type="ping", a={"__nd__": 0, "dtype": "<f4", "shape": [-1]}), b""], "bad_array"),
    ([_env(type="ping"), b"unreferenced"], "bad_array"),
    ([_env(type="ping", a={"__nd__": 0, "dtype": "<f4", "shape": [2**40, 2**40]}), b""], "too_large"),
    ([b"\0" * (300 * 1024)], "too_large"),  # above the server's request limit
    ([_env(type="ping")] + [b""] * 300, "too_large"),  # too many buffers
])
def test_malformed_message_gets_its_error_code(raw, served, frames, code):
    assert _error(raw, frames)["code"] == code


def test_wrong_version_hello_is_refused_explicitly(raw):
    raw.send([msgpack.packb({"v": 2, "type": "hello", "job": None, "seq": 0, "software": "future", "role": "client"})])
    reply = raw.recv()
    assert (reply["type"], reply["code"], reply["v"]) == ("error", "version_mismatch", protocol.PROTOCOL_VERSION)
    assert "version 2" in reply["message"]


@pytest.mark.parametrize("video,code", [
    ("/etc/passwd", "path_not_allowed"), ("http://example.com/clip.mp4", "path_not_allowed"),
    ("rtsp://camera/live", "path_not_allowed"), ("concat:/a.mp4|/b.mp4", "path_not_allowed"),
    ("pipe:0", "path_not_allowed"), ("{media}/list.m3u8", "path_not_allowed"),
    ("{media}/../escape.mp4", "path_not_allowed"), ("{media}/missing.mp4", "not_found")])
def test_bad_video_paths_are_refused(raw, served, video, code):
    token = f"t-{code}-{abs(hash(video))}"
    reply = raw.request(protocol.make_message("submit", video=video.format(media=served[1]), options={},
                                              request=token))
    assert (reply["type"], reply["code"], reply["request"]) == ("error", code, token)


def test_bad_options_name_the_option(raw, served):
    for options, name in (({"size": 13}, "size"), ({"sise": 512}, "sise"), ({"end": "x"}, "end"),
                          ({"stride": 0}, "stride")):
        reply = raw.request(protocol.make_message("submit", video=str(served[1] / "clip.mp4"), options=options))
        assert reply["code"] == "bad_options" and name in reply["message"], reply
    assert_serving(served[0])


def test_unknown_jobs(raw):
    assert raw.request(protocol.make_message("cancel", "no-such-job"))["code"] == "unknown_job"
    assert raw.request(protocol.make_message("fetch", "no-such-job"))["code"] == "unknown_job"
    reply = raw.request(protocol.make_message("fetch", "../../etc/passwd"))
    assert reply["code"] == "unknown_job" and reply["job"] == "../../etc/passwd"
    raw.send_msg(protocol.make_message("credit", "no-such-job", credits=5))  # late credits: ignored
    assert raw.request(protocol.make_message("ping", request="p"))["type"] == "pong"


def test_message_above_the_socket_limit_drops_only_that_peer(served):
    big = RawDealer(served[0])
    try:
        big.send([b"\0" * (3 * 1024 * 1024)])  # over ZMQ_MAXMSGSIZE: the connection is closed
        with pytest.raises(TimeoutError):
            big.recv(timeout=0.5)
    finally:
        big.close()
    assert_serving(served[0])


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.binary(max_size=300), min_size=1, max_size=4))
def test_random_bytes_are_answered_not_fatal(raw, frames):
    _error(raw, frames)


_json = st.recursive(st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1) | st.floats() | st.text(max_size=20)
                     | st.binary(max_size=20),
                     lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children,
                                                                                        max_size=4),
                     max_leaves=12)


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from([t.value for t in protocol.MessageType] + ["nope"]),
       st.dictionaries(st.sampled_from(["job", "seq", "video", "options", "credits", "request", "x", "__nd__",
                                        "dtype", "shape"]), _json, max_size=5))
def test_random_envelopes_are_answered_not_fatal(raw, mtype, fields):
    envelope = {"v": protocol.PROTOCOL_VERSION, "type": mtype, "job": None, "seq": 0, **fields}
    raw.send([msgpack.packb(envelope, use_bin_type=True)])
    # a ping right behind it: everything before its pong is the reply (if any) to the random envelope
    token = f"after-{id(envelope)}"
    raw.send_msg(protocol.make_message("ping", request=token))
    while True:
        reply = raw.recv(timeout=5.0)
        assert reply["type"] != "error" or reply["code"] in CODES
        if reply["type"] == "pong" and reply.get("request") == token:
            break


def test_still_serving_after_all_that(served, tmp_path):
    from blender_addon.client import Human3RClient

    assert_serving(served[0])
    with Human3RClient(served[0], timeout_s=5) as client:
        client.connect()
        assert client.run_job(str(served[1] / "clip.mp4"), {}, timeout_s=20)["type"] == "done"
