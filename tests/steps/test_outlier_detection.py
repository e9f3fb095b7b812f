"""outlier_detection: the derivative test on small arrays, and on the simulated dither set
with injected outliers (issue 6 §4: ≥ 99% flagged, ≤ 0.1% false flags, none on star cores)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from tests.pipeline.test_image3_support import image3_data, image3_outputs  # noqa: F401
from webbcal import dqflags
from webbcal.errors import WebbcalError
from webbcal.image3.blot import abs_derivative, flag_outliers
from webbcal.image3.median import sectioned_median, store_single
from webbcal.io.product import read_product
from webbcal.steps import outlier_detection


def test_abs_derivative_is_largest_neighbour_difference():
    rng = np.random.default_rng(2)
    blot = rng.normal(size=(7, 9))
    deriv = abs_derivative(blot)
    padded = np.pad(blot, 1)
    for y in range(7):
        for x in range(9):
            c = padded[y + 1, x + 1]
            expected = max(abs(c - padded[y, x + 1]), abs(c - padded[y + 2, x + 1]),
                           abs(c - padded[y + 1, x]), abs(c - padded[y + 1, x + 2]))
            assert deriv[y, x] == pytest.approx(expected)


def test_flag_outliers_on_flat_sky_and_on_a_star():
    rng = np.random.default_rng(3)
    shape = (64, 64)
    y, x = np.mgrid[0:64, 0:64]
    star = 500.0 * np.exp(-((x - 40.3) ** 2 + (y - 20.6) ** 2) / (2 * 1.2**2))
    blot = 1.0 + star
    err = np.full(shape, 0.1)
    data = blot + rng.normal(0, 0.1, shape)
    data[10, 10] += 3.0      # 30 sigma on flat sky
    data[50, 5] += 0.3       # 3 sigma: not an outlier
    flags = flag_outliers(data, blot, err, backg=0.0)
    assert flags[10, 10] and not flags[50, 5]
    assert not flags[18:24, 37:44].any()   # the star itself agrees with the blot
    assert flags.sum() <= 9                 # the hit and at most its confirmed neighbours
    # a sky level recorded but not subtracted is added back to the blot
    assert not flag_outliers(data + 5.0, blot, err, backg=5.0)[50, 5]
    assert flag_outliers(data + 5.0, blot, err, backg=0.0).mean() > 0.9


def test_sectioned_median_equals_nanmedian(tmp_path):
    rng = np.random.default_rng(4)
    stack = rng.normal(size=(5, 37, 23)).astype(np.float32)
    stack[rng.random(stack.shape) < 0.2] = np.nan
    stack[:, 0, 0] = np.nan
    paths = [store_single(tmp_path / f"s{k}.npy", stack[k]) for k in range(5)]
    median = sectioned_median(paths, (37, 23), band_bytes=5 * 23 * 4 * 3)  # 3 rows per band
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):
        expected = np.nanmedian(stack, axis=0)
    assert np.array_equal(median, expected, equal_nan=True)  # bit for bit


@pytest.mark.parametrize("layers", [1, 2, 7, 48])
def test_sorted_median_is_numpys_nanmedian_bit_for_bit(layers):
    from webbcal.image3.median import nan_median_of_layers

    rng = np.random.default_rng(layers)
    stack = (rng.normal(size=(layers, 40, 31)) * 10 ** rng.uniform(-3, 3, (layers, 40, 31))).astype(np.float32)
    stack[rng.random(stack.shape) < 0.3] = np.nan
    stack[:, 0, :] = np.nan  # columns with no valid layer
    stack[1:, 1, :] = np.nan  # exactly one valid layer
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):
        expected = np.nanmedian(stack, axis=0)
    ours = nan_median_of_layers(stack)
    assert ours.dtype == np.float32
    assert np.array_equal(ours, expected, equal_nan=True)


def test_parameters_are_checked():
    assert outlier_detection.parse_pair("5.0 4.0", "snr") == (5.0, 4.0)
    with pytest.raises(WebbcalError, match="snr"):
        outlier_detection.parse_pair("5", "snr")


def _flags(path):
    return (np.asarray(read_product(path).arrays["DQ"]) & dqflags.OUTLIER) != 0


def test_injected_outliers_are_flagged_and_little_else(image3_data, image3_outputs):
    found = total = false = pixels = 0
    for name, crf in zip(image3_data.names, image3_outputs.crf):
        assert crf.name == f"{name}_o001_crf.fits"
        product = read_product(crf)
        flags = _flags(crf)
        dq = np.asarray(product.arrays["DQ"])
        assert np.all(dq[flags] & dqflags.DO_NOT_USE)
        assert np.all(np.isnan(np.asarray(product.arrays["SCI"])[flags]))
        assert product.meta["S_OUTLIR"] == "COMPLETE"
        injected = image3_data.injected[name]
        hit = np.zeros(flags.shape, bool)
        hit[injected[:, 0], injected[:, 1]] = True
        found += flags[hit].sum()
        total += hit.sum()
        near = ndimage.binary_dilation(hit, np.ones((3, 3), bool))
        false += (flags & ~near).sum()
        pixels += flags.size
        # no flag on the core (3x3) of any star not hit by an injected outlier
        stars = image3_data.sources[name]
        stars = stars[~stars["is_extended"]]
        for x, y in zip(np.round(stars["x"]).astype(int), np.round(stars["y"]).astype(int)):
            if 1 <= x < flags.shape[1] - 1 and 1 <= y < flags.shape[0] - 1:
                core = (slice(y - 1, y + 2), slice(x - 1, x + 2))
                assert not (flags[core] & ~near[core]).any(), (name, x, y)
    assert found / total >= 0.99
    assert false / pixels <= 0.001
