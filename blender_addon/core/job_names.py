"""Names of a job's collection when the same video (or job name) is imported again.

Blender would append `.001`, `.002` to a name already taken, which says nothing about which run is
which and repeats down into every object ("clip camera.001"). Instead, a re-run either gets the next
version name ("clip v2", "clip v3": the objects inside are named after it) or replaces the previous
runs (their collections and data are removed first), as the user chooses (`RERUN_CHOICES`).
"""
from __future__ import annotations

import re
from collections.abc import Iterable


def _version_pattern(base: str) -> re.Pattern:
    return re.compile(rf"{re.escape(base)}(?: v(?P<version>\d+)|\.(?P<copy>\d{{3}}))?")


def version_of(name: str, base: str) -> int | None:
    """The run number `name` stands for among the runs of `base`: 1 for `base` itself (and for
    Blender's `base.001` copies), N for `base vN`; None when `name` is not a run of `base`."""
    match = _version_pattern(base).fullmatch(name)
    if match is None:
        return None
    return int(match["version"]) if match["version"] else 1


def runs_of(base: str, names: Iterable[str]) -> list[str]:
    """The names among `names` that are runs of `base` (see `version_of`)."""
    return [n for n in names if version_of(n, base) is not None]


def next_version_name(base: str, taken: Iterable[str]) -> str:
    """`base` when no run of it exists, else `base vN` with N one above the highest run."""
    versions = [v for v in (version_of(n, base) for n in taken) if v is not None]
    return base if not versions else f"{base} v{max(versions) + 1}"
