"""`postprocess.point_selection` builds its masks with numpy; it must pick exactly the pixels the
torch formulation picks (conf > threshold, stride grid, human mask dilated by a square max-pool)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from backend.engine.geometry import unpad_square_map
from backend.engine.options import JobOptions
from backend.engine.postprocess import (HUMAN_MASK_DILATION_AT_512, HUMAN_MASK_THRESHOLD, _dilate_square,
                                        human_mask, point_selection)


def reference_selection(conf: torch.Tensor, msk: torch.Tensor | None, options: JobOptions) -> torch.Tensor:
    h, w = conf.shape
    keep = conf > options.conf_threshold
    if options.point_stride > 1:
        grid = torch.zeros_like(keep)
        grid[::options.point_stride, ::options.point_stride] = True
        keep &= grid
    if options.remove_humans_from_points and msk is not None:
        human = unpad_square_map(msk[..., 0].float(), h, w) > HUMAN_MASK_THRESHOLD
        radius = max(1, round(HUMAN_MASK_DILATION_AT_512 * max(h, w) / 512))
        human = F.max_pool2d(human[None].float(), 2 * radius + 1, stride=1, padding=radius)[0, 0] > 0
        keep &= ~human
    index = keep.reshape(-1).nonzero()[:, 0]
    if index.numel() > options.max_points_per_frame:
        pick = torch.linspace(0, index.numel() - 1, options.max_points_per_frame)
        index = index[pick.round().long()]
    return index


@pytest.mark.parametrize("radius", [1, 2, 5])
def test_square_dilation_matches_max_pool(radius):
    rng = np.random.default_rng(radius)
    for density in (0.0, 0.02, 0.3):
        mask = rng.random((37, 53)) < density
        mask[0, 0] = mask[-1, -1] = density > 0  # borders
        pooled = F.max_pool2d(torch.from_numpy(mask)[None, None].float(), 2 * radius + 1, stride=1,
                              padding=radius)[0, 0] > 0
        np.testing.assert_array_equal(_dilate_square(mask, radius), pooled.numpy())


@pytest.mark.parametrize("shape", [(96, 112), (64, 48), (112, 112)])
def test_point_selection_matches_torch_reference(shape):
    gen = torch.Generator().manual_seed(sum(shape))
    h, w = shape
    conf = 1 + torch.rand(h, w, generator=gen) * 3
    msk = torch.rand(1, 24, 24, 1, generator=gen) ** 4
    base = JobOptions(size=max(shape))
    cases = [base, dataclasses.replace(base, point_stride=1), dataclasses.replace(base, point_stride=3),
             dataclasses.replace(base, remove_humans_from_points=False),
             dataclasses.replace(base, max_points_per_frame=100, point_stride=1),
             dataclasses.replace(base, conf_threshold=0.0), dataclasses.replace(base, conf_threshold=10.0),
             dataclasses.replace(base, max_points_per_frame=0)]
    for options in cases:
        for m in (msk, None):
            human = human_mask(m, h, w).float().numpy() if options.remove_humans_from_points and m is not None else None
            got = point_selection(conf.numpy(), human, options)
            want = reference_selection(conf, m, options) if options.max_points_per_frame else torch.zeros(0, dtype=torch.long)
            assert got.dtype == torch.long
            assert torch.equal(got, want), options
