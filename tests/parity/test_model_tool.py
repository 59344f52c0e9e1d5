"""The parity comparison itself: works on other fixture layouts and flags real differences."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from backend.parity.model import RUNS, check_fixture, compare_run, run_views


def _write_outputs(path, outs):
    arrays = {"n_humans": np.array([o.n_humans for o in outs])}
    for v, o in enumerate(outs):
        for name, t in o.as_dict(debug=False).items():
            if name.startswith("smpl_") and name not in ("smpl_scores", "smpl_loc") and o.n_humans == 0:
                continue  # the reference omits per-person keys when nobody is detected
            arrays[f"view{v:03d}/{name}"] = t.numpy()
        for name in ("enc_tokens", "state_new"):
            arrays[f"debug/view{v:03d}/{name}"] = getattr(o, name).numpy()
    np.savez(path, **arrays)


@pytest.fixture(scope="module")
def portrait_fixture(tmp_path_factory, parity_fixture_dir, tiny_model, fixture_inputs):
    """A fixture folder with portrait views and resets every 2 frames, outputs from this model."""
    folder = tmp_path_factory.mktemp("portrait")
    shutil.copy(parity_fixture_dir / "config.json", folder)
    shutil.copy(parity_fixture_dir / "checkpoint.safetensors", folder)
    img = np.ascontiguousarray(fixture_inputs["img"][:4].swapaxes(-1, -2))
    mhmr = np.ascontiguousarray(fixture_inputs["img_mhmr"][:4].swapaxes(-1, -2))
    reset = np.array([[False], [True], [False], [False]])
    inputs = {"img": img, "img_mhmr": mhmr, "reset": reset}
    np.savez(folder / "inputs.npz", **inputs)
    for run, (fname, ttt3r) in RUNS.items():
        _write_outputs(folder / fname, run_views(tiny_model, inputs, ttt3r))
    return folder


def test_other_layout_passes(portrait_fixture):
    reports, arithmetic = check_fixture(portrait_fixture)
    assert [r.run for r in reports] == ["ttt3r", "plain"] and all(r.ok for r in reports)
    assert arithmetic is None  # this layout holds no DINOv2 tokens to tell the machines apart
    assert "debug/state_new" in reports[0].stats


def test_perturbed_array_and_ids_are_flagged(portrait_fixture, tiny_model):
    ref = dict(np.load(portrait_fixture / "outputs_plain.npz"))
    inputs = dict(np.load(portrait_fixture / "inputs.npz"))
    outs = run_views(tiny_model, inputs, False)
    bad = dict(ref)
    bad["view001/conf"] = ref["view001/conf"] + 1e-3 * np.abs(ref["view001/conf"]).max()
    people = [v for v, o in enumerate(outs) if o.n_humans]
    v = people[0]
    bad[f"view{v:03d}/smpl_id"] = ref[f"view{v:03d}/smpl_id"] + 1

    class Npz(dict):
        files = property(lambda self: list(self))

    report = compare_run("plain", outs, Npz(bad), tiny_model.config.detection_threshold)
    assert not report.ok
    assert report.stats["conf"].failures and report.stats["smpl_id"].failures
    bad_scores = dict(ref)
    scores = ref[f"view{v:03d}/smpl_scores"].copy()
    scores[0, 0, 0, 0] = 0.99  # an extra detection
    bad_scores[f"view{v:03d}/smpl_scores"] = scores
    report = compare_run("plain", outs, Npz(bad_scores), tiny_model.config.detection_threshold)
    assert any("detection set" in d for d in report.discrete_failures)


def test_the_parity_command_says_whose_arithmetic_and_checks_after_the_encoder(parity_fixture_dir, capsys):
    """`scripts/parity.py --reference-encoder` holds everything after the encoder to the rule on any CPU; without
    it, a CPU whose float32 arithmetic is not the fixture machine's is named as such."""
    import torch

    from tests.support.scripts import load_script

    parity = load_script("parity")
    grad = torch.is_grad_enabled()
    try:  # the command turns autograd off for its process
        assert parity.main([str(parity_fixture_dir), "--reference-encoder", "--no-post"]) == 0
        assert "PARITY OK" in capsys.readouterr().out
        status = parity.main([str(parity_fixture_dir), "--no-post"])
    finally:
        torch.set_grad_enabled(grad)
    out = capsys.readouterr().out
    different = "float32 arithmetic is not the fixture machine's" in out
    assert status == 0 or (different and "--reference-encoder checks everything after the encoder" in out)
