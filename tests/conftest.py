"""Shared pytest fixtures: where ../shared lives, the parity fixture, and the synthetic SMPL-X model."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_path() -> Path:
    """The project's shared data (specs, fixtures, videos): $HUMAN3R_SHARED or ../shared beside the repo."""
    return Path(os.environ.get("HUMAN3R_SHARED", REPO.parent / "shared")).resolve()


# Without the shared data every test that needs it is skipped with this one reason (the rest still runs);
# HUMAN3R_REQUIRE_SHARED=1 (CI sets it) turns the skip into a failure so a broken setup cannot pass.
SHARED_MISSING = (f"shared data (spec/, fixtures/, videos/) not found at {shared_path()}: "
                  f"set HUMAN3R_SHARED or put the shared folder beside the repository")


def require_shared(relative: str = "fixtures") -> Path:
    """The shared file or folder `relative`; skips (or fails under HUMAN3R_REQUIRE_SHARED=1) when absent."""
    path = shared_path() / relative
    if not path.exists():
        if os.environ.get("HUMAN3R_REQUIRE_SHARED") == "1":
            pytest.fail(f"{SHARED_MISSING} (missing: {path})")
        pytest.skip(SHARED_MISSING)
    return path


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return require_shared("fixtures").parent


@pytest.fixture(scope="session")
def parity_fixture_dir(shared_dir: Path) -> Path:
    return shared_dir / "fixtures" / "parity-small"


@pytest.fixture(scope="session")
def tennis_video(shared_dir: Path) -> Path:
    return shared_dir / "videos" / "tennis.mp4"


def _torch_threads_at_start() -> int | None:
    try:  # torch's default (one thread per core) before any test or session fixture changes it
        import torch
    except ImportError:  # the bpy-free, torch-free tiers run without it
        return None
    return torch.get_num_threads()


_THREADS_AT_START = _torch_threads_at_start()


@pytest.fixture(autouse=True)
def _keep_torch_threads():
    """Commands under test set torch's thread count for the whole process (`Engine.use_cpu_threads`);
    put it back after every test, to what the session started with (a session fixture that runs a
    command must not change it for the rest of the run either), so that later tests (bit-exact parity
    at the fixture's thread count) are unaffected."""
    import sys

    torch = sys.modules.get("torch")
    before = _THREADS_AT_START if _THREADS_AT_START is not None else (
        torch.get_num_threads() if torch is not None else None)
    yield
    torch = sys.modules.get("torch")
    if torch is not None and before is not None and torch.get_num_threads() != before:
        torch.set_num_threads(before)


# fixtures of the engine's test support (synthetic SMPL-X model etc.); an import error here must stop the run
from tests.support.fixtures import *  # noqa: E402,F401,F403
