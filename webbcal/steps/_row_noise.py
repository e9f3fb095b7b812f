"""Row-correlated (1/f) noise that the reference-pixel correction leaves behind.

The side reference columns are 4 (one-output subarrays) or 8 pixels wide, so refpix has to
smooth them over ``side_smoothing_length`` rows: 1/f noise faster than that, and the
reference pixels' own read noise, stay in every row. That residual is common to a whole
row within a group and independent from group to group, i.e. it acts like extra read
noise per group that the READNOISE reference does not contain. Left out, the official
ERR is too small (robust pull sigma 1.07 full frame, 1.30 on subarrays) and jump flags
noise as cosmic rays.

``residual_row_noise`` measures it on the science pixels after refpix: the median of each
row of each group difference, minus that row's mean over the differences (which removes
the scene and sky), has variance 2·s²·(1 − 1/k²) + white for k differences and row noise
s per group. Taking the medians over two interleaved sets of columns, the row noise is
common to both and the white part is not, so their covariance gives s² without any model
of the white noise. refpix
records s as ``ROWNOISE``; jump and ramp_fit add it to the per-group read noise
(webbcal extension, parameter ``use_row_noise``).
"""

from __future__ import annotations

import numpy as np

from webbcal import dqflags

KEYWORD = "ROWNOISE"
COMMENT = "[DN] residual row noise per group after refpix"
_TARGET_COLUMNS = 256  # columns sampled per row, 128 per half


def residual_row_noise(data: np.ndarray, groupdq: np.ndarray, pixeldq: np.ndarray) -> float:
    """Row noise per group (DN) left in ``data`` (nints, ngroups, ny, nx); 0 if unmeasurable."""
    nints, ngroups, ny, nx = data.shape
    k = ngroups - 1
    if k < 2:
        return 0.0
    usable_pix = (pixeldq & (dqflags.DO_NOT_USE | dqflags.REFERENCE_PIXEL)) == 0
    rows = np.flatnonzero(usable_pix.any(axis=1))
    cols = np.flatnonzero(usable_pix.any(axis=0))
    cols = cols[:: max(1, cols.size // _TARGET_COLUMNS)]
    if rows.size < 16 or cols.size < 16:
        return 0.0
    pix_ok = usable_pix[np.ix_(rows, cols)]
    row_index, col_index = _as_slice(rows), _as_slice(cols)
    plus, minus = [], []
    for i in range(nints):
        # a strided view of a few hundred columns (a slice when the sampled rows and
        # columns are evenly spaced, as on any detector without masked edge columns)
        sub = data[i][:, :, col_index][:, row_index].astype(np.float32)
        sub[(groupdq[i][:, :, col_index][:, row_index] != 0) | ~pix_ok[None]] = np.nan
        diffs = np.diff(sub, axis=0)  # (k, nrows, ncols)
        good_rows = (np.isfinite(diffs).sum(axis=2) >= 0.5 * cols.size).all(axis=0)
        if good_rows.sum() < 16:
            continue
        diffs = diffs[:, good_rows]
        # Two interleaved column sets see the same row noise but independent white noise.
        halves = [_nan_median_last_axis(diffs[:, :, h::2]) for h in (0, 1)]
        resid = [m - m.mean(axis=0) for m in halves]
        plus.append((resid[0] + resid[1]).ravel())
        minus.append((resid[0] - resid[1]).ravel())
    if not plus:
        return 0.0
    # cov(a, b) = (var(a + b) - var(a - b)) / 4, with robust variances
    covariance = (_robust_var(np.concatenate(plus)) - _robust_var(np.concatenate(minus))) / 4
    s2 = covariance / (2 * (1 - 1 / k**2))
    return float(np.sqrt(s2)) if s2 > 0 else 0.0


def _as_slice(index: np.ndarray) -> slice | np.ndarray:
    """``index`` as an equivalent slice when its steps are all equal (a view, not a copy)."""
    if index.size >= 2:
        step = int(index[1] - index[0])
        if step > 0 and np.all(np.diff(index) == step):
            return slice(int(index[0]), int(index[-1]) + 1, step)
    return index


def _robust_var(values: np.ndarray) -> float:
    values = values[np.isfinite(values)]
    return float((1.4826 * np.median(np.abs(values - np.median(values)))) ** 2)


def _nan_median_last_axis(values: np.ndarray) -> np.ndarray:
    """Median over the last axis ignoring NaN (sorting puts NaN last); a fast nanmedian."""
    ordered = np.sort(values, axis=-1)
    count = np.count_nonzero(~np.isnan(values), axis=-1)
    half = count // 2
    upper = np.take_along_axis(ordered, np.minimum(half, values.shape[-1] - 1)[..., None], -1)[..., 0]
    lower = np.take_along_axis(ordered, np.maximum(half - 1, 0)[..., None], -1)[..., 0]
    median = np.where(count % 2 == 1, upper, (lower + upper) / 2.0)
    median[count == 0] = np.nan
    return median


def effective_read_noise(read_noise_cds: np.ndarray, meta, nframes: int, enabled: bool) -> np.ndarray:
    """CDS read noise (DN) with the measured row noise per group folded in.

    Per-group read noise is RN_CDS/sqrt(2·NFRAMES), so adding s² per group means
    RN_CDS² + 2·NFRAMES·s².
    """
    s = float(meta.get(KEYWORD, 0.0) or 0.0) if enabled else 0.0
    if s <= 0:
        return read_noise_cds
    return np.sqrt(read_noise_cds.astype(np.float64) ** 2 + 2.0 * nframes * s * s).astype(np.float32)
