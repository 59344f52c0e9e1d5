"""The smoothing building blocks on series with a known answer: outlier frames at the clip's ends, the
adaptive width choice against its pairwise definition, the cross-validated choice between adaptive and
fixed widths, and the FFT path of wide Gaussians."""
from __future__ import annotations

import functools

import numpy as np
import pytest

from blender_addon.core.motion import smooth


def _walk(n: int = 240, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(noisy pelvis [n, 3], truth [n, 3]): 0.8 m/s along x with a 1 cm bob at 2 Hz, 2 cm noise per axis."""
    t = np.arange(n) / 30.0
    truth = np.stack([0.8 * t, 0.01 * np.cos(4 * np.pi * t), np.zeros(n)], 1)
    return truth + np.random.default_rng(seed).normal(0, 0.02, (n, 3)), truth


@pytest.mark.parametrize("where", [0, 1, -1, -2])
def test_outlier_at_the_clip_ends_is_found_and_filled(where):
    x, truth = _walk()
    x[where] += np.array([0.0, -0.25, 0.1])  # a frame 25 cm off, like the model's worst frames
    bad = smooth.outlier_frames(x, threshold=3.0)
    assert bad[where]
    assert bad.sum() <= 3  # the noise itself is not flagged wholesale
    filled = smooth.fill_frames(x, bad)
    assert np.linalg.norm(filled[where] - truth[where]) < 0.08


def _pairwise_level(fits, sigmas, gamma, sig):
    """adaptive_level's rule written as its definition: a width is kept while its fit stays within
    gamma (std_k + std_j) of every narrower fit j, on every component."""
    std = np.array([sig * np.sqrt(np.sum(smooth.local_quadratic_kernel(s) ** 2)) for s in sigmas])
    ok = np.ones(fits.shape[1:-1], bool)
    level = np.zeros(fits.shape[1:-1])
    for k in range(1, len(sigmas)):
        for j in range(k):
            gap = functools.reduce(np.maximum, np.moveaxis(np.abs(fits[k] - fits[j]), -1, 0))
            ok &= gap <= gamma * (std[k] + std[j])
        level += ok
    return np.clip(smooth.gaussian_filter(level, max(1.0, sigmas[0])), 0, len(sigmas) - 1)


def test_adaptive_level_matches_its_pairwise_definition():
    x, _ = _walk(300, seed=3)
    x = x[:, :, None]  # three independent coordinates
    sigmas = tuple(30 * w for w in (0.03, 0.045, 0.07, 0.1, 0.15, 0.22, 0.33, 0.5, 0.75, 1.1, 1.6))
    fits = np.stack([smooth.gaussian_filter(x, s, quadratic=True) for s in sigmas])
    sig = smooth.noise_sigma(x, 1)
    for gamma in (0.9, 1.5):
        got = smooth.adaptive_level(x, fits, sigmas, gamma, sig)
        assert np.array_equal(got, _pairwise_level(fits, sigmas, gamma, sig))
        assert 0 < got.min() and got.max() == len(sigmas) - 1  # it does choose, both narrow and wide


def test_wide_gaussians_by_fft_match_the_direct_sum():
    x = np.random.default_rng(1).normal(size=(400, 22, 4))
    for sigma in (22.0, 30.0, 48.0):  # radii 66, 90, 144
        assert int(np.ceil(3 * sigma)) > smooth._FFT_MIN_RADIUS  # the FFT path is the one tested
        for quadratic in (False, True):
            fast = smooth.gaussian_filter(x, sigma, quadratic)
            taps = smooth.local_quadratic_kernel(sigma) if quadratic else smooth.gaussian_kernel(sigma)
            r = len(taps) // 2
            padded, _ = smooth._point_reflect(x, r)
            direct = sum(taps[k] * padded[k:k + len(x)] for k in range(2 * r + 1))
            assert np.abs(fast - direct).max() < 1e-12


@pytest.mark.parametrize("motion,most", [("sway", 0.9), ("line", 1.01), ("walk then stop", 1.03)])
def test_cross_validation_finds_a_steady_motions_width_and_keeps_the_adaptive_one_elsewhere(motion, most):
    """A stander's sway (3 cm at 0.3 Hz) is a steady motion that the adaptive widths over-smooth by a bias below
    the narrow fits' noise: one width for the whole signal, chosen by leave-one-out cross-validation, is at
    least 10 % closer to the truth. A walk at constant speed loses nothing, and a walk that stops (where no
    single width fits; one is sometimes chosen anyway) at most 3 % (2 % measured). Root-like series: 240
    frames at 30 fps, 2 cm noise, the horizontal root's widths, two groups (the series forwards and
    backwards) chosen each on its own; RMS over 10 noise draws."""
    from blender_addon.core.motion import options as o
    t = np.arange(240) / 30.0
    clean = {"sway": 0.03 * np.sin(2 * np.pi * 0.3 * t + 0.7), "line": 0.8 * t,
             "walk then stop": np.where(t < 4, 0.8 * t, 3.2)}[motion]
    truth = np.stack([clean, clean[::-1]], 1)
    levels = tuple(30.0 * w for w in o.SIGMA_ROOT_HORIZONTAL_LEVELS_S)
    errors = {False: [], True: []}
    for seed in range(10):
        x = (truth + np.random.default_rng(seed).normal(0.0, 0.02, truth.shape))[..., None]
        for cv in errors:
            fit = smooth.robust_filter(x, levels, o.GAMMA_ROOT_HORIZONTAL, o.ROOT_CLIP, cross_validate=cv)[..., 0]
            errors[cv].append(np.sqrt(np.mean((fit - truth) ** 2)))
    assert np.mean(errors[True]) <= most * np.mean(errors[False])


def test_a_second_gamma_from_the_same_fits_equals_its_own_filter():
    """`adaptive_filter(..., also_gamma=g)` shares the fits but chooses the widths anew, as a call of its own
    would; through a crouch-like dip (0.8 s, 0.5 rad) the narrower band keeps narrower fits and follows the
    clean curve more closely than the usual one, which flattens it."""
    t = np.arange(120) / 30.0
    bend = np.where(np.abs(t - 2) < 0.4, 0.5 * np.cos(np.pi * (t - 2) / 0.8) ** 2, 0.0)
    clean = np.stack([bend, np.sin(t)], 1)[:, :, None]
    sigmas = (1.2, 1.8, 2.7, 3.9, 6.0, 9.0)
    dip = np.abs(t - 2) < 0.5
    rms = []
    for seed in range(6):
        x = clean + np.random.default_rng(seed).normal(0, 0.02, clean.shape)
        wide, narrow = smooth.adaptive_filter(x, sigmas, 1.0, noise=0.02, also_gamma=0.5)
        assert np.array_equal(wide, smooth.adaptive_filter(x, sigmas, 1.0, noise=0.02))
        assert np.array_equal(narrow, smooth.adaptive_filter(x, sigmas, 0.5, noise=0.02))
        rms.append([np.sqrt(np.mean((y - clean)[dip, 0] ** 2)) for y in (wide, narrow)])
    wide_rms, narrow_rms = np.array(rms).T
    assert (narrow_rms < wide_rms).all() and narrow_rms.mean() < 0.8 * wide_rms.mean()  # 1.01 against 1.32 cm rms
