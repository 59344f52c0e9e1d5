"""What `human3r batch` is asked to run: video files, image folders, folders to scan, manifests.

Each input becomes one or more `ClipInput`s:

* a video file (or any path that does not exist: it fails later as `bad_video`/`not_found`, alone);
* a folder holding image files: one clip (the image sequence, sorted by name);
* any other folder: scanned recursively for video files and image folders (hidden entries skipped);
* a manifest (`.csv`, `.txt`, `.list`): one clip per line; relative paths are relative to the
  manifest's folder. Text lines are ``PATH [option=value ...]`` (shell quoting; ``#`` comments);
  CSV files have a header row with a ``path`` column, an optional ``name`` column and any job
  option columns (empty cells take the batch's value). Option names are `JobOptions` fields
  (``end``, ``stride``, ``reset_interval``, ...).

Output names are the clip's file or folder name without extension; when two clips would share a
name, each gets a short digest of its absolute path appended, so names do not depend on input order.
"""
from __future__ import annotations

import csv
import dataclasses
import hashlib
import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backend.engine.options import JobOptions
from backend.video.reader import IMAGE_EXTENSIONS

VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".mts",
                              ".m2ts", ".wmv", ".flv", ".3gp", ".ogv", ".gif"})
MANIFEST_EXTENSIONS = frozenset({".csv", ".txt", ".list"})
_OPTION_TYPES = {f.name: f.type for f in dataclasses.fields(JobOptions)}


class InputError(ValueError):
    """An input cannot be understood (missing manifest, bad manifest line, unknown option); the
    message names the file and line."""


@dataclass(frozen=True)
class ClipInput:
    """One clip to run.

    Attributes:
        source: absolute path of the video file or image folder.
        name: output stem (`OUT_DIR/<name>.h3r`).
        options: per-clip option overrides (JobOptions field names), applied over the batch options.
        origin: where the clip was named ("argument" or "manifest.csv:3"), for error messages.
    """

    source: Path
    name: str
    options: dict[str, Any] = field(default_factory=dict)
    origin: str = "argument"


def collect_clips(inputs: list[str | os.PathLike]) -> list[ClipInput]:
    """Expand command-line inputs into clips with unique output names (order kept, duplicates of
    the same source and options dropped).

    Raises:
        InputError: a manifest is missing or malformed, or a folder holds nothing to run.
    """
    clips: list[ClipInput] = []
    for item in inputs:
        path = Path(item).expanduser().absolute()
        if path.suffix.lower() in MANIFEST_EXTENSIONS:
            clips.extend(read_manifest(path))
        elif path.is_dir() and not _holds_images(path):
            found = scan_folder(path)
            if not found:
                raise InputError(f"{path}: no video files or image folders found in this folder "
                                 f"(video extensions: {', '.join(sorted(VIDEO_EXTENSIONS))})")
            clips.extend(found)
        else:
            clips.append(ClipInput(path, _stem(path)))
    return _unique_names(_drop_repeats(clips))


def scan_folder(folder: Path) -> list[ClipInput]:
    """Video files and image folders under `folder` (recursive, sorted, hidden entries skipped)."""
    found: list[ClipInput] = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            found.extend([ClipInput(entry, _stem(entry))] if _holds_images(entry) else scan_folder(entry))
        elif entry.suffix.lower() in VIDEO_EXTENSIONS and entry.is_file():
            found.append(ClipInput(entry, _stem(entry)))
    return found


def read_manifest(path: Path) -> list[ClipInput]:
    """The clips listed in a text or CSV manifest (see the module docstring)."""
    if not path.is_file():
        raise InputError(f"{path}: no such manifest file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read the manifest: {exc}") from None
    rows = _csv_rows(path, text) if path.suffix.lower() == ".csv" else _text_rows(path, text)
    clips = []
    for line_no, raw_path, name, overrides in rows:
        where = f"{path.name}:{line_no}"
        source = Path(raw_path).expanduser()
        source = (source if source.is_absolute() else path.parent / source).absolute()
        options = {key: parse_option_value(key, value, where) for key, value in overrides.items()}
        _check_options(options, where)
        clips.append(ClipInput(source, name or _stem(source), options, where))
    return clips


def parse_option_value(name: str, text: str, where: str = "") -> Any:
    """One manifest option value as the type `JobOptions` declares for `name`."""
    kind = _OPTION_TYPES.get(name)
    if kind is None:
        raise InputError(f"{where}: unknown option '{name}' (known: {', '.join(sorted(_OPTION_TYPES))})")
    value = text.strip()
    try:
        if kind == "bool":
            lowered = value.lower()
            if lowered not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(value)
            return lowered in ("true", "1", "yes")
        if kind == "int | None":
            return None if value.lower() in ("", "none", "null") else int(value)
        if kind == "int":
            return int(value)
        if kind == "float":
            return float(value)
        return value
    except ValueError:
        raise InputError(f"{where}: option '{name}' needs a {kind} value, got {value!r}") from None


def _check_options(options: dict[str, Any], where: str) -> None:
    try:
        JobOptions.from_dict(options)
    except ValueError as exc:
        raise InputError(f"{where}: {exc}") from None


def _text_rows(path: Path, text: str):
    for line_no, line in enumerate(text.splitlines(), 1):
        try:
            tokens = shlex.split(line, comments=True)
        except ValueError as exc:
            raise InputError(f"{path.name}:{line_no}: {exc}") from None
        if not tokens:
            continue
        overrides = {}
        name = None
        for token in tokens[1:]:
            key, sep, value = token.partition("=")
            if not sep:
                raise InputError(f"{path.name}:{line_no}: expected option=value after the path, got {token!r}")
            key = key.strip().replace("-", "_")
            if key == "name":
                name = value.strip()
            else:
                overrides[key] = value
        yield line_no, tokens[0], name, overrides


def _csv_rows(path: Path, text: str):
    reader = csv.DictReader(text.splitlines())
    columns = [c.strip() for c in reader.fieldnames or []]
    if "path" not in columns:
        raise InputError(f"{path.name}: a CSV manifest needs a header row with a 'path' column "
                         f"(found: {', '.join(columns) or 'nothing'})")
    for row in reader:
        row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
        if not row.get("path") or row["path"].startswith("#"):
            continue
        overrides = {k.replace("-", "_"): v for k, v in row.items() if k not in ("path", "name") and v != ""}
        yield reader.line_num, row["path"], row.get("name") or None, overrides


def _holds_images(folder: Path) -> bool:
    try:
        return folder.is_dir() and any(not e.name.startswith(".") and e.suffix.lower() in IMAGE_EXTENSIONS
                                       and e.is_file() for e in folder.iterdir())
    except OSError:
        return False


def _stem(path: Path) -> str:
    return path.stem if path.suffix.lower() in VIDEO_EXTENSIONS or path.is_file() else path.name


def _drop_repeats(clips: list[ClipInput]) -> list[ClipInput]:
    seen, kept = set(), []
    for clip in clips:
        key = (clip.source, tuple(sorted(clip.options.items())), clip.name)
        if key not in seen:
            seen.add(key)
            kept.append(clip)
    return kept


def _unique_names(clips: list[ClipInput]) -> list[ClipInput]:
    counts: dict[str, int] = {}
    for clip in clips:
        counts[clip.name] = counts.get(clip.name, 0) + 1
    out = []
    for clip in clips:
        if counts[clip.name] > 1:
            digest = hashlib.sha1(f"{clip.source}|{sorted(clip.options.items())}".encode()).hexdigest()[:8]
            clip = dataclasses.replace(clip, name=f"{clip.name}-{digest}")
        out.append(clip)
    return out
