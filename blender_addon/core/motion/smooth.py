"""Temporal filters: an offline zero-phase filter (outlier rejection + Gaussian) and a causal One Euro filter.

Both work on positions (metres) and on rotations (unit quaternions, SO(3)):
- offline: frames whose pose jumps away from a running median (a Hampel test on the whole frame's
  vector) are replaced by interpolation from their neighbours, then a Gaussian of sigma frames (or a
  Gaussian-weighted local quadratic fit, as wide per frame as the data allow: `adaptive_filter`) is
  applied along time with point-reflected ends (about a line fitted to the end frames: keeps a
  linear trend at the clip ends). Rotations are
  filtered as sign-continuous quaternions (every quaternion in its predecessor's hemisphere) and
  renormalised: the Gaussian-weighted chordal L2 mean on SO(3), which is what the window's rotations
  average to on the sphere, not a per-component Euler average.
- causal (One Euro, Casiez et al. 2012): per channel, the cutoff rises with the filtered speed,
  cutoff = min_cutoff + beta * |speed|; rotations step along the geodesic (slerp) from the previous
  estimate towards the new sample by alpha, with the speed = geodesic angle * fps.
Time is in frames for the offline filter (callers convert seconds), in seconds for One Euro.
"""
from __future__ import annotations

import functools

import numpy as np

from .so3 import align_signs, quat_conj, quat_mul


_FFT_MIN_RADIUS = 64  # taps on each side beyond which `gaussian_filter` convolves by FFT (measured faster from here on)


def gaussian_kernel(sigma: float) -> np.ndarray:
    """Normalised Gaussian taps [2r+1], r = ceil(3 sigma) (sigma in frames, > 0)."""
    r = max(1, int(np.ceil(3.0 * sigma)))
    x = np.arange(-r, r + 1, dtype=np.float64)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def _line_end(x: np.ndarray, m: int) -> np.ndarray:
    """Value at frame 0 of the least-squares line through x[:m] (x [T, ...]): a noise-robust end point."""
    t = np.arange(m, dtype=np.float64) - 0.5 * (m - 1)
    seg = x[:m]
    mean = seg.mean(0)
    slope = np.tensordot(t, seg - mean, axes=(0, 0)) / np.sum(t * t)
    return mean - slope * 0.5 * (m - 1)


def _point_reflect(x: np.ndarray, r: int) -> tuple[np.ndarray, int]:
    """Pad x [T, ...] by r frames at both ends by point reflection about the end of a line fitted to the
    first/last r+1 frames (keeps a linear trend without letting the noisy end sample steer the ends);
    r is capped at T-1."""
    t = x.shape[0]
    r = min(r, t - 1)
    m = min(t, r + 1)
    head_pivot = _line_end(x, m) if m >= 3 else x[0]
    tail_pivot = _line_end(x[::-1], m) if m >= 3 else x[-1]
    head = 2.0 * head_pivot - x[r:0:-1]
    tail = 2.0 * tail_pivot - x[-2:-r - 2:-1]
    return np.concatenate([head, x, tail], axis=0), r


def local_quadratic_kernel(sigma: float) -> np.ndarray:
    """Taps [2r+1] of a Gaussian-weighted local quadratic fit evaluated at its centre (sigma in frames, > 0).

    Unlike a plain Gaussian it passes parabolas (constant acceleration: a jump's flight, a swinging limb's
    turn) through unbiased, so a wider window can take out more noise without flattening fast motion."""
    g = gaussian_kernel(sigma)
    if sigma < 0.5:  # narrower than a frame: the Gaussian is already (nearly) the sample itself
        return g
    r = len(g) // 2
    k = np.arange(-r, r + 1, dtype=np.float64)
    m0, m2, m4 = g.sum(), (g * k ** 2).sum(), (g * k ** 4).sum()
    taps = g * (m4 - m2 * k ** 2) / (m0 * m4 - m2 ** 2)  # weighted least squares, the constant term
    return taps / taps.sum()


def gaussian_filter(x: np.ndarray, sigma: float, quadratic: bool = False) -> np.ndarray:
    """Zero-phase Gaussian along axis 0 of x [T, ...] (float64); sigma <= 0 or T < 3 returns a copy.
    quadratic: a Gaussian-weighted local quadratic fit instead (`local_quadratic_kernel`)."""
    x = np.asarray(x, dtype=np.float64)
    t = x.shape[0]
    if sigma <= 0 or t < 3:
        return x.copy()
    taps = local_quadratic_kernel(sigma) if quadratic else gaussian_kernel(sigma)
    r = len(taps) // 2
    padded, rp = _point_reflect(x, r)
    if rp < r:  # short clip: fewer taps, renormalised
        taps = taps[r - rp:r + rp + 1]
        taps = taps / taps.sum()
        r = rp
    if r > _FFT_MIN_RADIUS:  # a wide window: one FFT product instead of r multiply-adds over the whole clip
        n = padded.shape[0] + 2 * r
        size = 1 << (n - 1).bit_length()
        spectrum = np.fft.rfft(padded, size, axis=0) * np.fft.rfft(taps, size).reshape((-1,) + (1,) * (x.ndim - 1))
        return np.fft.irfft(spectrum, size, axis=0)[2 * r:2 * r + t]
    out = taps[r] * padded[r:r + t]
    pair = np.empty_like(out)  # reused: the loop allocates nothing (the same operations in the same order)
    for k in range(r):  # symmetric taps: one multiply per pair
        np.add(padded[k:k + t], padded[2 * r - k:2 * r - k + t], out=pair)
        pair *= taps[k]
        out += pair
    return out


def running_median(x: np.ndarray, half: int) -> np.ndarray:
    """Median over a window of 2*half+1 frames along axis 0 of x [T, C] (T > half; ends: the window mirrored
    about the end frame, which so counts once: padded with copies of itself, a first frame 25 cm off was
    its own median and never found an outlier)."""
    t = x.shape[0]
    padded = np.pad(x, [(half, half)] + [(0, 0)] * (x.ndim - 1), mode="reflect")
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1, axis=0)[:t]  # [T, C, W]
    return np.partition(windows, half, axis=-1)[..., half]  # odd window: the middle order statistic


def outlier_frames(x: np.ndarray, half: int = 3, threshold: float = 4.0) -> np.ndarray:
    """Frames [T] bool whose vector x[t] [C] is far from the running median of its neighbours.

    A frame is an outlier when its distance to the running median exceeds `threshold` times the
    clip's median distance (a Hampel test on the frame's whole vector: noise level is learnt from the
    clip itself). Needs at least 2*half+2 frames, else nothing is flagged.
    """
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    if len(x) < 2 * half + 2:
        return np.zeros(len(x), bool)
    dev = np.linalg.norm(x - running_median(x, half), axis=1)
    scale = np.median(dev)
    if scale <= 0:
        return np.zeros(len(x), bool)
    return dev > threshold * scale


def fill_frames(x: np.ndarray, bad: np.ndarray) -> np.ndarray:
    """Replace frames x[bad] (x [T, ...]) by linear interpolation between the nearest good frames."""
    x = np.array(x, dtype=np.float64, copy=True)
    if not bad.any() or bad.all():
        return x
    t = np.arange(len(x))
    good = ~bad
    flat = x.reshape(len(x), -1)
    for c in range(flat.shape[1]):
        flat[bad, c] = np.interp(t[bad], t[good], flat[good, c])
    return flat.reshape(x.shape)


def continuous(q: np.ndarray) -> np.ndarray:
    """Sign-continuous copy of quaternions q [T, ..., 4] along time (dot(q[t], q[t-1]) >= 0)."""
    q = np.asarray(q, dtype=np.float64)
    dots = np.sum(q[1:] * q[:-1], axis=-1)
    sign = np.concatenate([np.ones((1,) + dots.shape[1:]), np.cumprod(np.where(dots < 0, -1.0, 1.0), axis=0)])
    return q * sign[..., None]


def smooth_quaternions(q: np.ndarray, sigma: float, bad: np.ndarray | None = None) -> np.ndarray:
    """Offline filter of rotations q [T, ..., 4]: sign continuity, fill `bad` frames, Gaussian, renormalise."""
    q = continuous(q)
    if bad is not None:
        q = fill_frames(q, bad)
    out = gaussian_filter(q, sigma)
    return out / np.linalg.norm(out, axis=-1, keepdims=True)


def _alpha(cutoff: np.ndarray, dt: float) -> np.ndarray:
    tau = 1.0 / (2.0 * np.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


def one_euro_positions(value: np.ndarray, speed: np.ndarray, x: np.ndarray, dt: float, min_cutoff: float,
                       beta: float, d_cutoff: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """One causal step for positions: (value [..., 3], speed [...]) of the previous step and sample x
    [..., 3] -> the new (value, speed). min_cutoff/d_cutoff in Hz, beta in s/m, dt in s."""
    raw_speed = np.linalg.norm(x - value, axis=-1) / dt
    speed = speed + _alpha(np.full_like(raw_speed, d_cutoff), dt) * (raw_speed - speed)
    a = _alpha(min_cutoff + beta * speed, dt)[..., None]
    return value + a * (x - value), speed


def one_euro_rotations(value: np.ndarray, speed: np.ndarray, q: np.ndarray, dt: float, min_cutoff: float,
                       beta: float, d_cutoff: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """One causal step on SO(3): (value [..., 4], angular speed [...]) and unit quaternions q [..., 4] ->
    the new (value, speed); the estimate moves along the geodesic towards q by alpha. beta in s/rad."""
    delta = quat_mul(quat_conj(value), align_signs(q, value))  # previous -> new sample, w >= 0
    s = np.linalg.norm(delta[..., 1:], axis=-1)
    angle = 2.0 * np.arctan2(s, np.abs(delta[..., 0]))
    speed = speed + _alpha(np.full_like(angle, d_cutoff), dt) * (angle / dt - speed)
    a = _alpha(min_cutoff + beta * speed, dt)
    half = 0.5 * a * angle  # exp(a * log(delta)): a fraction a of the step about the same axis
    axis = delta[..., 1:] / np.maximum(s, 1e-12)[..., None]
    step = np.concatenate([np.cos(half)[..., None], np.sin(half)[..., None] * axis], axis=-1)
    out = quat_mul(value, step)
    return out / np.linalg.norm(out, axis=-1, keepdims=True), speed


def acceleration_axes(x: np.ndarray) -> np.ndarray:
    """Orthonormal axes [3, 3] (rows) of x [T, 3]'s second differences, largest spread first: white noise
    is the same along every axis, so these are the directions in which the motion itself accelerates
    (vertical for a jump, forward and vertical for a walk). Filtering per axis in this frame keeps a
    jump's hard vertical accelerations from narrowing the filter of the quiet horizontal axes."""
    x = np.asarray(x, np.float64)
    if len(x) < 4:
        return np.eye(3)
    d2 = x[2:] - 2 * x[1:-1] + x[:-2]
    _, vecs = np.linalg.eigh(d2.T @ d2)
    return vecs[:, ::-1].T


# median of the chi distribution with k degrees of freedom: |white noise vector| of k axes, sigma = 1
_CHI_MEDIAN = {1: 0.6745, 2: 1.1774, 3: 1.5382}


def noise_sigma(x: np.ndarray, noise_dims: int = 1) -> float:
    """Robust per-axis white-noise level (same unit as x [T, ..., C]) from second differences.

    For white noise of sigma per axis the second difference has sigma * sqrt(6) per axis; its length over
    the last axis, which carries noise along `noise_dims` directions (1 for one coordinate, 3 for a unit
    quaternion: the 3 directions tangent to the sphere), has a known median. The median ignores the
    few frames where the motion itself accelerates hard (take-off, landing)."""
    x = np.asarray(x, np.float64)
    if len(x) < 5:
        return 0.0
    d2 = np.linalg.norm(x[2:] - 2 * x[1:-1] + x[:-2], axis=-1)
    return float(np.median(d2) / (_CHI_MEDIAN[noise_dims] * np.sqrt(6.0)))


def adaptive_filter(x: np.ndarray, sigmas: tuple[float, ...], gamma: float = 2.0, noise_dims: int = 1,
                    noise: float | None = None, also_gamma: float | None = None):
    """Per-frame widest local quadratic fit that the data allow (intersection of confidence intervals).

    x [T, ..., C]: the width is chosen per frame and per group of the last axis (a joint's quaternion, or
    one coordinate given as [T, 3, 1]); sigmas increasing (frames). At each frame the width grows while
    the wider fit stays within gamma standard deviations (its own plus each narrower one's, from the
    clip's noise level) of every narrower fit, so a smooth stretch (standing, walking) is filtered widely
    and a take-off or a landing, where a wide fit would be pulled away from the motion, keeps a narrow one.
    The chosen width is smoothed over time before the fits are blended, so a switch never pops.
    noise: the per-axis noise level if already known (else estimated from x).
    also_gamma: also return the same filter with this gamma (from the same fits, at no extra filtering cost):
    (fit, fit at also_gamma)."""
    x = np.asarray(x, np.float64)
    t = len(x)
    if t < 3 or not sigmas:
        return x.copy() if also_gamma is None else (x.copy(), x.copy())
    fits = np.stack([gaussian_filter(x, s, quadratic=True) for s in sigmas])  # [L, T, ..., C]
    sig = noise_sigma(x, noise_dims) if noise is None else noise
    out = _blend(fits, adaptive_level(x, fits, sigmas, gamma, sig))
    if also_gamma is None:
        return out
    return out, _blend(fits, adaptive_level(x, fits, sigmas, also_gamma, sig))


def adaptive_level(x: np.ndarray, fits: np.ndarray, sigmas: tuple[float, ...], gamma: float, sig: float) -> np.ndarray:
    """Chosen width per frame and group [T, ...] (fractional index into sigmas) of `adaptive_filter`, from
    its fits [L, T, ..., C] of x and the noise level sig."""
    std = np.array([sig * np.sqrt(np.sum(local_quadratic_kernel(s) ** 2)) for s in sigmas])
    ok = np.ones(x.shape[:-1], bool)
    level = np.zeros(x.shape[:-1])
    # |fit_k - fit_j| <= gamma (std_k + std_j) for every j < k, per component, is fit_k within gamma std_k of
    # the intersection [low, high] of the narrower fits' intervals fit_j -/+ gamma std_j: one comparison per
    # width instead of one per pair of widths
    low, high = fits[0] - gamma * std[0], fits[0] + gamma * std[0]
    for k in range(1, len(sigmas)):
        inside = (fits[k] >= low - gamma * std[k]) & (fits[k] <= high + gamma * std[k])
        # all over the last axis (1-4 long) as element-wise ands: numpy's reduce over it is slow
        ok &= functools.reduce(np.logical_and, np.moveaxis(inside, -1, 0))
        level += ok
        np.maximum(low, fits[k] - gamma * std[k], out=low)
        np.minimum(high, fits[k] + gamma * std[k], out=high)
    level = gaussian_filter(level, max(1.0, sigmas[0]))  # smooth the chosen width: no pop at a switch
    return np.clip(level, 0, len(sigmas) - 1)


def cross_validated_level(x: np.ndarray, fits: np.ndarray, sigmas: tuple[float, ...], level: np.ndarray, sig: float,
                          clip: float) -> np.ndarray:
    """Width index per frame and group [T, ...]: per group of the last axis either the adaptive `level` [T, ...] or
    one of the fits [L, T, ..., C] of x [T, ..., C] for the whole signal, whichever predicts the samples best
    when each is left out. Leave-one-out error of a linear smoother without refitting: residual / (1 - its
    centre tap); residuals longer than `clip` noise levels sig count as that long (outlier samples, which a
    narrow fit follows, do not decide). The per-frame tests of `adaptive_level` cannot see a bias smaller than
    the narrow fits' noise; pooled over the whole signal, a steady motion's best width (a slow sway) is found."""
    centre = np.array([k[len(k) // 2] for k in (local_quadratic_kernel(s) for s in sigmas)])
    limit = (clip * sig) ** 2 * x.shape[-1] if sig > 0 else np.inf

    def score(fit: np.ndarray, centre_tap) -> np.ndarray:
        squared = np.minimum(np.sum((x - fit) ** 2, axis=-1), limit)  # clipped squared residual [T, ...]
        return np.mean(squared / (1.0 - centre_tap) ** 2, 0)

    best_level = level
    best = score(_blend(fits, level), np.interp(level, np.arange(len(sigmas)), centre))
    for k in range(len(sigmas)):  # one width for the whole signal: its fit as it is, one centre tap
        s = score(fits[k], centre[k])
        best_level = np.where((s < best)[None], float(k), best_level)
        best = np.minimum(s, best)
    return best_level


def robust_filter(x: np.ndarray, sigmas: tuple[float, ...], gamma: float, clip: float, noise_dims: int = 1,
                  cap: int | None = None, cross_validate: bool | np.ndarray = False):
    """`adaptive_filter` that large noise samples do not pull (one Huber step of pseudo-observations).

    x [T, ..., C]. After the fit, every sample whose residual (length over the last axis) exceeds `clip`
    times the clip's noise level is moved to that distance from the fit, and these samples are filtered
    again with the same widths. A least-squares window is pulled by each sample in proportion to its error,
    so a few 3-sigma samples close together bend the fit by a large fraction of the noise; clipped, they
    still count, but no more than a typical sample.
    cap: also return the same filter with the widths capped at sigmas[cap] (from the same fits, at no
    extra cost): (fit, capped fit).
    cross_validate: per group of the last axis, the adaptive widths or one width for the whole signal,
    whichever `cross_validated_level` prefers; True for every group, or a bool mask [...] over the groups
    (x.shape[1:-1]) for those only."""
    x = np.asarray(x, np.float64)
    if len(x) < 3 or not sigmas:
        return x.copy() if cap is None else (x.copy(), x.copy())
    sig = noise_sigma(x, noise_dims)
    fits = np.stack([gaussian_filter(x, s, quadratic=True) for s in sigmas])
    level = adaptive_level(x, fits, sigmas, gamma, sig)
    if np.any(cross_validate):
        chosen = cross_validated_level(x, fits, sigmas, level, sig, clip)
        level = np.where(np.asarray(cross_validate)[None], chosen, level)
    fit = _blend(fits, level)
    if sig > 0:
        r = x - fit
        norm = np.linalg.norm(r, axis=-1, keepdims=True)
        excess = r * (1.0 - np.minimum(1.0, clip * sig / np.maximum(norm, 1e-12)))  # the part beyond the clip
        e_fits = np.stack([gaussian_filter(excess, s, quadratic=True) for s in sigmas])
    else:
        e_fits = np.zeros_like(fits)
    out = fit - _blend(e_fits, level)
    if cap is None:
        return out
    capped = np.minimum(level, cap)
    return out, _blend(fits, capped) - _blend(e_fits, capped)


def _blend(fits: np.ndarray, level: np.ndarray) -> np.ndarray:
    """Per element the fit at the fractional width index level [T, ...] (linear between the two nearest)
    of fits [L, T, ..., C]."""
    level = level[None, ..., None]
    lo = np.floor(level).astype(int)
    w = level - lo
    a = np.take_along_axis(fits, lo, 0)[0]
    b = np.take_along_axis(fits, np.minimum(lo + 1, len(fits) - 1), 0)[0]
    return (1 - w[0]) * a + w[0] * b
