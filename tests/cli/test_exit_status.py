"""One exit-status table for every command (`backend.cli.common`): a job's end gives the same status
whether it ran here (`infer`) or on a server (`infer --server`)."""
from __future__ import annotations

import pytest

from backend.cli.common import (
    EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, EXIT_VIDEO, exit_status,
)
from blender_addon.core import protocol
from blender_addon.core.protocol import ErrorCode


@pytest.mark.parametrize("end, status", [
    (protocol.make_message("done", "j", 5, frames=3, people=1), EXIT_OK),
    (protocol.make_message("cancelled", "j", 5, frames=2), EXIT_INTERRUPTED),
    (protocol.make_message("error", "j", 5, code=ErrorCode.BAD_VIDEO.value, message="x"), EXIT_VIDEO),
    (protocol.make_message("error", "j", 5, code=ErrorCode.NOT_FOUND.value, message="x"), EXIT_VIDEO),
    (protocol.make_message("error", "j", 5, code=ErrorCode.PATH_NOT_ALLOWED.value, message="x"), EXIT_VIDEO),
    (protocol.make_message("error", "j", 5, code=ErrorCode.BAD_OPTIONS.value, message="x"), EXIT_USAGE),
    (protocol.make_message("error", "j", 5, code=ErrorCode.JOB_FAILED.value, message="x"), EXIT_FAILED),
    (protocol.make_message("error", None, 0, code=ErrorCode.SERVER_GONE.value, message="x"), EXIT_FAILED),
    (None, EXIT_FAILED),
])
def test_a_jobs_end_gives_one_exit_status(end, status):
    assert exit_status(end) == status


def test_statuses_are_distinct_and_conventional():
    assert (EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_VIDEO, EXIT_INTERRUPTED) == (0, 1, 2, 4, 130)
