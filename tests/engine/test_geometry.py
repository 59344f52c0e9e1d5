"""Post-processing geometry: rotation conversions, chunk alignment, focal estimation, mask unpadding."""
from __future__ import annotations

import math

import torch

from backend.engine.geometry import (
    ChunkAligner, estimate_focal_weiszfeld, pose_encoding_to_c2w, rotmat_to_rotvec, rotvec_to_rotmat,
    transform_points, unpad_square_map,
)


def random_rotvecs(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    axis = torch.nn.functional.normalize(torch.randn(n, 3, generator=g, dtype=torch.float64), dim=-1)
    angle = torch.rand(n, 1, generator=g, dtype=torch.float64) * math.pi
    return axis * angle


def test_rotvec_round_trip_including_edge_angles():
    rv = random_rotvecs(2000)
    axis = torch.nn.functional.normalize(torch.randn(6, 3, generator=torch.Generator().manual_seed(3),
                                                     dtype=torch.float64), dim=-1)
    edge = torch.cat([axis * 1e-9, axis * 5e-4, axis * (math.pi - 1e-7), torch.zeros(1, 3, dtype=torch.float64)])
    rv = torch.cat([rv, edge])
    back = rotmat_to_rotvec(rotvec_to_rotmat(rv))
    # same rotation (axis-angle is ambiguous only at pi, where R is compared instead)
    assert torch.allclose(rotvec_to_rotmat(back), rotvec_to_rotmat(rv), atol=1e-9)
    inside = rv.norm(dim=-1) < math.pi - 1e-3
    assert torch.allclose(back[inside], rv[inside], atol=1e-9)
    assert (back.norm(dim=-1) <= math.pi + 1e-9).all()  # shortest arc


def test_rotmat_to_rotvec_float32_batch_shapes():
    rot = rotvec_to_rotmat(random_rotvecs(24, 1).float()).reshape(2, 12, 3, 3)
    out = rotmat_to_rotvec(rot)
    assert out.shape == (2, 12, 3) and out.dtype == torch.float32
    assert torch.allclose(rotvec_to_rotmat(out), rot, atol=2e-6)


def test_pose_encoding_is_a_rigid_transform():
    torch.manual_seed(4)
    q = torch.nn.functional.normalize(torch.randn(5, 4), dim=-1)
    pose = torch.cat([torch.randn(5, 3), q], dim=-1)
    c2w = pose_encoding_to_c2w(pose)
    rot = c2w[:, :3, :3]
    assert torch.allclose(rot @ rot.transpose(1, 2), torch.eye(3).expand(5, 3, 3), atol=1e-5)
    assert torch.allclose(torch.linalg.det(rot), torch.ones(5), atol=1e-5)
    assert torch.equal(c2w[:, 3], torch.tensor([0.0, 0, 0, 1]).expand(5, 4))
    assert torch.equal(c2w[:, :3, 3], pose[:, :3])


def test_chunk_aligner_matches_cumulative_product():
    g = torch.Generator().manual_seed(3)
    poses = []
    for _ in range(9):
        c2w = torch.eye(4, dtype=torch.float64)
        c2w[:3, :3] = rotvec_to_rotmat(torch.randn(3, generator=g, dtype=torch.float64) * 0.3)
        c2w[:3, 3] = torch.randn(3, generator=g, dtype=torch.float64)
        poses.append(c2w)
    resets = [False, False, True, False, True, False, False, True, False]
    aligner = ChunkAligner()
    got = [aligner.align(p, r) for p, r in zip(poses, resets)]
    # the reference's batch formula: each pose times the product of the earlier chunks' reset-view poses
    cum = torch.eye(4, dtype=torch.float64)
    for i, (p, r) in enumerate(zip(poses, resets)):
        assert torch.allclose(got[i], cum @ p)
        cum = cum @ (p if r else torch.eye(4, dtype=torch.float64))


def test_weiszfeld_recovers_pinhole_focal():
    torch.manual_seed(5)
    h, w, f = 48, 64, 57.0
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    depth = 2.0 + torch.rand(h, w)
    pts = torch.stack([(xs - w // 2) / f * depth, (ys - h // 2) / f * depth, depth], -1)
    pts[0, 0] = torch.tensor([1.0, 1.0, 0.0])  # a point at z = 0 (inf) must not break it
    focal = estimate_focal_weiszfeld(pts[None])
    assert focal.shape == (1,)
    assert abs(float(focal[0]) - f) < 1e-2


def test_transform_points_and_unpad():
    c2w = torch.eye(4)
    c2w[:3, 3] = torch.tensor([1.0, 2.0, 3.0])
    assert torch.equal(transform_points(c2w, torch.zeros(2, 3)), torch.tensor([[1.0, 2, 3], [1, 2, 3]]))
    square = torch.arange(16.0).reshape(1, 4, 4)
    out = unpad_square_map(square, 4, 8)  # M = 8: rows 2..5 of the 8x8 nearest upsampling
    assert out.shape == (1, 4, 8)
    assert torch.equal(out[0, 0], torch.tensor([4.0, 4, 5, 5, 6, 6, 7, 7]))
