"""The shortcuts of jump and ramp_fit give the answers of the general code they bypass."""

from __future__ import annotations

import numpy as np
import pytest

from webbcal import dqflags
from webbcal.steps import _ramp_jump as tp
from webbcal.steps import _ramp_ols as ols
from webbcal.steps._ramp_order import comparators, sorted_rows
from webbcal.steps._ramp_stats import nan_median_axis0

DNU, SAT, JUMP = dqflags.DO_NOT_USE, dqflags.SATURATED, dqflags.JUMP_DET


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 8, 9, 10, 17, 31])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sorting_network_sorts_and_nan_poisons_only_its_column(n, dtype):
    rng = np.random.default_rng(n)
    values = rng.normal(size=(n, 500)).astype(dtype)
    values[:, :20] = np.round(values[:, :20])  # ties
    values[rng.random(values.shape) < 0.01] = np.nan
    rows = np.array(sorted_rows(values))
    nan_columns = np.isnan(values).any(axis=0)
    np.testing.assert_array_equal(rows[:, ~nan_columns], np.sort(values[:, ~nan_columns], axis=0))
    np.testing.assert_array_equal(~np.isfinite(rows[-1]), nan_columns)
    assert len(comparators(9)) == 28  # Batcher's network for 9 inputs, pruned from 16


def _noise_diffs(rng, shape, rn2):
    """First differences of pure-noise ramps with a few jumps and near-threshold values."""
    diffs = rng.normal(0.0, 1.0, shape) * np.sqrt(rn2) + rng.uniform(0, 400, shape[1])
    hits = rng.random(shape) < 0.01
    diffs[hits] += rng.uniform(10.0, 2000.0, hits.sum())
    diffs[rng.random(shape) < 0.005] = np.nan
    diffs[:, :50] = np.round(diffs[:, :50] / 20.0) * 20.0  # tied largest |d|
    return diffs


@pytest.mark.parametrize("ndiffs", [2, 3, 4, 5, 9, 18])
@pytest.mark.parametrize("nframes", [1, 4])
def test_first_pass_screen_equals_the_official_statistic(ndiffs, nframes):
    rng = np.random.default_rng(ndiffs * 10 + nframes)
    npix = 20000
    rn2 = rng.uniform(50.0, 800.0, npix)
    rn2[:5] = 0.0  # zero read noise: NaN sigma where the median is 0 too
    diffs = _noise_diffs(rng, (ndiffs, npix), rn2)
    s = tp.JumpSettings(nframes=nframes)
    expected = tp._iterative_ratio(np.abs(diffs), rn2, s, False)[0]
    got = tp.official_first_pass(diffs, rn2, s)
    np.testing.assert_array_equal(got, expected)
    assert 0 < expected.sum() < npix


@pytest.mark.parametrize("leave_one_out", [False, True])
def test_iterative_jumps_only_on_screened_pixels_are_unchanged(leave_one_out):
    rng = np.random.default_rng(3)
    rn2 = rng.uniform(50.0, 800.0, 5000)
    diffs = _noise_diffs(rng, (9, 5000), rn2)
    s = tp.JumpSettings(nframes=2, leave_one_out=leave_one_out)
    np.testing.assert_array_equal(tp._iterative_found(diffs, rn2, s),
                                  tp.iterative_jumps(diffs, rn2, s))


def _block(rng, nints=2, ngroups=8, npix=3000):
    rate = rng.uniform(-1.0, 3000.0, npix)
    times = np.arange(1, ngroups + 1) * 10.7
    data = (1000.0 + rate * times[:, None] + rng.normal(0, 7, (nints, ngroups, npix)))
    gdq = np.zeros(data.shape, np.uint8)
    flagged = rng.random(npix) < 0.3  # a third of the pixels take the general path
    gdq[:, ngroups // 2, flagged] |= JUMP
    gdq[:, ngroups - 2:, rng.random(npix) < 0.05] |= SAT
    pdq = np.zeros(npix, np.uint32)
    pdq[rng.random(npix) < 0.02] |= DNU
    gain = rng.uniform(1.5, 2.5, npix)
    gain[:3] = 0.0
    rnoise = rng.uniform(5.0, 20.0, npix)
    dark = np.full(npix, 0.01)
    return data, gdq, pdq, rnoise, gain, dark


@pytest.mark.parametrize("exact_variance", [False, True])
@pytest.mark.parametrize("nints,ngroups", [(1, 10), (2, 8), (3, 3)])
def test_clean_pixel_fit_equals_the_general_fit(exact_variance, nints, ngroups):
    rng = np.random.default_rng(nints * 100 + ngroups)
    data, gdq, pdq, rnoise, gain, dark = _block(rng, nints, ngroups)
    t = ols._Timing(group=10.7, frame=5.35, one_group=8.0, suppress=True, nframes=2,
                    frame_step=2, exact_variance=exact_variance)
    assert ols.clean_pixels(data, gdq, pdq, rnoise, gain).mean() > 0.5
    with np.errstate(divide="ignore", invalid="ignore"):  # zero gains, as fit_ramps allows
        fast = ols.fit_block(data.copy(), gdq, pdq, rnoise, gain, dark, None, t)
        general = ols.fit_segmented_pixels(data.copy(), gdq, pdq, rnoise, gain, dark, None, t)
    for ours, theirs in zip(fast[0], general[0]):
        np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=0)
    for key in general[1]:
        np.testing.assert_allclose(fast[1][key], general[1][key], rtol=1e-6, atol=0, err_msg=key)
    np.testing.assert_array_equal(fast[2], general[2])


def test_median_for_variance_is_the_median_to_float32_precision():
    rng = np.random.default_rng(5)
    values = rng.normal(100.0, 30.0, (9, 4000))
    values[rng.random(values.shape) < 0.01] = np.nan
    np.testing.assert_allclose(ols._median_for_variance(values), nan_median_axis0(values),
                               rtol=2 ** -23)
