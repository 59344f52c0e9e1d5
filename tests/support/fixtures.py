"""Session-scoped pytest fixtures shared by all test folders (imported by tests/conftest.py).

- `synthetic_smplx_path`: a synthetic SMPL-X neutral model file (see `synthetic_smplx.py`), with
  the real file's layout; written once per test session.
- `synthetic_smplx_no_correctives_path`: the same body with zero pose correctives, for checks that
  compare linear blend skinning with the SMPL-X layer.
- `tiny_model` / `fixture_inputs`: the parity fixture's tiny network and its recorded inputs.
- `tiny_engine`: an `Engine` (CPU) with the parity fixture's tiny checkpoint and the synthetic
  SMPL-X model; `tiny_job_options(**overrides)` gives matching `JobOptions` (size 112).
"""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.synthetic_smplx import write_synthetic_smplx


@pytest.fixture(scope="session")
def synthetic_smplx_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path to a synthetic `SMPLX_NEUTRAL.npz` (seed 0), inside a folder laid out like `<dir>/smplx/`."""
    folder = tmp_path_factory.mktemp("smplx_model") / "smplx"
    return write_synthetic_smplx(folder / "SMPLX_NEUTRAL.npz", seed=0)


@pytest.fixture(scope="session")
def synthetic_smplx_no_correctives_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("smplx_model_lbs") / "smplx"
    return write_synthetic_smplx(folder / "SMPLX_NEUTRAL.npz", seed=0, pose_correctives=False)


@pytest.fixture(scope="session")
def tiny_engine(parity_fixture_dir: Path, synthetic_smplx_path: Path):
    """An `Engine` with the parity fixture's tiny checkpoint (112-px model, 168-px DINOv2 input) and the
    synthetic SMPL-X model, on the CPU. Use `tiny_job_options(...)` for matching job options."""
    from backend.engine.stream import Engine

    return Engine.from_paths(parity_fixture_dir / "checkpoint.pth", synthetic_smplx_path, device="cpu")


@pytest.fixture(scope="session")
def tiny_model(parity_fixture_dir: Path):
    """The parity fixture's tiny `Human3R` on the CPU, weights loaded strictly (eval mode)."""
    from backend.parity.model import load_fixture_model

    return load_fixture_model(parity_fixture_dir)


@pytest.fixture(scope="session")
def fixture_inputs(parity_fixture_dir: Path) -> dict:
    """The parity fixture's `inputs.npz`: preprocessed `img` / `img_mhmr` / `reset` per view."""
    import numpy as np

    return dict(np.load(parity_fixture_dir / "inputs.npz"))


def tiny_job_options(**overrides):
    """JobOptions sized for `tiny_engine` (size 112) that keep points even with random weights."""
    from backend.engine.options import JobOptions

    base = {"size": 112, "reset_interval": 3, "conf_threshold": 0.0, "remove_humans_from_points": False}
    base.update(overrides)
    return JobOptions.from_dict(base)


@pytest.fixture
def small_tmpfs(tmp_path: Path):
    """Factory: mount a tmpfs of `size` bytes to fill up (a full disk); skips where mounting is not permitted."""
    import subprocess

    mounts: list[Path] = []

    def mount(size: int) -> Path:
        point = tmp_path / f"tmpfs{len(mounts)}"
        point.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a small tmpfs to fill: {done.stderr.strip()}")
        mounts.append(point)
        return point

    yield mount
    for point in mounts:
        subprocess.run(["umount", "-l", str(point)], check=False)
