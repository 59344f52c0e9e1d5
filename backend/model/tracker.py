"""Person tracking across frames on the decoded human tokens (Human3R's online tracker).

Each frame's people (tokens [1, n, C], the normalised final decoder outputs) are matched to the
remembered tracks with log-space optimal transport (Sinkhorn with a dustbin row/column, alpha -10,
20 iterations) on -Euclidean distances, then mutual argmax and a probability threshold
(exp(score) > 0.2, strict). Unmatched people get fresh ids (max_id + 1, ... in detection order).
Unmatched old tracks are kept forever with their last token (appended after the current people).
Frames without people leave the tracker untouched. Tracks are *not* reset by a state reset.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

SINKHORN_ALPHA = -10.0
SINKHORN_ITERS = 20
MATCH_THRESHOLD = 0.2


@dataclass(frozen=True)
class TrackState:
    """Tracker memory. last_tokens [1, m, C] float32 and last_ids [1, m] int64 (None before anyone
    was seen); max_id = the largest id handed out so far (-1 at start)."""

    last_tokens: torch.Tensor | None = None
    last_ids: torch.Tensor | None = None
    max_id: int = -1


def log_optimal_transport(
    scores: torch.Tensor, alpha: float = SINKHORN_ALPHA, iters: int = SINKHORN_ITERS
) -> torch.Tensor:
    """Sinkhorn in log space with a dustbin. scores [B, m, n] -> log assignment [B, m+1, n+1] (scaled by m+n)."""
    b, m, n = scores.shape
    one = scores.new_tensor(1)
    ms, ns = m * one, n * one
    a = scores.new_tensor(alpha)
    couplings = torch.cat(
        [torch.cat([scores, a.expand(b, m, 1)], -1), torch.cat([a.expand(b, 1, n), a.expand(b, 1, 1)], -1)], 1
    )
    norm = -(ms + ns).log()
    log_mu = torch.cat([norm.expand(m), ns.log()[None] + norm])[None].expand(b, -1)
    log_nu = torch.cat([norm.expand(n), ms.log()[None] + norm])[None].expand(b, -1)
    u, v = torch.zeros_like(log_mu), torch.zeros_like(log_nu)
    for _ in range(iters):
        u = log_mu - torch.logsumexp(couplings + v.unsqueeze(1), dim=2)
        v = log_nu - torch.logsumexp(couplings + u.unsqueeze(2), dim=1)
    return couplings + u.unsqueeze(2) + v.unsqueeze(1) - norm


def assign_ids(track: TrackState, tokens: torch.Tensor) -> tuple[torch.Tensor, TrackState]:
    """Give ids to this frame's people. tokens [1, n, C] -> (ids [1, n] int64, new tracker state)."""
    n = tokens.shape[1]
    device = tokens.device
    if n == 0:
        return torch.zeros(1, 0, dtype=torch.int64, device=device), track
    if track.last_tokens is None:
        ids = torch.arange(n, device=device)[None]
        return ids, TrackState(tokens.clone(), ids.clone(), n - 1)

    last_tokens, last_ids = track.last_tokens, track.last_ids
    log_p = log_optimal_transport(-torch.cdist(last_tokens, tokens, p=2))[:, :-1, :-1]  # [1, m, n]
    max0, max1 = log_p.max(2), log_p.max(1)
    idx0, idx1 = max0.indices, max1.indices  # [1, m], [1, n]
    mutual0 = torch.arange(idx0.shape[1], device=device)[None] == idx1.gather(1, idx0)
    mutual1 = torch.arange(idx1.shape[1], device=device)[None] == idx0.gather(1, idx1)
    mscores0 = torch.where(mutual0, max0.values.exp(), log_p.new_tensor(0))
    valid0 = mutual0 & (mscores0 > MATCH_THRESHOLD)  # old tracks matched
    valid1 = mutual1 & valid0.gather(1, idx1)  # current people matched

    ids = torch.where(valid1, last_ids.gather(1, idx1), torch.full_like(idx1, -1))
    new_mask = ~valid1[0]
    num_new = int(new_mask.sum())
    max_id = track.max_id
    if num_new:
        ids[0, new_mask] = torch.arange(max_id + 1, max_id + 1 + num_new, device=device)
        max_id += num_new
    unmatched_old = ~valid0[0]
    if bool(unmatched_old.any()):
        new_tokens = torch.cat([tokens, last_tokens[:, unmatched_old]], dim=1)
        new_ids = torch.cat([ids, last_ids[:, unmatched_old]], dim=1)
    else:
        new_tokens, new_ids = tokens.clone(), ids.clone()
    return ids, TrackState(new_tokens, new_ids, max_id)
