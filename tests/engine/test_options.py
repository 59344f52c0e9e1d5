"""JobOptions validation."""
from __future__ import annotations

import pytest

from backend.engine.options import JobOptions


def test_defaults_and_round_trip():
    opts = JobOptions()
    assert opts.reset_interval == 100 and opts.ttt3r and opts.conf_threshold == 1.5
    assert JobOptions.from_dict(opts.to_dict()) == opts
    assert JobOptions.from_dict(None) == opts


def test_whole_floats_accepted_for_integers():
    assert JobOptions.from_dict({"stride": 2.0, "conf_threshold": 2}).stride == 2


@pytest.mark.parametrize("bad, name", [
    ({"stride": 0}, "stride"), ({"stride": 1.5}, "stride"), ({"reset_interval": 0}, "reset_interval"),
    ({"start": -1}, "start"), ({"start": 5, "end": 5}, "end"), ({"size": 100}, "size"),
    ({"precision": "fp16"}, "precision"), ({"ttt3r": "yes"}, "ttt3r"), ({"detection_threshold": 2}, "detection_threshold"),
    ({"conf_threshold": float("nan")}, "conf_threshold"), ({"max_points_per_frame": -1}, "max_points_per_frame"),
    ({"scene_voxel_size": 0}, "scene_voxel_size"), ({"point_stride": True}, "point_stride"),
    ({"bogus": 1}, "bogus"),
])
def test_bad_values_name_the_option(bad, name):
    with pytest.raises(ValueError, match=name):
        JobOptions.from_dict(bad)
