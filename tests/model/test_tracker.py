"""Tracker edge cases: first ids, new ids, unmatched tracks kept, no people."""
from __future__ import annotations

import torch

from backend.model.tracker import TrackState, assign_ids, log_optimal_transport


def _tokens(*rows):
    return torch.tensor([rows], dtype=torch.float32)


def test_first_frame_gets_consecutive_ids():
    ids, tr = assign_ids(TrackState(), _tokens([0.0, 0], [10, 0], [0, 10]))
    assert ids.tolist() == [[0, 1, 2]] and tr.max_id == 2 and tr.last_ids.tolist() == [[0, 1, 2]]


def test_no_people_leaves_tracker_untouched():
    _, tr = assign_ids(TrackState(), _tokens([0.0, 0]))
    ids, tr2 = assign_ids(tr, torch.zeros(1, 0, 2))
    assert ids.shape == (1, 0) and ids.dtype == torch.int64 and tr2 is tr


def test_matching_follows_tokens_and_new_people_get_new_ids():
    _, tr = assign_ids(TrackState(), _tokens([0.0, 0], [10, 0]))
    # same two people in swapped order plus a far newcomer
    ids, tr = assign_ids(tr, _tokens([10.0, 0.1], [50, 50], [0.1, 0]))
    assert ids.tolist() == [[1, 2, 0]]
    assert tr.max_id == 2 and tr.last_ids.tolist() == [[1, 2, 0]]


def test_unmatched_tracks_are_kept_after_current_people():
    _, tr = assign_ids(TrackState(), _tokens([0.0, 0], [10, 0], [0, 10]))
    ids, tr = assign_ids(tr, _tokens([10.0, 0]))  # only person 1 visible
    assert ids.tolist() == [[1]]
    assert tr.last_ids.tolist() == [[1, 0, 2]]
    assert torch.equal(tr.last_tokens, _tokens([10.0, 0], [0, 0], [0, 10]))
    ids, tr = assign_ids(tr, _tokens([0.0, 10], [0, 0.1]))  # people 2 and 0 come back
    assert ids.tolist() == [[2, 0]] and tr.max_id == 2


def test_sinkhorn_dustbin_shapes_and_marginals():
    scores = -torch.rand(1, 3, 2, generator=torch.Generator().manual_seed(0)) * 5  # seeded: reproducible
    z = log_optimal_transport(scores, -10.0, 100)
    assert z.shape == (1, 4, 3)
    p = (z - z.new_tensor(5.0).log()).exp()  # undo the (m + n) scaling
    torch.testing.assert_close(p.sum(2)[0, :3], torch.full((3,), 1 / 5), atol=1e-4, rtol=0)
    torch.testing.assert_close(p.sum(1)[0, :2], torch.full((2,), 1 / 5), atol=1e-4, rtol=0)
