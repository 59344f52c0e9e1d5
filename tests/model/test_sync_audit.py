"""Host synchronisations on the per-frame path, counted on the CPU with `SyncAudit` (what would
block the host on a GPU): a model step may read the person count once and nothing else."""
from __future__ import annotations

import copy

import pytest
import torch

from backend.model.precision import to_fast
from backend.model.sync_audit import SyncAudit


def _view(inputs, v):
    return torch.from_numpy(inputs["img"][v]), torch.from_numpy(inputs["img_mhmr"][v])


def test_audit_sees_each_kind_of_sync():
    x = torch.randn(4, 4)
    with torch.inference_mode(), SyncAudit() as audit:
        int(x.sum())
        x.max().item()
        torch.where(x > 0)
        x[x > 0]
        torch.tensor([1.0, 2.0])
        x.cpu()
        x.to("cpu")
        x.numpy()
    kinds = [k for k, _, _ in audit.events]
    assert kinds.count("scalar") == 2 and kinds.count("nonzero") == 2
    assert kinds.count("host_constant") == 1 and kinds.count("to_host") == 3
    assert all(site.startswith("tests/model/test_sync_audit.py:") for _, _, site in audit.events)


def test_audit_is_silent_on_device_only_work():
    x = torch.randn(8, 8)
    with torch.inference_mode(), SyncAudit() as audit:
        y = torch.where(x > 0, x, torch.zeros_like(x)) @ x
        y.softmax(-1).cumsum(0).gather(0, torch.zeros(1, 8, dtype=torch.long))
    assert audit.events == []


@pytest.mark.parametrize("fast", [False, True], ids=["fp32", "fast"])
def test_step_reads_only_the_person_count(tiny_model, fixture_inputs, fast):
    model = to_fast(copy.deepcopy(tiny_model)) if fast else tiny_model
    model.step(model.init_stream(), *_view(fixture_inputs, 0), reset=False)  # makes the per-device constants once
    state = model.init_stream()
    for v in range(3):  # first view of a chunk, then gated views with the pose retriever
        img, img_mhmr = _view(fixture_inputs, v)
        with SyncAudit() as audit:
            out, state = model.step(state, img, img_mhmr, reset=False, want_cross=False, track=False)
        assert out.n_humans > 0
        assert [(k, site.split(":")[0]) for k, _, site in audit.events] == [
            ("nonzero", "backend/model/heads/human.py")], audit.events


def test_device_tracker_would_sync_so_the_engine_tracks_on_the_host(tiny_model, fixture_inputs):
    """The in-model tracker (kept for the parity tool) reads values on the host; the audit sees it."""
    state = tiny_model.init_stream()
    _, state = tiny_model.step(state, *_view(fixture_inputs, 0), reset=False)
    img, img_mhmr = _view(fixture_inputs, 1)
    with SyncAudit() as audit:
        tiny_model.step(state, img, img_mhmr, reset=False)
    sites = {site.split(":")[0] for _, _, site in audit.events}
    assert "backend/model/tracker.py" in sites and audit.count() > 1
