"""Keep the server's results folder bounded: delete old result files, and the oldest ones over a size budget.

A server left running for days writes one `.h3r` per job (tens of MB to GB each). After every job, and
at start-up, `prune_results` deletes result files older than the age limit, then the oldest remaining
ones until the folder fits the size budget. It only touches files named like this server's results
(`<job id>.h3r`); files of queued, running or currently fetched jobs are never deleted. A client
fetching a pruned job gets `unknown_job` ("no results ... on this server").
"""
from __future__ import annotations

import logging
import os
import re
import time
from pathlib import Path
from typing import Iterable

from .ownership import OWNER_SUFFIX

log = logging.getLogger(__name__)

RESULT_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,80}\.h3r$")  # what `Server` names result files


def prune_results(folder: Path, max_age_s: float, max_bytes: int, protected: Iterable[Path] = (),
                  now: float | None = None) -> list[Path]:
    """Delete result files in `folder` by age, then oldest first down to `max_bytes`.

    Args:
        folder: the results folder (missing: nothing to do).
        max_age_s: files last modified longer ago are deleted; 0 = no age limit.
        max_bytes: budget for all result files together; 0 = no size limit.
        protected: files that must stay (queued, running and fetched jobs).
        now: the current time (seconds since the epoch), for tests.
    Returns:
        the deleted files, oldest first. Files that cannot be deleted are logged and skipped.
    """
    now = time.time() if now is None else now
    keep = {Path(p).resolve() for p in protected}
    files = []
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return []
    for entry in entries:
        if not RESULT_NAME.match(entry.name) or not entry.is_file(follow_symlinks=False):
            continue
        path = Path(entry.path)
        if path.resolve() in keep:
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
        files.append((st.st_mtime, st.st_size, path))
    files.sort()  # oldest first
    total = sum(size for _, size, _ in files) + sum(_size(p) for p in keep if p.parent == Path(folder).resolve())
    deleted = []
    for mtime, size, path in files:
        too_old = max_age_s > 0 and now - mtime > max_age_s
        over_budget = max_bytes > 0 and total > max_bytes
        if not (too_old or over_budget):
            continue
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:  # e.g. still open on Windows: try again after the next job
            log.warning("cannot delete old result %s: %s", path, exc)
            continue
        total -= size
        deleted.append(path)
        path.with_suffix(OWNER_SUFFIX).unlink(missing_ok=True)  # who owned it (see ownership.py)
    if deleted:
        log.info("deleted %d old result file(s) from %s; %.1f MB left", len(deleted), folder, total / 1e6)
    return deleted


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
