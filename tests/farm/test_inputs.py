"""Batch inputs (no Ray): folders, manifests with per-clip options, names, and their errors."""
from __future__ import annotations

from pathlib import Path

import pytest

from backend.farm.inputs import InputError, collect_clips


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_folder_scan_finds_videos_and_image_folders(tmp_path):
    touch(tmp_path / "shoot" / "b.mp4")
    touch(tmp_path / "shoot" / "a.MOV")
    touch(tmp_path / "shoot" / "notes.md")
    touch(tmp_path / "shoot" / ".hidden.mp4")
    touch(tmp_path / "shoot" / "day2" / "c.mkv")
    touch(tmp_path / "shoot" / "day2" / "seq" / "0001.png")
    touch(tmp_path / "shoot" / "day2" / "seq" / "0002.png")
    clips = collect_clips([tmp_path / "shoot"])
    assert [(c.name, c.source.relative_to(tmp_path).as_posix()) for c in clips] == [
        ("a", "shoot/a.MOV"), ("b", "shoot/b.mp4"), ("c", "shoot/day2/c.mkv"), ("seq", "shoot/day2/seq")]
    # an image folder named directly is one clip, not a folder to scan
    assert [c.name for c in collect_clips([tmp_path / "shoot" / "day2" / "seq"])] == ["seq"]


def test_empty_folder_is_an_input_error(tmp_path):
    touch(tmp_path / "empty" / "readme.txt")
    with pytest.raises(InputError, match="no video files"):
        collect_clips([tmp_path / "empty"])


def test_text_manifest_with_options(tmp_path):
    touch(tmp_path / "media" / "one.mp4")
    touch(tmp_path / "media" / "my clip.mp4")
    manifest = tmp_path / "media" / "list.txt"
    manifest.write_text("# clips for the shoot\n"
                        "one.mp4 end=40 stride=2 ttt3r=false\n"
                        "\n"
                        "'my clip.mp4' name=hero detection-threshold=0.5 end=none\n"
                        "/abs/missing.mp4\n")
    clips = collect_clips([manifest])
    assert [(c.name, c.options, c.origin) for c in clips] == [
        ("one", {"end": 40, "stride": 2, "ttt3r": False}, "list.txt:2"),
        ("hero", {"detection_threshold": 0.5, "end": None}, "list.txt:4"),
        ("missing", {}, "list.txt:5")]
    assert clips[1].source == tmp_path / "media" / "my clip.mp4"  # relative to the manifest


def test_csv_manifest(tmp_path):
    manifest = tmp_path / "jobs.csv"
    manifest.write_text("path,name,start,reset_interval,precision\n"
                        "a.mp4,,10,,bf16\n"
                        "b.mp4,bee,,50,\n")
    clips = collect_clips([manifest])
    assert [(c.name, c.options) for c in clips] == [("a", {"start": 10, "precision": "bf16"}),
                                                   ("bee", {"reset_interval": 50})]


@pytest.mark.parametrize("line, message", [
    ("a.mp4 frames=3", "list.txt:1: unknown option 'frames'"),
    ("a.mp4 stride=two", "list.txt:1: option 'stride' needs a int value"),
    ("a.mp4 stride=0", "list.txt:1: option 'stride' must be >= 1"),
    ("a.mp4 end", "list.txt:1: expected option=value"),
    ("'a.mp4", "list.txt:1: No closing quotation"),
])
def test_bad_manifest_lines_name_file_and_line(tmp_path, line, message):
    manifest = tmp_path / "list.txt"
    manifest.write_text(line + "\n")
    with pytest.raises(InputError) as info:
        collect_clips([manifest])
    assert message in str(info.value)


def test_csv_needs_a_path_column(tmp_path):
    (tmp_path / "m.csv").write_text("file,end\na.mp4,3\n")
    with pytest.raises(InputError, match="'path' column"):
        collect_clips([tmp_path / "m.csv"])


def test_missing_manifest(tmp_path):
    with pytest.raises(InputError, match="no such manifest"):
        collect_clips([tmp_path / "nope.csv"])


def test_same_names_get_path_digests_and_repeats_drop(tmp_path):
    a, b = touch(tmp_path / "x" / "take.mp4"), touch(tmp_path / "y" / "take.mp4")
    clips = collect_clips([a, b, a])
    assert len(clips) == 2 and clips[0].name != clips[1].name
    assert all(c.name.startswith("take-") and len(c.name) == len("take-") + 8 for c in clips)
    assert [c.name for c in collect_clips([b, a])] == [clips[1].name, clips[0].name]  # order-independent
