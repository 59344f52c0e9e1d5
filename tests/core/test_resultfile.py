"""Result files: append + flush per record, torn/corrupt tails stop cleanly."""
from __future__ import annotations

import numpy as np
import pytest

from blender_addon.core import protocol as p
from blender_addon.core.resultfile import ResultFileError, ResultFileReader, ResultFileWriter, read_result


def write_job(path, frames=5):
    with ResultFileWriter(path) as w:
        w.write(p.make_message("header", "j", 0, video={"path": "v.mp4"}, options={}, model={}, smplx={},
                               conventions={}, body_model={"faces": np.zeros((2, 3), np.int32)}))
        for i in range(frames):
            w.write(p.make_message("frame", "j", i + 1, index=i * 2, time=i / 15, camera={}, people={},
                                   points={"xyz": np.full((10, 3), i, np.float32)}))
        w.write(p.make_message("done", "j", frames + 1, frames=frames, people=0))
    return path


def test_whole_file_reads_back(tmp_path):
    res = read_result(write_job(tmp_path / "a.h3r"))
    assert res.header is not None and res.end["type"] == "done" and not res.truncated
    assert [f["index"] for f in res.frames] == [0, 2, 4, 6, 8]
    assert res.frames[3]["points"]["xyz"][0, 0] == 3


def test_every_cut_point_yields_the_whole_records_before_it(tmp_path):
    path = write_job(tmp_path / "a.h3r", frames=3)
    data = path.read_bytes()
    full = list(ResultFileReader(path))
    boundaries, pos = {16}, 16  # file head, then each record: u32 length, u32 crc, payload
    while pos < len(data):
        pos += 8 + int.from_bytes(data[pos:pos + 4], "little")
        boundaries.add(pos)
    cut = tmp_path / "cut.h3r"
    seen_counts = set()
    for size in range(24, len(data), 7):
        cut.write_bytes(data[:size])
        reader = ResultFileReader(cut)
        got = list(reader)
        assert all(g["seq"] == f["seq"] for g, f in zip(got, full))
        assert reader.truncated == (size not in boundaries)
        seen_counts.add(len(got))
    assert seen_counts >= {0, 1, 2, 3, 4}


def test_flipped_byte_stops_at_the_damaged_record(tmp_path):
    path = write_job(tmp_path / "a.h3r", frames=4)
    data = bytearray(path.read_bytes())
    data[-40] ^= 0xFF  # inside the last records
    path.write_bytes(bytes(data))
    res = read_result(path)
    assert res.truncated and "checksum" in res.problem
    assert len(res.frames) >= 3


def test_not_a_result_file(tmp_path):
    bad = tmp_path / "x.h3r"
    bad.write_bytes(b"hello world, not a result")
    with pytest.raises(ResultFileError, match="bad magic"):
        ResultFileReader(bad)
    with pytest.raises(ResultFileError, match="no such"):
        ResultFileReader(tmp_path / "missing.h3r")


def test_records_are_visible_before_close(tmp_path):
    path = tmp_path / "live.h3r"
    w = ResultFileWriter(path)
    w.write(p.make_message("ping"))
    assert len(list(ResultFileReader(path))) == 1  # flushed without closing
    w.close()
