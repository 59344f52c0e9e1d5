"""Shared fixtures of the model tests: the parity fixture folder and the state-dict schema (the tiny loaded
model and its inputs are in tests/support/fixtures.py, shared with tests/parity)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def shared_dir() -> Path:
    return Path(os.environ.get("HUMAN3R_SHARED", REPO.parent / "shared"))


@pytest.fixture(scope="session")
def parity_dir() -> Path:
    folder = shared_dir() / "fixtures" / "parity-small"
    if not (folder / "config.json").is_file():  # fail like tests/conftest.py: a skip would hide a broken CI setup
        pytest.fail(f"parity fixture not found at {folder} (set HUMAN3R_SHARED)")
    return folder


@pytest.fixture(scope="session")
def state_dict_tsv() -> Path:
    path = shared_dir() / "spec" / "human3r-state-dict.tsv"
    if not path.is_file():
        pytest.fail(f"state-dict schema not found at {path} (set HUMAN3R_SHARED)")
    return path
