"""JobOptions validation, and the command-line flags that map onto it."""
from __future__ import annotations

import dataclasses

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


def test_flags_map_one_to_one_onto_options_with_their_defaults():
    import argparse

    from backend.engine.options import CLEANUP_FLAG_NAMES, OPTION_NAMES, add_model_arguments, options_from_args

    parser = argparse.ArgumentParser()
    add_model_arguments(parser)
    dests = {a.dest for a in parser._actions if a.dest != "help"}
    assert dests == set(OPTION_NAMES) | set(CLEANUP_FLAG_NAMES) and set(OPTION_NAMES) <= {f.name for f in dataclasses.fields(JobOptions)}
    assert JobOptions.from_dict(options_from_args(parser.parse_args([]))) == JobOptions()
    args = parser.parse_args(["--max-points", "7", "--no-ttt3r", "--keep-human-points", "--precision", "bf16",
                              "--voxel-size", "0.5", "--end", "9"])
    options = JobOptions.from_dict(options_from_args(args))
    assert (options.max_points_per_frame, options.ttt3r, options.remove_humans_from_points, options.precision,
            options.scene_voxel_size, options.end) == (7, False, False, "bf16", 0.5, 9)
