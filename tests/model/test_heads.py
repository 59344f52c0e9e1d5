"""Human-branch helpers: NMS ties, threshold, unpad_uv, 6D rotations, mask pixel shuffle, activations."""
from __future__ import annotations

import pytest
import torch

from backend.model.heads.activations import exp_points
from backend.model.heads.camera import decode_pose, pose_to_matrix
from backend.model.heads.human import (
    cut3r_patch_of, detect_people, head_locations, mask_from_logits, nms3x3, rot6d_to_rotmat, unpad_uv,
)


def test_nms_keeps_exact_ties_and_suppresses_neighbours():
    s = torch.zeros(1, 1, 5, 5)
    s[0, 0, 1, 1] = 0.8
    s[0, 0, 1, 2] = 0.8  # tie with a neighbour: both survive
    s[0, 0, 2, 2] = 0.5  # neighbour of a larger value: suppressed
    s[0, 0, 4, 4] = 0.3  # isolated, exactly at the threshold
    out = nms3x3(s)
    assert out[0, 0, 1, 1] == 0.8 and out[0, 0, 1, 2] == 0.8
    assert out[0, 0, 2, 2] == 0
    rows, cols = detect_people(out.permute(0, 2, 3, 1), 0.3)  # threshold is >=
    assert list(zip(rows.tolist(), cols.tolist())) == [(1, 1), (1, 2), (4, 4)]  # raster order


def test_head_location_and_unpad_uv_landscape():
    # 512x288 frame: square 896, scale 512/896, pad top 112
    loc = head_locations(torch.tensor([10]), torch.tensor([20]), torch.tensor([[0.25, -0.5]]), 14)
    torch.testing.assert_close(loc, torch.tensor([[(20 + 0.5 + 0.25) * 14, (10 + 0.5 - 0.5) * 14]]))
    uv = unpad_uv(torch.tensor([[448.0, 448.0], [0.0, 0.0], [895.0, 895.0]]), 896, 288, 512)
    s = torch.tensor(512, dtype=torch.int32) / 896
    torch.testing.assert_close(uv[0], torch.stack([448 * s, 448 * s - 112]))
    assert uv[1].tolist() == [0.0, 0.0]  # clamped into the image
    assert uv[2].tolist() == [511.0, 287.0]
    rows, cols = cut3r_patch_of(uv, 16)
    assert rows.tolist() == [int((448 * s - 112) // 16), 0, 17] and cols.tolist()[1:] == [0, 31]


def test_rot6d_layout_and_orthonormality():
    ident = torch.tensor([1.0, 0, 0, 1, 0, 0])
    torch.testing.assert_close(rot6d_to_rotmat(ident), torch.eye(3))
    # row-major 3x2: columns are (a0, a2, a4) and (a1, a3, a5)
    r = rot6d_to_rotmat(torch.tensor([0.0, 1, 1, 0, 0, 0]))
    torch.testing.assert_close(r[:, 0], torch.tensor([0.0, 1, 0]))
    torch.testing.assert_close(r[:, 1], torch.tensor([1.0, 0, 0]))
    torch.manual_seed(0)
    rs = rot6d_to_rotmat(torch.randn(100, 6))
    torch.testing.assert_close(rs @ rs.transpose(-1, -2), torch.eye(3).expand(100, 3, 3), atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.linalg.det(rs), torch.ones(100), atol=1e-5, rtol=0)


def test_mask_pixel_shuffle_mapping():
    grid, patch = 2, 3
    logits = torch.zeros(1, grid * grid, patch * patch)
    logits[0, 1 * grid + 0, 2 * patch + 1] = 1.0  # token (h=1, w=0), sub-pixel (i=2, j=1)
    m = mask_from_logits(logits, grid, patch)
    assert m.shape == (1, 6, 6, 1)
    assert torch.nonzero(m[0, ..., 0]).tolist() == [[1 * patch + 2, 0 * patch + 1]]


def test_exp_maps_and_pose_decoding():
    x = torch.tensor([[3.0, 0.0, 4.0]])
    torch.testing.assert_close(exp_points(x), x / 5 * torch.expm1(torch.tensor(5.0)))
    assert exp_points(torch.zeros(1, 3)).abs().sum() == 0
    pose = decode_pose(torch.tensor([[0.0, 0, 0, -2, 0, 0, 0]]))  # negative real part is flipped
    torch.testing.assert_close(pose, torch.tensor([[0.0, 0, 0, 1, 0, 0, 0]]))
    torch.testing.assert_close(pose_to_matrix(pose)[0], torch.eye(4))


def _reference_quaternion_to_matrix(q: torch.Tensor) -> torch.Tensor:
    """The reference's nine formulas, written out (real part first)."""
    r, i, j, k = torch.unbind(q, -1)
    two_s = 2.0 / (q * q).sum(-1)
    o = torch.stack((
        1 - two_s * (j * j + k * k), two_s * (i * j - k * r), two_s * (i * k + j * r),
        two_s * (i * j + k * r), 1 - two_s * (i * i + k * k), two_s * (j * k - i * r),
        two_s * (i * k - j * r), two_s * (j * k + i * r), 1 - two_s * (i * i + j * j),
    ), -1)
    return o.reshape(q.shape[:-1] + (3, 3))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_pose_to_matrix_is_bit_identical_to_the_reference_formulas(dtype):
    pose = torch.randn(5000, 7, generator=torch.Generator().manual_seed(1), dtype=dtype)
    pose[:2500, 3:] = torch.nn.functional.normalize(pose[:2500, 3:], dim=-1)  # unit and non-unit quaternions
    m = pose_to_matrix(pose)
    assert torch.equal(m[:, :3, :3], _reference_quaternion_to_matrix(pose[:, 3:]))
    assert torch.equal(m[:, :3, 3], pose[:, :3])
    assert torch.equal(m[:, 3], torch.tensor([0, 0, 0, 1], dtype=dtype).expand(5000, 4))
