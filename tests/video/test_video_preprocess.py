"""backend.video.preprocess: reference parity, resize/crop rules, and the pixel mappings back to the frame."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch

from backend.video.preprocess import (
    apply_jpeg_roundtrip,
    crop_box,
    mhmr_layout,
    prepare_frame,
    resized_size,
)


def test_parity_with_reference_fixture(parity_fixture_dir: Path):
    data = np.load(parity_fixture_dir / "inputs.npz")
    frames = data["frames_rgb_uint8"]
    worst_img = worst_mhmr = 0.0
    for view, frame_index in enumerate(data["view_frame_index"]):
        prepared = prepare_frame(frames[frame_index], size=112, mhmr_res=168)
        assert prepared.true_shape == tuple(data["true_shape"][view, 0])
        assert prepared.img.dtype == torch.float32 and prepared.img.shape == data["img"][view].shape
        assert prepared.img_mhmr.shape == data["img_mhmr"][view].shape
        worst_img = max(worst_img, float(np.abs(prepared.img.numpy() - data["img"][view]).max()))
        worst_mhmr = max(worst_mhmr, float(np.abs(prepared.img_mhmr.numpy() - data["img_mhmr"][view]).max()))
    # bit-identical: same PIL resize, same float32 op order, same F.interpolate call
    assert worst_img == 0.0 and worst_mhmr == 0.0, (worst_img, worst_mhmr)


def test_colors_match_img():
    rgb = np.random.default_rng(0).integers(0, 256, (180, 250, 3), dtype=np.uint8)
    prepared = prepare_frame(rgb, size=112, mhmr_res=168)
    assert prepared.colors.dtype == np.uint8 and prepared.colors.shape == (80, 112, 3)
    back = ((prepared.img[0].permute(1, 2, 0).numpy() + 1) / 2 * 255).round()
    np.testing.assert_array_equal(back, prepared.colors)


@pytest.mark.parametrize(
    "size_wh, model_wh, crop, mhmr_hw, pad_tl",
    [
        ((1920, 1080), (512, 288), (0, 0, 512, 288), (504, 896), (196, 0)),  # 1080p: no crop, 196 rows of padding
        ((812, 720), (512, 448), (0, 3, 512, 451), (784, 896), (56, 0)),  # tennis.mp4: crop 3 rows off the top
        ((600, 600), (512, 384), (0, 64, 512, 448), (672, 896), (112, 0)),  # square -> 4:3
        ((720, 1280), (288, 512), (0, 0, 288, 512), (896, 504), (0, 196)),  # portrait
    ],
)
def test_sizes_crops_and_pads(size_wh, model_wh, crop, mhmr_hw, pad_tl):
    width, height = size_wh
    rgb = np.zeros((height, width, 3), np.uint8)
    prepared = prepare_frame(rgb)
    g = prepared.geometry
    assert (g.model_size, g.crop_box, g.mhmr_size_hw, g.mhmr_pad_tl) == (model_wh, crop, mhmr_hw, pad_tl)
    assert prepared.true_shape == (model_wh[1], model_wh[0])
    assert prepared.orig_size == size_wh
    assert prepared.img.shape == (1, 3, model_wh[1], model_wh[0])
    assert prepared.img_mhmr.shape == (1, 3, 896, 896)
    top, left = pad_tl
    assert torch.all(prepared.img_mhmr[..., :top, :] == -1.0) and torch.all(prepared.img_mhmr[..., :, :left] == -1.0)


def test_reference_rounding_rules():
    # Python round on exact halves: 1024x451 -> 225.5 -> 226 (even), 1024x453 -> 226.5 -> 226
    assert resized_size(1024, 451, 512) == (512, 226)
    assert resized_size(1024, 453, 512) == (512, 226)
    assert crop_box(112, 112) == (0, 14, 112, 98)  # small square: 3/4 of 56 = 42 rows either side
    assert mhmr_layout(288, 512, 896) == ((504, 896), (196, 196, 0, 0))


@pytest.mark.parametrize("long_side, expected", [(700, PIL.Image.Resampling.LANCZOS), (400, PIL.Image.Resampling.BICUBIC)])
def test_filter_choice(long_side, expected):
    rgb = np.random.default_rng(1).integers(0, 256, (long_side * 3 // 4, long_side, 3), dtype=np.uint8)
    prepared = prepare_frame(rgb)
    reference = PIL.Image.fromarray(rgb).resize(prepared.geometry.resized_size, expected)
    np.testing.assert_array_equal(prepared.colors, np.asarray(reference.crop(prepared.geometry.crop_box)))


def blob(width: int, height: int, x0: float, y0: float, sigma: float) -> np.ndarray:
    """uint8 image with a bright Gaussian centred at (x0, y0) in OpenCV pixel coordinates."""
    xs, ys = np.arange(width), np.arange(height)
    g = np.exp(-((xs[None, :] - x0) ** 2 + (ys[:, None] - y0) ** 2) / (2 * sigma ** 2))
    return np.repeat((g * 250).round().astype(np.uint8)[..., None], 3, axis=2)


def centroid(gray: np.ndarray) -> np.ndarray:
    w = gray.astype(np.float64)
    ys, xs = np.indices(w.shape)
    return np.array([(xs * w).sum() / w.sum(), (ys * w).sum() / w.sum()])


def test_model_pixels_map_back_to_original_pixels():
    # 812x720 (like tennis.mp4): resized 512x454, then 3 rows cropped off the top; scale ~1.59
    x0, y0 = 301.3, 40.2  # near the top, where the 3 cropped rows matter most
    prepared = prepare_frame(blob(812, 720, x0, y0, sigma=9.0))
    g = prepared.geometry
    found_model = centroid(prepared.colors[..., 0])
    mapped = g.model_to_original_xy(found_model)
    assert np.abs(mapped - [x0, y0]).max() < 0.05, mapped
    # ignoring the crop, or the half-pixel shift, would be off by several tenths of a pixel or more
    naive = found_model * np.array(g.orig_size) / np.array(g.model_size)
    assert np.abs(naive - [x0, y0]).max() > 1.0
    no_half_pixel = (found_model + g.crop_box[:2]) * np.array(g.scale)
    assert np.abs(no_half_pixel - [x0, y0]).max() > 0.25
    np.testing.assert_allclose(g.original_to_model_xy(mapped), found_model, atol=1e-9)


def test_pixel_center_conventions_agree():
    g = prepare_frame(np.zeros((720, 812, 3), np.uint8)).geometry
    xy = np.array([[0.0, 0.0], [100.25, 37.5], [511.0, 447.0]])
    opencv = g.model_to_original_xy(xy, pixel_center=0.0)
    corner = g.model_to_original_xy(xy + 0.5, pixel_center=0.5)
    np.testing.assert_allclose(corner - 0.5, opencv, atol=1e-12)
    # corner convention is the plain formula x_orig = (x_model + crop_left) * W / W_resized
    left, top = g.crop_box[:2]
    np.testing.assert_allclose(corner, (xy + 0.5 + [left, top]) * [812 / 512, 720 / 454], atol=1e-12)


def test_intrinsics_to_original_projects_like_the_mapping():
    g = prepare_frame(np.zeros((720, 812, 3), np.uint8)).geometry
    fx, fy, cx, cy = 420.0, 421.0, 256.0, 224.0  # model pixels, pp = (w div 2, h div 2)
    points = np.random.default_rng(2).uniform([-2, -2, 2], [2, 2, 8], (50, 3))
    model_px = np.stack([fx * points[:, 0] / points[:, 2] + cx, fy * points[:, 1] / points[:, 2] + cy], -1)
    ofx, ofy, ocx, ocy = g.intrinsics_to_original(fx, fy, cx, cy)
    orig_px = np.stack([ofx * points[:, 0] / points[:, 2] + ocx, ofy * points[:, 1] / points[:, 2] + ocy], -1)
    np.testing.assert_allclose(orig_px, g.model_to_original_xy(model_px), atol=1e-9)
    assert ofx == pytest.approx(fx * 812 / 512) and ofy == pytest.approx(fy * 720 / 454)
    assert ocy == pytest.approx((cy + 0.5 + 3) * 720 / 454 - 0.5)


def test_mhmr_square_maps_back_to_model_pixels():
    x0, y0 = 40.3, 25.6  # model pixels
    rgb = blob(112, 80, x0, y0, sigma=4.0)
    prepared = prepare_frame(rgb, size=112, mhmr_res=168)  # 112x80 -> no resize, no crop
    square = (prepared.img_mhmr[0, 0].numpy() + 1) / 2
    found = prepared.geometry.mhmr_to_model_xy(centroid(square))
    assert np.abs(found - [x0, y0]).max() < 0.05, found


def test_jpeg_roundtrip_is_close_and_optional():
    rgb = blob(250, 180, 100.0, 80.0, sigma=20.0)
    rgb[..., 1] = 90
    jpeg = apply_jpeg_roundtrip(rgb)
    assert jpeg.shape == rgb.shape and jpeg.dtype == np.uint8
    assert 0 < np.abs(jpeg.astype(int) - rgb.astype(int)).mean() < 2
    with_jpeg = prepare_frame(rgb, size=112, mhmr_res=168, jpeg_roundtrip=True)
    plain = prepare_frame(rgb, size=112, mhmr_res=168)
    assert not torch.equal(with_jpeg.img, plain.img)
    assert torch.equal(with_jpeg.img, prepare_frame(jpeg, size=112, mhmr_res=168).img)


def test_real_frame_at_full_size(tennis_video: Path):
    from backend.video.reader import open_source

    frame = next(iter(open_source(tennis_video, end=1)))
    prepared = prepare_frame(frame.rgb)
    assert prepared.img.shape == (1, 3, 448, 512) and prepared.img_mhmr.shape == (1, 3, 896, 896)
    assert prepared.img.min() >= -1 and prepared.img.max() <= 1


@pytest.mark.parametrize("bad", [np.zeros((10, 5000, 3), np.uint8), np.zeros((64, 64, 4), np.uint8),
                                 np.zeros((64, 64, 3), np.float32), np.zeros((64, 64), np.uint8)])
def test_rejects_unusable_input(bad):
    with pytest.raises(ValueError):
        prepare_frame(bad)
