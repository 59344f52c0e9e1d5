"""Fixtures writing synthetic media into tmp_path (small and fast)."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

from tests.video.media import noise_frame, write_video


@pytest.fixture
def make_video(tmp_path: Path) -> Callable[..., Path]:
    """make_video(name, frames, **write_video options) -> path inside tmp_path."""
    return lambda name, frames, **kw: write_video(tmp_path / name, frames, **kw)


@pytest.fixture
def noisy_clip(tmp_path: Path) -> Callable[..., Path]:
    """noisy_clip(name, n=60, **options): an incompressible 96x64 clip (for cutting and damaging)."""
    def make(name: str, n: int = 60, **kw) -> Path:
        return write_video(tmp_path / name, [noise_frame(96, 64, i) for i in range(n)], **kw)
    return make
