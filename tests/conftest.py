"""Shared pytest fixtures: where ../shared lives, the parity fixture, and the synthetic SMPL-X model."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_path() -> Path:
    """The project's shared data (specs, fixtures, videos): $HUMAN3R_SHARED or ../shared beside the repo."""
    return Path(os.environ.get("HUMAN3R_SHARED", REPO.parent / "shared")).resolve()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    path = shared_path()
    if not (path / "fixtures").is_dir():
        pytest.fail(f"shared data not found at {path}; set HUMAN3R_SHARED to the folder holding spec/, fixtures/, videos/")
    return path


@pytest.fixture(scope="session")
def parity_fixture_dir(shared_dir: Path) -> Path:
    return shared_dir / "fixtures" / "parity-small"


@pytest.fixture(scope="session")
def tennis_video(shared_dir: Path) -> Path:
    return shared_dir / "videos" / "tennis.mp4"


@pytest.fixture(autouse=True)
def _keep_torch_threads():
    """Commands under test set torch's thread count for the whole process (`Engine.use_cpu_threads`);
    put it back so that later tests (bit-exact parity at the fixture's thread count) are unaffected."""
    import sys

    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch is not None else None
    yield
    torch = sys.modules.get("torch")
    if torch is not None and before is not None and torch.get_num_threads() != before:
        torch.set_num_threads(before)


# fixtures of the engine's test support (synthetic SMPL-X model etc.); an import error here must stop the run
from tests.support.fixtures import *  # noqa: E402,F401,F403
