"""The array codec and envelope validation of blender_addon/core/protocol.py."""
from __future__ import annotations

import msgpack
import numpy as np
import pytest

from blender_addon.core import protocol as p


def frame_message() -> dict:
    rng = np.random.default_rng(0)
    return p.make_message(
        "frame", "job-1", 7, index=12, time=0.4,
        camera={"cam_to_world": np.eye(4, dtype=np.float32), "K": np.diag([500.0, 500.0, 1.0]).astype(np.float32),
                "width": 812, "height": 720},
        people={"id": np.array([3, 5], np.int32), "body_pose": rng.normal(size=(2, 21, 3)).astype(np.float32)},
        points={"xyz": rng.normal(size=(100, 3)).astype(np.float32),
                "rgb": rng.integers(0, 255, (100, 3), dtype=np.uint8),
                "conf": np.ones(100, np.float32)},
    )


def test_round_trip_keeps_values_dtypes_and_shapes():
    msg = frame_message()
    out = p.decode(p.encode(msg))
    assert out["type"] == "frame" and out["job"] == "job-1" and out["seq"] == 7 and out["index"] == 12
    for group in ("camera", "people", "points"):
        for name, value in msg[group].items():
            if isinstance(value, np.ndarray):
                assert out[group][name].dtype == value.dtype
                np.testing.assert_array_equal(out[group][name], value)
            else:
                assert out[group][name] == value


def test_decoded_arrays_view_the_received_bytes_and_are_read_only():
    frames = p.encode(frame_message())
    out = p.decode([bytes(f) for f in frames])
    assert not out["points"]["xyz"].flags.writeable
    assert out["points"]["xyz"].base is not None  # frombuffer view, not a copy


def test_big_endian_and_non_contiguous_arrays_are_normalised():
    a = np.arange(12, dtype=">f4").reshape(3, 4).T
    out = p.decode(p.encode(p.make_message("track", "j", 0, id=1, first_frame=0, last_frame=3, n_frames=4, betas=a)))
    assert out["betas"].dtype == np.dtype("<f4")
    np.testing.assert_array_equal(out["betas"], a.astype("<f4"))


def test_empty_arrays_round_trip():
    out = p.decode(p.encode(p.make_message("frame", "j", 0, index=0, time=0.0, camera={}, people={},
                                           points={"xyz": np.zeros((0, 3), np.float32)})))
    assert out["points"]["xyz"].shape == (0, 3)


@pytest.mark.parametrize("dtype", [np.complex64, object, "U4", "datetime64[s]"])
def test_disallowed_dtypes_are_refused_on_encode(dtype):
    arr = np.zeros(3, dtype=dtype)
    with pytest.raises(p.ProtocolError) as err:
        p.encode(p.make_message("track", "j", 0, id=1, first_frame=0, last_frame=0, n_frames=1, betas=arr))
    assert err.value.code == "bad_dtype"


def forged(ref: dict, buffer: bytes) -> list:
    env = p.make_message("track", "j", 0, id=1, first_frame=0, last_frame=0, n_frames=1, betas=ref)
    return [msgpack.packb(env, use_bin_type=True), buffer]


@pytest.mark.parametrize("ref,buffer,code", [
    ({"__nd__": 0, "dtype": "<f4", "shape": [10]}, b"\0" * 39, "bad_array"),      # one byte short
    ({"__nd__": 0, "dtype": "<f4", "shape": [10]}, b"\0" * 41, "bad_array"),      # one byte long
    ({"__nd__": 0, "dtype": "|O", "shape": [1]}, b"\0" * 8, "bad_dtype"),
    ({"__nd__": 0, "dtype": ">f4", "shape": [1]}, b"\0" * 4, "bad_dtype"),
    ({"__nd__": 1, "dtype": "<f4", "shape": [1]}, b"\0" * 4, "bad_array"),        # no such buffer
    ({"__nd__": 0, "dtype": "<f4", "shape": [-1]}, b"\0" * 4, "bad_array"),
    ({"__nd__": 0, "dtype": "<f4", "shape": [1 << 40]}, b"\0" * 4, "too_large"),
])
def test_forged_array_references_get_specific_codes(ref, buffer, code):
    with pytest.raises(p.ProtocolError) as err:
        p.decode(forged(ref, buffer))
    assert err.value.code == code


def test_unreferenced_buffers_are_refused():
    frames = p.encode(p.make_message("ping"))
    with pytest.raises(p.ProtocolError) as err:
        p.decode([frames[0], b"extra"])
    assert err.value.code == "bad_array"


@pytest.mark.parametrize("envelope,code", [
    (b"\xc1", "bad_message"),                                     # never-used msgpack byte
    (msgpack.packb([1, 2, 3]), "bad_message"),                     # not a map
    (msgpack.packb({"type": "ping", "job": None, "seq": 0}), "bad_message"),   # no version
    (msgpack.packb({"v": p.PROTOCOL_VERSION + 1, "type": "ping", "job": None, "seq": 0}), "version_mismatch"),
    (msgpack.packb({"v": p.PROTOCOL_VERSION, "type": "launch", "job": None, "seq": 0}), "unknown_type"),
    (msgpack.packb({"v": p.PROTOCOL_VERSION, "type": "submit", "job": None, "seq": 0, "video": 3,
                    "options": {}}), "bad_message"),               # wrong field type
    (msgpack.packb({"v": p.PROTOCOL_VERSION, "type": "submit", "job": None, "seq": 0}), "bad_message"),
    (msgpack.packb({"v": p.PROTOCOL_VERSION, "type": "cancel", "job": None, "seq": 0}), "bad_message"),  # no job
    (msgpack.packb({"v": p.PROTOCOL_VERSION, "type": "ping", "job": None, "seq": -1}), "bad_message"),
    (msgpack.packb({1: 2}), "bad_message"),                        # non-string keys
])
def test_malformed_envelopes_get_specific_codes(envelope, code):
    with pytest.raises(p.ProtocolError) as err:
        p.decode([envelope])
    assert err.value.code == code


def test_oversize_envelope_is_refused_without_parsing(monkeypatch):
    monkeypatch.setattr(p, "MAX_ENVELOPE_BYTES", 64)
    with pytest.raises(p.ProtocolError) as err:
        p.decode([b"\x80" * 65])
    assert err.value.code == "too_large"


def test_every_required_field_is_checked():
    for mtype, fields in p.FIELDS.items():
        for missing in fields:
            msg = {"v": p.PROTOCOL_VERSION, "type": mtype.value, "job": "j", "seq": 0}
            msg.update({k: ("x" if str in t else {} if dict in t else 1) for k, t in fields.items() if k != missing})
            with pytest.raises(p.ProtocolError, match=missing):
                p.validate(msg)


def test_docstring_names_the_current_version():
    first_line = p.__doc__.strip().splitlines()[0]
    assert f"version {p.PROTOCOL_VERSION}" in first_line
