"""Shared fixtures of the model tests: the parity fixture folder and the state-dict schema (the tiny loaded
model and its inputs are in tests/support/fixtures.py, shared with tests/parity)."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import require_shared


@pytest.fixture(scope="session")
def parity_dir() -> Path:
    return require_shared("fixtures/parity-small/config.json").parent


@pytest.fixture(scope="session")
def state_dict_tsv() -> Path:
    return require_shared("spec/human3r-state-dict.tsv")
