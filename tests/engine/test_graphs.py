"""Compiled stages (torch.compile; CUDA graphs on a GPU) and the `--no-graphs` escape hatch."""
from __future__ import annotations

import argparse
import copy
import os

import numpy as np
import pytest
import torch

from backend.cli.common import add_model_file_arguments
from backend.model.graphs import STAGES, compile_mode, use_graphs, without_graphs
from backend.parity.model import load_fixture_model, run_views
from tests.support.fixtures import tiny_job_options

VIEWS = 4  # of the parity fixture: people appear and disappear, so the decoder sees several counts
REL_TOL = 1e-4  # fp32: compiled kernels may fuse and reorder reductions


def _is_eager(model) -> bool:
    return not any(name in vars(model) for name in STAGES) and not getattr(model, "graphs", False)


def test_no_graphs_is_the_default_on_cpu_and_runs_eager(tiny_engine):
    assert compile_mode(torch.device("cpu")) == "default" and compile_mode(torch.device("cuda")) == "reduce-overhead"
    assert tiny_engine.graphs is False  # CPU: eager unless asked
    assert _is_eager(tiny_engine.model_for(tiny_job_options()))


def test_the_no_graphs_flag():
    parser = argparse.ArgumentParser()
    add_model_file_arguments(parser)
    assert parser.parse_args([]).graphs is None  # the engine decides: on for CUDA
    assert parser.parse_args(["--no-graphs"]).graphs is False


def test_graphs_are_applied_once_and_a_copy_can_drop_them(parity_fixture_dir):
    model = use_graphs(load_fixture_model(parity_fixture_dir))
    encode = model.encode
    assert use_graphs(model).encode is encode and not _is_eager(model)
    assert _is_eager(without_graphs(copy.deepcopy(model)))


def _max_relative_error(ref, got) -> dict[str, float]:
    errors = {}
    for a, b in zip(ref, got):
        for key, value in vars(a).items():
            if isinstance(value, torch.Tensor) and value.is_floating_point():
                other = getattr(b, key)
                assert other.shape == value.shape, key
                scale = max(float(value.abs().max()), 1e-6)
                errors[key] = max(errors.get(key, 0.0), float((value - other).abs().max()) / scale)
    return errors


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("HUMAN3R_TEST_COMPILE") != "1",
                    reason="inductor compiles for minutes on a CPU; set HUMAN3R_TEST_COMPILE=1 to run it")
def test_compiled_stages_match_eager_on_the_tiny_preset(parity_fixture_dir):
    """torch.compile (default mode, inductor) on CPU: the same outputs as eager within fp32 rounding,
    people counts and track ids equal, over views whose person count changes."""
    inputs = {k: v[:VIEWS] for k, v in np.load(parity_fixture_dir / "inputs.npz").items()}
    eager = load_fixture_model(parity_fixture_dir)
    ref = run_views(eager, inputs, True)
    got = run_views(use_graphs(copy.deepcopy(eager)), inputs, True)
    assert [int(o.smpl_rotmat.shape[1]) for o in got] == [int(o.smpl_rotmat.shape[1]) for o in ref]
    errors = _max_relative_error(ref, got)
    assert max(errors.values()) < REL_TOL, errors


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA: CUDA graphs (mode reduce-overhead)")
def test_cuda_graphs_match_eager_on_the_gpu(parity_fixture_dir):
    inputs = {k: v[:VIEWS] for k, v in np.load(parity_fixture_dir / "inputs.npz").items()}
    eager = load_fixture_model(parity_fixture_dir).to("cuda")
    ref = run_views(eager, inputs, True)
    compiled = use_graphs(copy.deepcopy(eager))
    captured = run_views(compiled, inputs, True)
    replayed = run_views(compiled, inputs, True)
    for run in (captured, replayed):  # replays (not only captures) give the eager answer
        errors = _max_relative_error(ref, run)
        assert max(errors.values()) < REL_TOL, errors
