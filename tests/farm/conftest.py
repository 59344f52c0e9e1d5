"""Fixtures of the batch tests: the synthetic clips and `human3r infer`'s results on them."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.farm.clips import TINY_FLAGS, make_clips


@pytest.fixture(scope="session")
def farm_clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Output name -> source path of the six inputs of `tests.farm.clips.make_clips`."""
    return make_clips(tmp_path_factory.mktemp("farm_clips"))


@pytest.fixture(scope="session")
def infer_reference(farm_clips, parity_fixture_dir, synthetic_smplx_path, tmp_path_factory) -> dict[str, Path]:
    """Output name -> the .h3r `human3r infer` writes for each good clip (tiny model, 1 CPU thread)."""
    from backend.cli import main

    out = tmp_path_factory.mktemp("infer_reference")
    results = {}
    for name, source in farm_clips.items():
        if name == "broken":
            continue
        path = out / f"{name}.h3r"
        code = main(["infer", str(source), "-o", str(path), "--checkpoint", str(parity_fixture_dir / "checkpoint.pth"),
                     "--smplx", str(synthetic_smplx_path), "--device", "cpu", "--threads", "1", "--quiet", *TINY_FLAGS])
        assert code == 0, name
        results[name] = path
    return results
