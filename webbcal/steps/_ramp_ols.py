"""Optimally weighted OLS ramp fitting (the official ``OLS_C``), vectorized over pixels.

This reproduces stcal's ``slope_fitter.c`` pixel by pixel but works on blocks of pixels
at once, in float64, with the C code's formulas (results agree with it to float32
rounding: slopes as fixed combinations of the groups, ~1e-15 relative; the median rate of
the Poisson variance to float32 precision); see ``docs`` of ``ramp_fit`` for the model.

Pixels without any flag (one segment of every group, in every integration: nearly all
of them) take :func:`fit_clean_pixels`; the others :func:`fit_segmented_pixels`, the
general bookkeeping below.

Per integration and pixel:

1. Load: saturated groups -> NaN; count good / saturated / unusable groups; optionally
   (``suppress_one_group`` off) mark "zeroth-group" integrations and substitute ZEROFRAME.
2. Median rate of the pixel (Poisson estimate) from the first differences.
3. Segments: maximal runs of good groups, extended backwards over a group flagged exactly
   JUMP_DET; one-group segments are dropped when a longer one exists, otherwise only the
   first is kept.
4. Segment fits (1, 2 or >= 3 groups) and their variances; inverse-variance sums give the
   integration and exposure results (slopes weighted by read-noise variance).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from webbcal import dqflags
from webbcal.steps._ramp_order import MAX_NETWORK_LENGTH, sorted_rows
from webbcal.steps._ramp_stats import nan_median_axis0

DNU = dqflags.DO_NOT_USE
SAT = dqflags.SATURATED
JUMP = dqflags.JUMP_DET
PERS = dqflags.PERSISTENCE
CHARGELOSS = dqflags.CHARGELOSS
INVALID = DNU | SAT
NO_GAIN = dqflags.NO_GAIN_VALUE
LARGE_VARIANCE_THRESHOLD = 1.0e6
NOT_PERS = np.uint8(0xFF ^ PERS)


@dataclass
class RampFitResult:
    """Exposure (2-D) and per-integration (3-D) slopes in DN/s, variances in (DN/s)^2."""

    slope: np.ndarray
    err: np.ndarray
    dq: np.ndarray
    var_poisson: np.ndarray
    var_rnoise: np.ndarray
    int_slope: np.ndarray
    int_err: np.ndarray
    int_dq: np.ndarray
    int_var_poisson: np.ndarray
    int_var_rnoise: np.ndarray


@dataclass(frozen=True)
class _Timing:
    group: float      # TGROUP as the C code sees it (float32 precision)
    frame: float      # TFRAME (float32 precision)
    one_group: float  # (NFRAMES + 1) * TFRAME / 2: time of a ramp with only group 0
    suppress: bool
    nframes: int = 1  # frames averaged per group
    frame_step: int = 1  # NFRAMES + GROUPGAP: frames from one group's start to the next
    exact_variance: bool = False  # webbcal: variances of the estimator actually used


@dataclass
class _Segments:
    """Flat list of segments of one integration, ordered by pixel then start group."""

    pix: np.ndarray
    start: np.ndarray
    length: np.ndarray


def per_group_read_noise(read_noise_cds: np.ndarray, gain: np.ndarray, nframes: int) -> np.ndarray:
    """Read noise of one group in electrons (float32, as stcal computes it)."""
    scale = gain.astype(np.float64) / np.sqrt(2.0 * nframes)
    return (read_noise_cds.astype(np.float32).astype(np.float64) * scale).astype(np.float32)


def find_segments(groupdq: np.ndarray, usable_start: np.ndarray | None = None) -> _Segments:
    """Segments of every pixel of one integration (``groupdq`` is (ngroups, npix) uint8).

    ``usable_start`` False removes all segments of a pixel (saturated group 0). Segments
    of one pixel are listed in group order (the combination sums follow that order).
    """
    q = groupdq & NOT_PERS
    ngroups, npix = q.shape
    usable = np.ones(npix, bool) if usable_start is None else usable_start
    clean = usable & np.all(q == 0, axis=0)  # the usual case: one segment, every group
    clean_pix = np.flatnonzero(clean)
    others = np.flatnonzero(usable & ~clean)
    pix, start, length = _split_segments(q[:, others])
    return _Segments(np.concatenate([clean_pix, others[pix]]),
                     np.concatenate([np.zeros(clean_pix.size, np.int64), start]),
                     np.concatenate([np.full(clean_pix.size, ngroups, np.int64), length]))


def _split_segments(q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Runs of good groups (a group flagged exactly JUMP_DET before a run starts it), pruned."""
    good = q == 0
    prev_good = np.zeros_like(good)
    prev_good[1:] = good[:-1]
    next_good = np.zeros_like(good)
    next_good[:-1] = good[1:]
    pix, first = np.nonzero((good & ~prev_good).T)
    _, last = np.nonzero((good & ~next_good).T)
    jump_before = np.zeros(first.shape, dtype=bool)
    inner = first > 0
    jump_before[inner] = q[first[inner] - 1, pix[inner]] == JUMP
    start = first - jump_before
    length = last + 1 - start
    # Pruning: with any segment of >= 2 groups drop the 1-group ones, else keep the first.
    longest = np.zeros(q.shape[1], dtype=np.int64)
    if pix.size:
        np.maximum.at(longest, pix, length)
    first_of_pixel = np.ones(pix.shape, dtype=bool)
    first_of_pixel[1:] = pix[1:] != pix[:-1]
    keep = np.where(longest[pix] >= 2, length >= 2, first_of_pixel)
    return pix[keep], start[keep], length[keep]


def _integration_median_rate(data: np.ndarray, gdq: np.ndarray, tgroup: float) -> np.ndarray:
    """Median of the first differences (DN/s) of one integration; jumps and DNU excluded."""
    rate = data / tgroup
    rate[(gdq & DNU) != 0] = np.nan
    first = rate[0].copy()
    diffs = rate[1:] - rate[:-1]
    diffs[(gdq[1:] & JUMP) != 0] = np.nan
    all_nan = np.all(np.isnan(diffs), axis=0)
    use_first = all_nan & ~np.isnan(first)
    diffs[0, use_first] = first[use_first]
    return _median_for_variance(diffs)


def _median_for_variance(values: np.ndarray) -> np.ndarray:
    """NaN-ignoring median over axis 0, to float32 precision where no value is NaN.

    It only sets the Poisson variance (a 6e-8 relative error there is irrelevant), so the
    columns without NaN are sorted as float32 by a sorting network, several times faster
    than ``np.sort`` of float64; columns with NaN (or inf) use the exact NaN-median.
    """
    n = values.shape[0]
    if n < 2 or n > MAX_NETWORK_LENGTH:
        return nan_median_axis0(values)
    rows = sorted_rows(values.astype(np.float32))
    upper = rows[n // 2].astype(np.float64)
    median = upper if n % 2 else (rows[n // 2 - 1] + upper) / 2.0
    irregular = np.flatnonzero(~np.isfinite(rows[-1]))  # a NaN (or inf) in the column
    if irregular.size:
        median[irregular] = nan_median_axis0(values[:, irregular])
    return median


def _segment_read_variance(length: np.ndarray, rnoise: np.ndarray, gain: np.ndarray,
                           timing: np.ndarray | float, tgroup: float) -> np.ndarray:
    """Read-noise variance of segments of any length (C ``segment_rnoise_*``)."""
    out = np.empty(length.shape, dtype=np.float64)
    short = length <= 2
    t = np.broadcast_to(np.asarray(timing, dtype=np.float64), length.shape)
    rnum = rnoise[short] / np.where(length[short] == 1, t[short], tgroup)
    rnum = 12.0 * rnum * rnum
    out[short] = rnum / (6.0 * gain[short] * gain[short])
    long_ = ~short
    g = gain[long_]
    rnum = rnoise[long_] / tgroup
    rnum = 12.0 * rnum * rnum
    n = length[long_].astype(np.float64)
    rden = n * n * n - n
    with np.errstate(divide="ignore", invalid="ignore"):
        var = rnum / (rden * g * g)
    var[(g <= 0.0) | np.isnan(g)] = 0.0
    out[long_] = var
    return out


# Optimal-weighting exponent by segment SNR: below 5, 5-10, 10-20, 20-50, 50-100, above.
_SNR_EDGES = np.array([5.0, 10.0, 20.0, 50.0, 100.0])
_POWERS = np.array([0.0, 0.4, 1.0, 3.0, 6.0, 10.0], dtype=np.float32)


def _snr_power_class(snr: np.ndarray) -> np.ndarray:
    """Index into ``_POWERS`` (NaN SNR sorts last and gets the largest exponent, as in C)."""
    return np.searchsorted(_SNR_EDGES, snr, side="right")


def _fit_long_segments(data: np.ndarray, pix: np.ndarray, start: int, n: int,
                       rnoise: np.ndarray, gain: np.ndarray, tgroup: float,
                       variance_factors: list | None = None) -> np.ndarray:
    """Optimally weighted OLS slopes (DN/s) of segments of groups ``start``..``start+n-1``.

    The weights are the C code's (``powf`` exponents by SNR class, rounded to float32,
    times 1/rn²); the common 1/rn² cancels in the slope, so a slope is a fixed linear
    combination of the groups for each of the six exponent classes
    (:func:`_segment_coefficients`): one small matrix product gives all six, and each
    pixel takes its class's. Agrees with the C accumulation to ~1e-15 relative. With
    ``variance_factors`` = [group covariance], its content is replaced by the per-pixel
    (sum c_j², cᵀ K c) of :func:`_class_variance_factors` (webbcal ``exact_variance``).
    """
    ramp = data[start:start + n][:, pix]
    signal = ramp[-1] - ramp[0]
    rn = rnoise[pix]
    g = gain[pix]
    den = rn * rn + signal * g
    snr = (signal * g) / np.sqrt(np.where(den > 0, den, 1.0))
    snr = np.where((den <= 0.0) | (g == 0.0), 0.0, np.where(snr < 0.0, 0.0, snr))
    snr[np.isnan(den)] = np.nan
    power_class = _snr_power_class(snr)
    ramp[np.isnan(ramp)] = 0.0
    coefficients, table = _segment_coefficients(n)
    by_class = coefficients @ ramp  # (classes, pixels)
    slope = by_class[power_class, np.arange(pix.size)] / tgroup
    # the C weights are infinite or NaN for a zero or NaN read noise: so is its slope
    slope[~np.isfinite(1.0 / (rn * rn))] = np.nan
    if variance_factors is not None:  # holds the group covariance; gets per-pixel factors
        cov = variance_factors.pop()
        variance_factors.append(_class_variance_factors(table, n, cov)[:, power_class])
    return slope


@lru_cache(maxsize=None)
def _segment_coefficients(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(c (classes, n), weights (n, classes)): slope·TGROUP = sum_j c_j y_j per SNR class.

    Weights are powf(|(j - mid) / mid|, P) as the C code computes them (float32, 0^0 = 1);
    c_j = w_j (Sw x_j - Sx) / (Sw Sxx - Sx²) is the weighted least-squares slope.
    """
    mid = (n - 1) / 2.0
    invmid = 1.0 / mid
    bases = np.array([abs((j - mid) * invmid) for j in range(n)], dtype=np.float32)
    table = np.power(bases[:, None], _POWERS[None, :]).astype(np.float64)
    x = np.arange(n, dtype=np.float64)
    coefficients = np.empty((table.shape[1], n))
    for k in range(table.shape[1]):
        w = table[:, k]
        sw, sx, sxx = w.sum(), (w * x).sum(), (w * x * x).sum()
        coefficients[k] = w * (sw * x - sx) / (sw * sxx - sx * sx)
    coefficients.flags.writeable = False
    table.flags.writeable = False
    return coefficients, table


def _class_variance_factors(table: np.ndarray, n: int, cov: np.ndarray) -> np.ndarray:
    """(sum c_j², cᵀ K c) for each weighting-exponent class of an n-group segment.

    The slope is sum_j c_j y_j with c_j = w_j (Sw x_j - Sx) / Den: a common factor of the
    weights (1/rn²) cancels and a shift of x does not matter, so c depends only on n and
    the exponent class, and so do the variance factors.
    """
    coefficients, _ = _segment_coefficients(n)
    out = np.empty((2, coefficients.shape[0]))
    for k, c in enumerate(coefficients):
        out[0, k] = (c * c).sum()
        out[1, k] = c @ cov @ c
    return out


def _group_covariance(n: int, nframes: int, frame_step: int) -> np.ndarray:
    """Poisson covariance of n consecutive group averages, in frame times per unit rate.

    Charge grows as a Poisson process, so Cov(Q(t), Q(t')) ∝ min(t, t'); a group is the
    mean of ``nframes`` frames, ``frame_step`` frames apart from one group to the next.
    A common offset of all times cancels in a slope (its coefficients sum to 0).
    """
    frames = np.arange(n)[:, None] * frame_step + np.arange(nframes)[None, :]
    flat = frames.ravel()
    both = np.minimum(flat[:, None], flat[None, :]).reshape(n, nframes, n, nframes)
    return both.mean(axis=(1, 3)).astype(np.float64)


def _exact_variances(factors: np.ndarray, rn_dn: np.ndarray, rate_dn: np.ndarray,
                     t: _Timing) -> tuple[np.ndarray, np.ndarray]:
    """Read-noise and Poisson variances (DN/s)^2 of slopes sum_j c_j y_j / TGROUP.

    ``factors`` (2, npix): sum c_j² and cᵀ K c (K from :func:`_group_covariance`); white
    read noise ``rn_dn`` per group; Poisson from ``rate_dn`` (DN/s incl. dark, per gain).
    """
    t2 = t.group * t.group
    return factors[0] * rn_dn * rn_dn / t2, rate_dn * t.frame * factors[1] / t2


def _len1_timing(pix: np.ndarray, zeroth: np.ndarray, zframe: np.ndarray, t: _Timing) -> np.ndarray:
    timing = np.full(pix.shape, t.group)
    if not t.suppress:
        timing[zframe[pix]] = t.frame
        timing[zeroth[pix]] = t.one_group
    return timing


def _fit_segments(data, segs: _Segments, rnoise, gain, dark, mrate, zeroth, zframe, t: _Timing):
    """Slope, Poisson, read-noise and total variance of every segment (flat arrays)."""
    pix, start, length = segs.pix, segs.start, segs.length
    slope = np.empty(pix.shape)
    timing = np.full(pix.shape, t.group)
    one = length == 1
    timing[one] = _len1_timing(pix[one], zeroth, zframe, t)
    slope[one] = data[start[one], pix[one]] / timing[one]
    two = length == 2
    slope[two] = (data[start[two] + 1, pix[two]] - data[start[two], pix[two]]) / t.group
    ngroups = data.shape[0]
    long_ = length >= 3
    kind = np.where(long_, length * ngroups + start, -1)
    exact = {}
    for key in np.unique(kind[long_]):
        sel = kind == key
        n, first = divmod(int(key), ngroups)
        factors = [_group_covariance(n, t.nframes, t.frame_step)] if t.exact_variance else None
        slope[sel] = _fit_long_segments(data, pix[sel], first, n, rnoise, gain, t.group, factors)
        if factors is not None:
            exact[key] = (sel, factors[0])
    g = gain[pix]
    pden = timing * g
    pden[long_] = pden[long_] * (length[long_] - 1.0)
    m = mrate[pix]
    with np.errstate(divide="ignore", invalid="ignore"):
        var_p = np.where(m > 0.0, m + dark[pix], dark[pix]) / pden
    var_r = _segment_read_variance(length, rnoise[pix], g, timing, t.group)
    if t.exact_variance:
        with np.errstate(divide="ignore", invalid="ignore"):
            poisson_rate = np.where(m > 0.0, m + dark[pix], dark[pix]) / g  # (DN/s)/(e/DN)
            rn_dn = rnoise[pix] / g
        good_gain = g > 0.0  # bad gains (pixel DO_NOT_USE) keep the official values
        two &= good_gain
        if two.any():
            cov = _group_covariance(2, t.nframes, t.frame_step)
            factors = np.array([[2.0], [cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]]])
            vr, vp = _exact_variances(factors, rn_dn[two], poisson_rate[two], t)
            var_r[two], var_p[two] = vr, vp
        for sel, factors in exact.values():
            idx = np.flatnonzero(sel)
            idx = idx[good_gain[idx]]
            ok = good_gain[sel]
            vr, vp = _exact_variances(factors[:, ok], rn_dn[idx], poisson_rate[idx], t)
            var_r[idx], var_p[idx] = vr, vp
    return slope, var_p, var_r, var_p + var_r


def _sum_by_pixel(pix: np.ndarray, values: np.ndarray, npix: int) -> np.ndarray:
    """Per-pixel sums in segment order (``bincount`` adds sequentially, like the C loop)."""
    return np.bincount(pix, weights=values, minlength=npix)


def _rnoise_inverse_sum(segs: _Segments, rnoise, gain, zeroth, zframe, t: _Timing, npix):
    timing = np.full(segs.pix.shape, t.group)
    one = segs.length == 1
    timing[one] = _len1_timing(segs.pix[one], zeroth, zframe, t)
    var_r = _segment_read_variance(segs.length, rnoise[segs.pix], gain[segs.pix], timing, t.group)
    with np.errstate(divide="ignore"):
        inv = np.where(var_r > 0.0, 1.0 / np.where(var_r > 0.0, var_r, 1.0), 0.0)
    return _sum_by_pixel(segs.pix, inv, npix)


@dataclass
class _Loaded:
    """Per-integration bookkeeping of one block (arrays are (nints, npix))."""

    zeroth: np.ndarray       # only group 0 good: fitted as S0 / one-group time
    zframe: np.ndarray       # no good group, ZEROFRAME used as group 0
    cnt_sat: np.ndarray
    cnt_dnu_sat: np.ndarray
    chargeloss: np.ndarray
    int_dq: np.ndarray


def _load(data, gdq, pdq, zeroframe, t: _Timing) -> _Loaded:
    """NaN saturated groups, count flags, apply the one-group / ZEROFRAME rules (in place)."""
    nints, ngroups, npix = data.shape
    shape = (nints, npix)
    loaded = _Loaded(np.zeros(shape, bool), np.zeros(shape, bool), np.empty(shape, np.int64),
                     np.empty(shape, np.int64), np.empty(shape, bool),
                     np.empty(shape, np.uint32))
    for i in range(nints):
        q = gdq[i]
        sat = (q & SAT) != 0
        data[i][sat] = np.nan
        cnt_good = np.sum(q == 0, axis=0)
        loaded.cnt_sat[i] = np.sum(sat, axis=0)
        loaded.cnt_dnu_sat[i] = np.sum((q & INVALID) != 0, axis=0)
        loaded.chargeloss[i] = np.any((q & CHARGELOSS) != 0, axis=0)
        dq = loaded.int_dq[i]
        dq[:] = pdq
        dq[np.any((q & JUMP) != 0, axis=0)] |= np.uint32(JUMP)
        dq[np.any((q & PERS) != 0, axis=0)] |= np.uint32(PERS)
        if t.suppress:
            continue
        loaded.zeroth[i] = (cnt_good == 1) & (q[0] == 0)
        if zeroframe is not None:
            use = (cnt_good == 0) & (zeroframe[i] != 0.0)
            data[i, 0, use] = zeroframe[i][use]
            q[0, use] = 0
            loaded.cnt_dnu_sat[i][use] -= 1
            loaded.cnt_sat[i][use & (loaded.cnt_sat[i] == ngroups)] -= 1
            loaded.zframe[i] = use
    return loaded


def _median_rate(data, gdq, loaded: _Loaded, t: _Timing) -> np.ndarray:
    """Pixel median rate (mean over integrations) used for the Poisson variance."""
    nints, ngroups, npix = data.shape
    mrate = np.zeros(npix)
    for i in range(nints):
        if ngroups == 1:  # NaN is kept here, as in C
            mrate += data[i, 0] / t.one_group
            continue
        m = _integration_median_rate(data[i], gdq[i], t.group)
        zeroth, zframe = loaded.zeroth[i], loaded.zframe[i]
        m[zeroth] = data[i, 0, zeroth] / t.one_group
        m[zframe] = data[i, 0, zframe] / t.frame
        m[np.isnan(m)] = 0.0
        mrate += m
    return mrate / float(nints)


@dataclass
class _IntegrationFit:
    slope: np.ndarray
    var_p: np.ndarray
    var_r: np.ndarray
    err: np.ndarray
    inv_p: np.ndarray   # sums of inverse variances and of slope / var_r, for the exposure
    inv_r: np.ndarray
    num: np.ndarray


def _fit_integration(data, dq, segs: _Segments, rnoise, gain, dark, mrate, zeroth,
                     zframe, t: _Timing) -> _IntegrationFit:
    """Combine the segments of one integration (read-noise-variance weighted slope)."""
    npix = dq.shape[0]
    slope, var_p, var_r, var_e = _fit_segments(data, segs, rnoise, gain, dark, mrate,
                                               zeroth, zframe, t)
    inv_r = _sum_by_pixel(segs.pix, 1.0 / var_r, npix)
    inv_p = _sum_by_pixel(segs.pix, np.where(var_p > 0.0, 1.0 / var_p, 0.0), npix)
    inv_e = _sum_by_pixel(segs.pix, 1.0 / var_e, npix)
    num = _sum_by_pixel(segs.pix, slope / var_r, npix)
    fitted = np.bincount(segs.pix, minlength=npix) > 0
    ivp = np.where(inv_p > 0.0, 1.0 / inv_p, 0.0)
    ivp[ivp >= LARGE_VARIANCE_THRESHOLD] = 0.0
    ivr = np.where(fitted, 1.0 / inv_r, 0.0)
    ivr[ivr >= LARGE_VARIANCE_THRESHOLD] = 0.0
    var_err = 1.0 / inv_e
    err = np.where(var_err > LARGE_VARIANCE_THRESHOLD, 0.0, np.sqrt(var_err))
    good = fitted & ((dq & INVALID) == 0)
    return _IntegrationFit(np.where(good, num * ivr, 0.0), np.where(good, ivp, 0.0),
                           np.where(good, ivr, 0.0), np.where(good, err, 0.0),
                           inv_p, inv_r, num)


def fit_block(data, groupdq, pixeldq, rnoise, gain, dark, zeroframe, t: _Timing):
    """Fit one block of pixels. ``data`` (nints, ngroups, npix) float64 is modified.

    Returns exposure (slope, err, dq, var_p, var_r), per-integration arrays (dict: slope,
    var_p, var_r, err) and per-integration DQ. Pixels without any flag (most of them)
    take :func:`fit_clean_pixels`, the others the general segment bookkeeping.
    """
    nints, ngroups, npix = data.shape
    clean = clean_pixels(data, groupdq, pixeldq, rnoise, gain) if ngroups >= 3 else None
    if clean is None or not clean.any():
        return fit_segmented_pixels(data, groupdq, pixeldq, rnoise, gain, dark, zeroframe, t)
    exposure, ints, int_dq = fit_clean_pixels(data, pixeldq, rnoise, gain, dark, t)
    others = np.flatnonzero(~clean)
    if others.size:
        sub = fit_segmented_pixels(
            data[:, :, others], groupdq[:, :, others], pixeldq[others], rnoise[others],
            gain[others], dark[others], None if zeroframe is None else zeroframe[:, others], t)
        for whole, part in zip(exposure, sub[0]):
            whole[others] = part
        for key, part in sub[1].items():
            ints[key][:, others] = part
        int_dq[:, others] = sub[2]
    return exposure, ints, int_dq


def clean_pixels(data, groupdq, pixeldq, rnoise, gain) -> np.ndarray:
    """Pixels with no group flag, a usable pixel DQ, gain and read noise, and finite data:
    one segment per integration, every group in it."""
    clean = ~np.any(groupdq, axis=(0, 1))
    clean &= (pixeldq & np.uint32(INVALID)) == 0
    clean &= (gain > 0.0) & np.isfinite(gain) & (rnoise > 0.0) & np.isfinite(rnoise)
    clean &= np.isfinite(data).all(axis=(0, 1))
    return clean


def _combine_integrations(sum_p, sum_r, sum_num):
    """Exposure slope, ERR, VAR_POISSON and VAR_RNOISE from the per-pixel sums over
    integrations of 1/var_p, 1/var_r and slope/var_r (huge variances become 0)."""
    var_p = np.where(sum_p > 0.0, 1.0 / sum_p, sum_p)
    var_p[(var_p >= LARGE_VARIANCE_THRESHOLD) | (var_p < 0.0)] = 0.0
    var_r = np.where(sum_r > 0.0, 1.0 / sum_r, sum_r)
    var_r[var_r >= LARGE_VARIANCE_THRESHOLD] = 0.0
    return sum_num * var_r, np.sqrt(var_p + var_r), var_p, var_r


def fit_clean_pixels(data, pixeldq, rnoise, gain, dark, t: _Timing):
    """:func:`fit_segmented_pixels` for pixels whose ramps are all one whole segment.

    Computed for every pixel of the block (callers overwrite the others), with the same
    formulas in the same order, without the segment bookkeeping: a slope is the weighted
    combination of its groups (:func:`_segment_coefficients`), the segment is the
    integration and the integrations combine by inverse read-noise variance.
    """
    nints, ngroups, npix = data.shape
    pixels = np.arange(npix)
    coefficients, table = _segment_coefficients(ngroups)
    median = np.zeros(npix)
    slopes, classes = [], []
    for i in range(nints):
        ramp = data[i]
        # the C median rate differences data / TGROUP; the difference is below float32
        # precision, which is what _median_for_variance keeps anyway
        median += _median_for_variance(np.diff(ramp, axis=0)) / t.group
        signal = ramp[-1] - ramp[0]
        den = rnoise * rnoise + signal * gain
        snr = (signal * gain) / np.sqrt(np.where(den > 0, den, 1.0))
        snr = np.where(den <= 0.0, 0.0, np.where(snr < 0.0, 0.0, snr))
        classes.append(_snr_power_class(snr))
        slopes.append((coefficients @ ramp)[classes[-1], pixels] / t.group)
    mrate = median / float(nints)

    positive_rate = np.where(mrate > 0.0, mrate + dark, dark)
    n = float(ngroups)
    if t.exact_variance:
        rn_dn = rnoise / gain
        factors = _class_variance_factors(
            table, ngroups, _group_covariance(ngroups, t.nframes, t.frame_step))
    else:
        rnum = rnoise / t.group
        var_r_official = 12.0 * rnum * rnum / ((n * n * n - n) * gain * gain)
        var_p_official = positive_rate / (t.group * gain * (n - 1.0))
    out = {k: np.zeros((nints, npix)) for k in ("slope", "var_p", "var_r", "err")}
    sum_p, sum_r, sum_num = np.zeros(npix), np.zeros(npix), np.zeros(npix)
    for i in range(nints):
        if t.exact_variance:
            var_r, var_p = _exact_variances(factors[:, classes[i]], rn_dn, positive_rate / gain, t)
        else:
            var_r, var_p = var_r_official, var_p_official
        inv_r = 1.0 / var_r
        inv_p = np.where(var_p > 0.0, 1.0 / var_p, 0.0)
        num = slopes[i] / var_r
        ivp = np.where(inv_p > 0.0, 1.0 / inv_p, 0.0)
        ivp[ivp >= LARGE_VARIANCE_THRESHOLD] = 0.0
        ivr = 1.0 / inv_r
        ivr[ivr >= LARGE_VARIANCE_THRESHOLD] = 0.0
        var_err = 1.0 / (1.0 / (var_p + var_r))
        out["slope"][i] = num * ivr
        out["var_p"][i], out["var_r"][i] = ivp, ivr
        out["err"][i] = np.where(var_err > LARGE_VARIANCE_THRESHOLD, 0.0, np.sqrt(var_err))
        sum_p += inv_p
        sum_r += inv_r
        sum_num += num

    pdq = pixeldq.astype(np.uint32)
    slope, err, var_p, var_r = _combine_integrations(sum_p, sum_r, sum_num)
    return (slope, err, pdq, var_p, var_r), out, np.repeat(pdq[None], nints, axis=0)


def fit_segmented_pixels(data, groupdq, pixeldq, rnoise, gain, dark, zeroframe, t: _Timing):
    """:func:`fit_block` for any pixels: segments split at jumps and unusable groups."""
    nints, ngroups, npix = data.shape
    orig_gdq = groupdq.copy() if np.any(groupdq & CHARGELOSS) else None
    gdq = groupdq.copy()
    if t.suppress:
        one_good = np.sum((gdq & NOT_PERS) == 0, axis=1) == 1
        gdq |= (one_good[:, None, :] * np.uint8(DNU))
    pdq = pixeldq.astype(np.uint32)
    pdq[(gain <= 0.0) | np.isnan(gain)] |= np.uint32(NO_GAIN | DNU)

    loaded = _load(data, gdq, pdq, zeroframe, t)
    mrate = _median_rate(data, gdq, loaded, t)

    out = {k: np.zeros((nints, npix)) for k in ("slope", "var_p", "var_r", "err")}
    sum_p, sum_r, sum_num = np.zeros(npix), np.zeros(npix), np.zeros(npix)
    dnu_count = np.zeros(npix, dtype=np.int64)
    sat_count = np.zeros(npix, dtype=np.int64)
    any_partial_sat = np.zeros(npix, dtype=bool)
    for i in range(nints):
        dq = loaded.int_dq[i]
        sat0 = (gdq[i, 0] & SAT) != 0          # no slope: DNU | SAT
        dq[sat0] |= np.uint32(INVALID)
        all_bad = ~sat0 & (loaded.cnt_dnu_sat[i] == ngroups)
        dq[all_bad] |= np.uint32(DNU)
        dq[all_bad & (loaded.cnt_sat[i] == ngroups)] |= np.uint32(SAT)
        segs = find_segments(gdq[i], usable_start=~(sat0 | all_bad))
        fit = _fit_integration(data[i], dq, segs, rnoise, gain, dark, mrate,
                               loaded.zeroth[i], loaded.zframe[i], t)
        out["slope"][i], out["var_p"][i], out["var_r"][i], out["err"][i] = (
            fit.slope, fit.var_p, fit.var_r, fit.err)
        sum_p += fit.inv_p
        sum_r += fit.inv_r
        sum_num += fit.num
        out["slope"][i][(dq & INVALID) != 0] = np.nan
        dnu_count += (dq & DNU) != 0
        sat_count += (dq & SAT) != 0
        partial = loaded.cnt_sat[i] > 0        # flagged after the slope is final
        dq[partial] |= np.uint32(SAT)
        any_partial_sat |= partial

    rate_dq = pdq | np.bitwise_or.reduce(loaded.int_dq & np.uint32(JUMP | PERS), axis=0)
    rate_dq[dnu_count == nints] |= np.uint32(DNU)
    rate_dq[sat_count == nints] |= np.uint32(SAT)
    slope, err, var_p, var_r = _combine_integrations(sum_p, sum_r, sum_num)
    invalid = (rate_dq & INVALID) != 0
    slope[invalid] = np.nan
    var_p[invalid] = var_r[invalid] = err[invalid] = 0.0
    rate_dq[any_partial_sat] |= np.uint32(SAT)

    if orig_gdq is not None:
        _chargeloss_read_variance(orig_gdq, loaded.chargeloss, out["var_r"], var_r, rnoise,
                                  gain, loaded.zeroth, loaded.zframe, t)
    return (slope, err, rate_dq, var_p, var_r), out, loaded.int_dq


def _chargeloss_read_variance(orig_gdq, chargeloss, int_var_r, var_r, rnoise, gain,
                              zeroth, zframe, t: _Timing) -> None:
    """Recompute VAR_RNOISE as if CHARGELOSS groups were usable (C ``..._chargeloss``)."""
    nints, _, npix = orig_gdq.shape
    affected = np.any(chargeloss, axis=0)
    evar = np.zeros(npix)
    for i in range(nints):
        plain = ~chargeloss[i]
        with np.errstate(divide="ignore"):
            evar += np.where(plain & (int_var_r[i] > 0.0), 1.0 / int_var_r[i], 0.0)
        if not chargeloss[i].any():
            continue
        q = orig_gdq[i].copy()
        flip = (q & CHARGELOSS) != 0
        q[flip] ^= np.uint8(DNU | CHARGELOSS)
        segs = find_segments(q)
        inv = _rnoise_inverse_sum(segs, rnoise, gain, zeroth[i], zframe[i], t, npix)
        with np.errstate(divide="ignore"):
            new = 1.0 / inv
        new[new >= LARGE_VARIANCE_THRESHOLD] = 0.0
        int_var_r[i][chargeloss[i]] = new[chargeloss[i]]
        evar += np.where(chargeloss[i], inv, 0.0)
    update = affected & (evar > 0.0)
    with np.errstate(divide="ignore"):
        var_r[update] = 1.0 / evar[update]
    var_r[affected & (var_r >= LARGE_VARIANCE_THRESHOLD)] = 0.0
