"""Results on the output storage: names, resume keys, completion records, temporary files.

For a clip named N in OUT_DIR:

* ``N.h3r`` is the result, written by the same writer as `human3r infer`. It appears only by an
  atomic rename of a finished attempt (a clip that failed on bad input keeps the frames before the
  failure, like `infer`).
* ``N.h3r.json`` is the completion record, written (atomically) after the rename: the resume key,
  status ``done`` or ``failed``, frames, seconds, error, and the result's size.
* ``.N.h3r.<attempt>.part`` is an attempt's temporary file. Names are unique per attempt, so an
  attempt that died on a lost node can never collide with its retry.

A clip is finished when its record holds the current key and status ``done`` with the result file
present at the recorded size, or status ``failed`` (bad input) unless failures are retried. The key
digests everything that decides the result: the job options, the checkpoint digest, the record
format, and the source's identity (path, size and modification time of the file, or of every image
of a folder).
"""
from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

RECORD_FORMAT = 1
RECORD_SUFFIX = ".h3r.json"
PART_SUFFIX = ".part"
STALE_PART_S = 600.0  # a live attempt flushes its file every frame; one untouched this long is dead


def result_path(out_dir: Path, name: str) -> Path:
    return out_dir / f"{name}.h3r"


def record_path(out_dir: Path, name: str) -> Path:
    return out_dir / f"{name}{RECORD_SUFFIX}"


def attempt_path(out_dir: Path, name: str, attempt: int) -> Path:
    """A fresh temporary name for attempt number `attempt` (1-based) of clip `name`."""
    return out_dir / f".{name}.h3r.{attempt}-{uuid.uuid4().hex[:8]}{PART_SUFFIX}"


def source_identity(source: Path) -> list:
    """What identifies the clip's input bytes without reading them: [name, size, mtime_ns] of the file,
    or of every regular file of an image folder (sorted). Empty when the source is missing."""
    try:
        if source.is_dir():
            entries = sorted(e for e in source.iterdir() if e.is_file() and not e.name.startswith("."))
            return [[e.name, *_stat_facts(e)] for e in entries]
        return [[source.name, *_stat_facts(source)]]
    except OSError:
        return []


def _stat_facts(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


def resume_key(source: Path, options: dict[str, Any], checkpoint_digest: str) -> str:
    """Hex sha256 over everything that decides a clip's result (see the module docstring)."""
    blob = json.dumps({"format": RECORD_FORMAT, "source": str(source), "identity": source_identity(source),
                       "options": options, "checkpoint": checkpoint_digest}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def read_record(out_dir: Path, name: str) -> dict | None:
    """The clip's completion record, or None when missing or unreadable."""
    try:
        record = json.loads(record_path(out_dir, name).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def is_finished(out_dir: Path, name: str, key: str, retry_failed: bool) -> dict | None:
    """The record when the clip needs no work for `key` (see the module docstring), else None."""
    record = read_record(out_dir, name)
    if record is None or record.get("key") != key:
        return None
    if record.get("status") == "done":
        try:
            size = result_path(out_dir, name).stat().st_size
        except OSError:
            return None
        return record if size == record.get("size") else None
    if record.get("status") == "failed" and not retry_failed:
        return record
    return None


def write_json_atomic(path: Path, data: dict) -> None:
    """Write JSON to a temporary sibling, fsync, and rename it over `path`."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def publish(part: Path, out_dir: Path, name: str, record: dict) -> None:
    """Rename a finished attempt's file to `N.h3r` (when `part` is given) and write its record."""
    final = result_path(out_dir, name)
    if part is not None:
        os.replace(part, final)
        _fsync_dir(out_dir)
        record = {**record, "size": final.stat().st_size}
    write_json_atomic(record_path(out_dir, name), {**record, "format": RECORD_FORMAT})


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_quietly(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def clean_stale_parts(out_dir: Path, older_than_s: float = STALE_PART_S) -> list[Path]:
    """Delete attempt files not written to for `older_than_s` seconds (orphans of dead attempts);
    returns what was removed. Younger ones may belong to a batch still running into `out_dir`."""
    removed = []
    now = time.time()
    for entry in out_dir.glob(f".*.h3r.*{PART_SUFFIX}"):
        try:
            if now - entry.stat().st_mtime >= older_than_s:
                entry.unlink()
                removed.append(entry)
        except FileNotFoundError:
            continue
    return removed
