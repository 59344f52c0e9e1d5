"""Shared fixtures of the model tests: the parity fixture folder and its (tiny) loaded model."""
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


@pytest.fixture(scope="session")
def tiny_model(parity_dir):
    from backend.model.parity import load_fixture_model

    return load_fixture_model(parity_dir)


@pytest.fixture(scope="session")
def fixture_inputs(parity_dir):
    import numpy as np

    return dict(np.load(parity_dir / "inputs.npz"))
