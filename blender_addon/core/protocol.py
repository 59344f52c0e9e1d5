"""Human3R result protocol, version 1 — the one definition used by the backend, the server and the add-on.

This docstring is the specification. `PROTOCOL_VERSION` below must equal the version named in the
first line (a test checks it). The module imports only the standard library, numpy and msgpack, so
the Blender extension ships it unchanged.

Messages
--------
A message is a msgpack map (the *envelope*) plus zero or more raw array buffers. Every envelope has

    v     int   PROTOCOL_VERSION of the sender
    type  str   one of `MessageType`
    job   str | None   job id (None for connection-level messages)
    seq   int   per-job sequence number, 0-based, increasing by one per message of that job
                (connection-level messages use 0)

and the fields of its type (`FIELDS` lists the required ones; extra fields are allowed and ignored
by readers that don't know them, so adding an optional field needs no version bump).

Arrays
------
Anywhere in the field tree, a numpy array is replaced by an *array reference*, a map

    {"__nd__": i, "dtype": "<f4", "shape": [d0, d1, ...]}

where i is the index of its raw buffer (buffer i travels as ZeroMQ frame i + 1, or as record part
i + 1 in a result file). Buffers are C-contiguous, little-endian, of a dtype in `ALLOWED_DTYPES`;
the decoder checks that the byte length equals prod(shape) * itemsize and returns read-only arrays
that view the received bytes (no copy). No pickle, no msgpack-numpy.

Message types (direction: C = client -> server, S = server -> client, F = also stored in .h3r files)
----------------------------------------------------------------------------------------------------
    hello      C,S  handshake: software (str), role ('client'|'server'); a server also sends device,
                    model, limits, heartbeat_s, timeout_s (its peer timeout) and live_sources (list of
                    {name, kind}: the cameras/streams it was configured with; kind = URL scheme). A version mismatch is answered by an `error` with code
                    'version_mismatch', never by silence.
    submit     C    video (str, path on the server), options (map of the engine's `JobOptions`
                    fields such as start, end, stride, precision; an unknown name is refused);
                    optional request (str token echoed in the reply), credits (int, initial window),
                    live (str: the name of a server live source instead of a video; video is then ''
                    and ignored; such a job runs until cancelled or its stream is gone for good)
    accepted   S    job (id), queue_position (int, 0 = running now), result_path (server-side .h3r);
                    also request, video, options (as the server will apply them, limits included),
                    token (str: the job's secret; sent with fetch/cancel from another connection it
                    proves ownership), frame_limit (int|None: the server's frame cap, when it
                    shortened the job). It is a reply with seq 0, outside the job's own numbering: the job's stream
                    (header = seq 0, then +1 per message) is what result files store.
    header     S,F  first message of a job: video (path, width, height, fps, fps_fraction, frame_count,
                    rotation, duration, kind 'video'|'images'|'live'; a live job has path 'live:NAME',
                    source (URL scheme), no frame_count/duration), options, model (name, checkpoint_digest, config, device, dtype),
                    smplx (model settings incl. flat_hand_mean, joint_names), conventions, body_model
                    (faces [F,3] i4, lbs_weights [V,J] f4, parents [J] i4 (-1 for the root),
                    v_template [V,3] f4, shapedirs [V,3,10] f4, exprdirs [V,3,10] f4,
                    J_regressor [J,V] f4; optional posedirs [P,V*3] f4)
    frame      S,F  one processed source frame: index (int, source frame index), time (float, s),
                    camera {cam_to_world [4,4] f4 (OpenCV camera -> world W), K [3,3] f4 (pixels of
                    the original frame), width, height}, people {id [n] i4, score [n] f4,
                    global_orient [n,3], body_pose [n,21,3], left_hand_pose [n,15,3],
                    right_hand_pose [n,15,3], jaw_pose [n,3], leye_pose [n,3], reye_pose [n,3],
                    betas [n,10], expression [n,10], transl [n,3], head_xy [n,2] (original pixels);
                    all f4, axis-angle, world frame, SMPL-X rotating about the shaped pelvis},
                    points {xyz [m,3] f4 world, rgb [m,3] u1, conf [m] f4}
    track      S,F  a finished track: id, first_frame, last_frame, n_frames, betas [10] f4 (robust
                    per-track shape for the rig)
    progress   S    done (int), total (int|None), fps (float), eta_s (float|None), stage (str); a live
                    job's stage is 'live', 'connecting' or 'reconnecting', with decoded, dropped,
                    reconnects (ints), latency_s (float|None) and status (str, for humans)
    done       S,F  last message of a finished job: frames, people, elapsed_s, fps, scene_points
                    {xyz [k,3] f4, rgb [k,3] u1} (voxel-downsampled accumulated cloud); optional
                    warnings (list of str: the video ended early, frames skipped, a frame cap)
                    a live job adds end_reason ('stream_lost'), dropped and reconnects
    error      S,F  code (str, `ErrorCode`), message (str, for humans), frame (int|None: the job
                    stopped before this source frame; earlier frames are valid); a reply to a
                    request carries reply=True and the request's token in `request`; a client-side
                    error (lost server) carries synthetic=True
    cancel     C    stop a job (job = its id); optional token (str, from `accepted`)
    cancelled  S,F  the job stopped on request: frames (int, frames delivered); optional reason
                    (str) when the server, not the client, cancelled it
    status     C,S  request (no fields) / reply: jobs (list of maps: job, state, video,
                    queue_position, frames_done, frames_total, result_path, error_code, mine=True
                    for the caller's own jobs; other clients' queued/running jobs appear only as
                    {job: None, state, queue_position, mine: False}), peers, live_sources (as in hello)
    fetch      C    re-stream a finished job's results from its server-side file (job = its id);
                    optional credits (int), token (str, from `accepted`). Jobs are served only to
                    the client that submitted them (its CurveZMQ key, its connection, or the token)
    credit     C    credits (int): the client may receive that many more `frame` messages of `job`
    ping       C,S  liveness probe; answered by `pong`
    pong       C,S
    heartbeat  C,S  periodic keep-alive; either side treats silence longer than the agreed timeout
                    as a lost peer

A job's stream is: accepted (reply), then header, (frame | track | progress)*, and exactly one of
done / error / cancelled.

Motion clean-up (optional fields, `blender_addon.core.motion`): a refined header carries `refinement`
(map: stage 'offline'|'live', options, ground {applied, evidence 'points'|'feet'|'both'|'given'|'none',
confidence, ...}, smooth {filter, parameters}, foot_lock {...}, reasons [str]) and `conventions.from_raw`
([4][4] floats, raw W -> refined world; an offline refinement also renames `conventions.world`: floor
y = 0, up -y, OpenCV axes, metres). Refined frames may carry people.contacts [n,4] u1 (left heel, left
toe, right heel, right toe; 1 = in contact); in a live stream the frame on which the floor is found
carries ground {from_raw [4,4] f8, evidence, confidence, reasons, frame} and the data stay in W.

World frame W: the OpenCV camera frame of the first processed frame (x right, y down, z forward),
metres as predicted. Result files (.h3r) store the F messages of one job: see `resultfile.py`.
"""
from __future__ import annotations

import enum
import math
from typing import Any, Iterable, Sequence

import msgpack
import numpy as np

PROTOCOL_VERSION = 1

# Size limits (bytes / counts) enforced by the decoder; servers may lower them.
MAX_ENVELOPE_BYTES = 16 * 1024 * 1024
MAX_ARRAY_BYTES = 512 * 1024 * 1024
MAX_ARRAYS = 256
MAX_NDIM = 8
MAX_NESTING = 32

ALLOWED_DTYPES = frozenset({"|u1", "|i1", "|b1", "<u2", "<i2", "<u4", "<i4", "<u8", "<i8", "<f2", "<f4", "<f8"})

_ND = "__nd__"


class MessageType(str, enum.Enum):
    HELLO = "hello"
    SUBMIT = "submit"
    ACCEPTED = "accepted"
    HEADER = "header"
    FRAME = "frame"
    TRACK = "track"
    PROGRESS = "progress"
    DONE = "done"
    ERROR = "error"
    CANCEL = "cancel"
    CANCELLED = "cancelled"
    STATUS = "status"
    FETCH = "fetch"
    CREDIT = "credit"
    PING = "ping"
    PONG = "pong"
    HEARTBEAT = "heartbeat"


class ErrorCode(str, enum.Enum):
    VERSION_MISMATCH = "version_mismatch"
    BAD_MESSAGE = "bad_message"  # not msgpack, not a map, missing/ill-typed field
    BAD_OPTIONS = "bad_options"  # submit options that the engine refuses (the message names the option)
    UNKNOWN_TYPE = "unknown_type"
    TOO_LARGE = "too_large"
    BAD_DTYPE = "bad_dtype"
    BAD_ARRAY = "bad_array"  # shape/length mismatch, bad reference
    PATH_NOT_ALLOWED = "path_not_allowed"
    NOT_FOUND = "not_found"
    BAD_VIDEO = "bad_video"
    QUEUE_FULL = "queue_full"
    TOO_MANY_JOBS = "too_many_jobs"
    UNKNOWN_JOB = "unknown_job"
    JOB_FAILED = "job_failed"
    SERVER_GONE = "server_gone"
    TIMEOUT = "timeout"
    INTERNAL = "internal"
    DISK_FULL = "disk_full"  # the server's results disk is full; the frames before it were sent and kept
    SERVER_STOPPING = "server_stopping"  # the server is shutting down; the job was cancelled
    # Client-side only, never on the wire: why a session ended without a server error.
    CLIENT_FAILED = "client"  # the client could not be made or could not submit (bad key, bad address)
    IMPORT_FAILED = "import_failed"  # building the scene from the results failed (results up to then kept)


TERMINAL_TYPES = frozenset({MessageType.DONE, MessageType.ERROR, MessageType.CANCELLED})
# the types marked F above: what a result file (.h3r) stores of a job's stream
FILE_TYPES = frozenset({MessageType.HEADER, MessageType.FRAME, MessageType.TRACK, *TERMINAL_TYPES})

# Required fields per type and their Python types after decoding (np.ndarray for arrays).
FIELDS: dict[MessageType, dict[str, tuple[type, ...]]] = {
    MessageType.HELLO: {"software": (str,), "role": (str,)},
    MessageType.SUBMIT: {"video": (str,), "options": (dict,)},
    MessageType.ACCEPTED: {"queue_position": (int,), "result_path": (str,)},
    MessageType.HEADER: {"video": (dict,), "options": (dict,), "model": (dict,), "smplx": (dict,),
                         "conventions": (dict,), "body_model": (dict,)},
    MessageType.FRAME: {"index": (int,), "time": (float, int), "camera": (dict,), "people": (dict,),
                        "points": (dict,)},
    MessageType.TRACK: {"id": (int,), "first_frame": (int,), "last_frame": (int,), "n_frames": (int,),
                        "betas": (np.ndarray,)},
    MessageType.PROGRESS: {"done": (int,), "stage": (str,)},
    MessageType.DONE: {"frames": (int,), "people": (int,)},
    MessageType.ERROR: {"code": (str,), "message": (str,)},
    MessageType.CANCEL: {},
    MessageType.CANCELLED: {"frames": (int,)},
    MessageType.STATUS: {},
    MessageType.FETCH: {},
    MessageType.CREDIT: {"credits": (int,)},
    MessageType.PING: {},
    MessageType.PONG: {},
    MessageType.HEARTBEAT: {},
}
JOB_REQUIRED = frozenset({MessageType.ACCEPTED, MessageType.HEADER, MessageType.FRAME, MessageType.TRACK,
                          MessageType.PROGRESS, MessageType.DONE, MessageType.CANCELLED, MessageType.CANCEL,
                          MessageType.FETCH, MessageType.CREDIT})


class ProtocolError(Exception):
    """A message that cannot be accepted; `code` is an `ErrorCode` value for the error reply."""

    def __init__(self, code: ErrorCode | str, message: str):
        super().__init__(message)
        self.code = ErrorCode(code).value
        self.message = message


def make_message(type: MessageType | str, job: str | None = None, seq: int = 0, **fields: Any) -> dict:
    """Build an envelope map: {'v', 'type', 'job', 'seq', **fields} (fields may hold numpy arrays)."""
    msg = {"v": PROTOCOL_VERSION, "type": MessageType(type).value, "job": job, "seq": int(seq)}
    msg.update(fields)
    return msg


def error_message(code: ErrorCode | str, message: str, job: str | None = None, seq: int = 0,
                  frame: int | None = None) -> dict:
    return make_message(MessageType.ERROR, job, seq, code=ErrorCode(code).value, message=message, frame=frame)


# ----------------------------------------------------------------------------------------------------------
# Encoding


def _prepare_array(a: np.ndarray) -> np.ndarray:
    if a.dtype.byteorder == ">":
        a = a.astype(a.dtype.newbyteorder("<"))
    a = np.ascontiguousarray(a)
    if a.dtype.str not in ALLOWED_DTYPES:
        raise ProtocolError(ErrorCode.BAD_DTYPE, f"dtype {a.dtype} ({a.dtype.str}) is not allowed on the wire")
    return a


def encode(msg: dict) -> list[bytes | memoryview]:
    """Encode an envelope into frames: [msgpack envelope, buffer 0, buffer 1, ...].

    Array buffers are memoryviews of the (contiguous, little-endian) arrays: no copy is made for
    arrays that are already in that layout, so callers must not mutate them until sent/written.
    """
    buffers: list[memoryview] = []

    def walk(value: Any, depth: int) -> Any:
        if depth > MAX_NESTING:
            raise ProtocolError(ErrorCode.BAD_MESSAGE, "message nesting too deep")
        if isinstance(value, np.ndarray):
            a = _prepare_array(value)
            buffers.append(memoryview(a).cast("B") if a.size else memoryview(b""))
            return {_ND: len(buffers) - 1, "dtype": a.dtype.str, "shape": list(a.shape)}
        if isinstance(value, dict):
            return {str(k): walk(v, depth + 1) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [walk(v, depth + 1) for v in value]
        if isinstance(value, enum.Enum):
            return value.value
        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, float) and not math.isfinite(value):
            return value  # msgpack carries inf/nan floats fine
        return value

    envelope = walk(msg, 0)
    if len(buffers) > MAX_ARRAYS:
        raise ProtocolError(ErrorCode.TOO_LARGE, f"{len(buffers)} arrays in one message (max {MAX_ARRAYS})")
    packed = msgpack.packb(envelope, use_bin_type=True)
    if len(packed) > MAX_ENVELOPE_BYTES:
        raise ProtocolError(ErrorCode.TOO_LARGE, f"envelope of {len(packed)} bytes (max {MAX_ENVELOPE_BYTES})")
    return [packed, *buffers]


# ----------------------------------------------------------------------------------------------------------
# Decoding


def _as_buffer(frame: Any) -> memoryview:
    """Accept bytes, bytearray, memoryview or a zmq.Frame (anything with `.buffer`)."""
    if hasattr(frame, "buffer") and not isinstance(frame, (bytes, bytearray, memoryview)):
        frame = frame.buffer
    try:
        return memoryview(frame).cast("B")
    except TypeError as exc:
        raise ProtocolError(ErrorCode.BAD_MESSAGE, f"frame is not a byte buffer ({type(frame).__name__})") from exc


def _decode_array(ref: dict, buffers: Sequence[memoryview], used: set[int]) -> np.ndarray:
    idx, dtype, shape = ref.get(_ND), ref.get("dtype"), ref.get("shape")
    if not isinstance(idx, int) or isinstance(idx, bool) or not 0 <= idx < len(buffers):
        raise ProtocolError(ErrorCode.BAD_ARRAY, f"array reference {idx!r} points to no buffer")
    if idx in used:
        raise ProtocolError(ErrorCode.BAD_ARRAY, f"buffer {idx} referenced twice")
    if not isinstance(dtype, str) or dtype not in ALLOWED_DTYPES:
        raise ProtocolError(ErrorCode.BAD_DTYPE, f"dtype {dtype!r} is not allowed (allowed: {sorted(ALLOWED_DTYPES)})")
    if (not isinstance(shape, list) or len(shape) > MAX_NDIM
            or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)):
        raise ProtocolError(ErrorCode.BAD_ARRAY, f"bad array shape {shape!r}")
    dt = np.dtype(dtype)
    count = 1
    for d in shape:
        count *= d
    nbytes = count * dt.itemsize
    if nbytes > MAX_ARRAY_BYTES:
        raise ProtocolError(ErrorCode.TOO_LARGE, f"array of {nbytes} bytes (max {MAX_ARRAY_BYTES})")
    buf = buffers[idx]
    if buf.nbytes != nbytes:
        raise ProtocolError(ErrorCode.BAD_ARRAY,
                            f"buffer {idx} has {buf.nbytes} bytes, shape {shape} of {dtype} needs {nbytes}")
    used.add(idx)
    arr = np.frombuffer(buf, dtype=dt, count=count).reshape(shape)
    arr.flags.writeable = False
    return arr


def decode(frames: Sequence[Any]) -> dict:
    """Decode frames [envelope, *buffers] into a message map with numpy arrays in place.

    Raises ProtocolError with a specific code for anything malformed: not msgpack, not a map, wrong
    version (code 'version_mismatch'), unknown type, missing/ill-typed required field, bad array
    reference, disallowed dtype, byte length not matching the shape, size limits exceeded.
    """
    if not frames:
        raise ProtocolError(ErrorCode.BAD_MESSAGE, "empty message")
    head = _as_buffer(frames[0])
    if head.nbytes > MAX_ENVELOPE_BYTES:
        raise ProtocolError(ErrorCode.TOO_LARGE, f"envelope of {head.nbytes} bytes (max {MAX_ENVELOPE_BYTES})")
    if len(frames) - 1 > MAX_ARRAYS:
        raise ProtocolError(ErrorCode.TOO_LARGE, f"{len(frames) - 1} buffers (max {MAX_ARRAYS})")
    try:
        envelope = msgpack.unpackb(head, raw=False, strict_map_key=True, use_list=True)
    except Exception as exc:  # msgpack raises several unrelated exception types
        raise ProtocolError(ErrorCode.BAD_MESSAGE, f"envelope is not valid msgpack: {exc}") from None
    if not isinstance(envelope, dict):
        raise ProtocolError(ErrorCode.BAD_MESSAGE, f"envelope is a {type(envelope).__name__}, not a map")
    version = envelope.get("v")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ProtocolError(ErrorCode.BAD_MESSAGE, "envelope has no integer protocol version 'v'")
    if version != PROTOCOL_VERSION:
        raise ProtocolError(ErrorCode.VERSION_MISMATCH,
                            f"protocol version {version} is not supported (this side speaks {PROTOCOL_VERSION})")
    buffers = [_as_buffer(f) for f in frames[1:]]
    used: set[int] = set()

    def walk(value: Any, depth: int) -> Any:
        if depth > MAX_NESTING:
            raise ProtocolError(ErrorCode.BAD_MESSAGE, "message nesting too deep")
        if isinstance(value, dict):
            if _ND in value:
                return _decode_array(value, buffers, used)
            return {k: walk(v, depth + 1) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, depth + 1) for v in value]
        return value

    msg = walk(envelope, 0)
    if len(used) != len(buffers):
        raise ProtocolError(ErrorCode.BAD_ARRAY, f"{len(buffers) - len(used)} buffers are not referenced")
    validate(msg)
    return msg


def validate(msg: dict) -> MessageType:
    """Check type, job, seq and the required fields of a decoded message; return its type."""
    try:
        mtype = MessageType(msg.get("type"))
    except ValueError:
        raise ProtocolError(ErrorCode.UNKNOWN_TYPE, f"unknown message type {msg.get('type')!r}") from None
    job, seq = msg.get("job"), msg.get("seq")
    if job is not None and not isinstance(job, str):
        raise ProtocolError(ErrorCode.BAD_MESSAGE, f"'{mtype.value}': job must be a string or nil")
    if mtype in JOB_REQUIRED and not job:
        raise ProtocolError(ErrorCode.BAD_MESSAGE, f"'{mtype.value}' needs a job id")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        raise ProtocolError(ErrorCode.BAD_MESSAGE, f"'{mtype.value}': seq must be a non-negative integer")
    for name, types in FIELDS[mtype].items():
        if name not in msg:
            raise ProtocolError(ErrorCode.BAD_MESSAGE, f"'{mtype.value}' is missing field '{name}'")
        value = msg[name]
        if isinstance(value, bool) and bool not in types:
            raise ProtocolError(ErrorCode.BAD_MESSAGE, f"'{mtype.value}'.{name} has type bool")
        if not isinstance(value, types):
            expected = "/".join(t.__name__ for t in types)
            raise ProtocolError(ErrorCode.BAD_MESSAGE,
                                f"'{mtype.value}'.{name} is {type(value).__name__}, expected {expected}")
    return mtype


def total_bytes(frames: Iterable[bytes | memoryview]) -> int:
    """Size of an encoded message (for limits and throughput figures)."""
    return sum(memoryview(f).nbytes for f in frames)
