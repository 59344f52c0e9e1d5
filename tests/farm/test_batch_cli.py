"""`human3r batch` argument and input errors: told before Ray or the model start, with exit status 2
(usage) or 3 (model files)."""
from __future__ import annotations

import pytest

from backend.cli import main


@pytest.fixture
def clip(tmp_path):
    path = tmp_path / "clip.mp4"
    path.write_bytes(b"not decoded before the checks below")
    return path


@pytest.mark.parametrize("extra, message", [
    (["--workers", "0"], "--workers must be >= 1"),
    (["--retries", "-1"], "--retries must be >= 0"),
    (["--stride", "0"], "option 'stride' must be >= 1"),
    (["--threads", "0"], "--threads must be >= 1"),
])
def test_bad_options(tmp_path, clip, capsys, extra, message):
    assert main(["batch", str(clip), "-o", str(tmp_path / "out"), *extra]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_output_is_a_file(tmp_path, clip, capsys):
    (tmp_path / "out").write_text("")
    assert main(["batch", str(clip), "-o", str(tmp_path / "out")]) == 2
    assert "is a file; give a folder" in capsys.readouterr().err


def test_bad_manifest_line(tmp_path, capsys):
    manifest = tmp_path / "jobs.txt"
    manifest.write_text("a.mp4\nb.mp4 strid=2\n")
    assert main(["batch", str(manifest), "-o", str(tmp_path / "out")]) == 2
    assert "jobs.txt:2: unknown option 'strid'" in capsys.readouterr().err


def test_missing_smplx_model(tmp_path, clip, capsys):
    assert main(["batch", str(clip), "-o", str(tmp_path / "out"), "--smplx", str(tmp_path / "nowhere")]) == 3
    assert "nowhere" in capsys.readouterr().err
