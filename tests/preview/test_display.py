import numpy as np
import pytest

from webbcal.preview.display import block_factor, block_mean, display_limits


@pytest.mark.parametrize("shape, factor", [((160, 160), 1), ((800, 640), 1), ((801, 10), 2), ((2048, 2048), 3)])
def test_block_factor_brings_the_long_side_under_800(shape, factor):
    assert block_factor(shape) == factor
    assert max(shape) / factor <= 800


def test_block_mean_ignores_nans_and_keeps_the_edges():
    data = np.arange(30, dtype=float).reshape(5, 6)
    data[0, 0] = np.nan
    data[4, :] = np.nan
    binned = block_mean(data, 2)
    assert binned.shape == (3, 3)
    assert binned[0, 0] == pytest.approx((1 + 6 + 7) / 3)  # the NaN is left out
    assert binned[1, 2] == pytest.approx((16 + 17 + 22 + 23) / 4)
    assert np.isnan(binned[2]).all()  # last row all NaN (and padding)


def test_display_limits_are_percentiles_of_finite_pixels():
    data = np.arange(10_000, dtype=float)
    data[::7] = np.nan
    vmin, vmax = display_limits(data)
    finite = data[np.isfinite(data)]
    assert (vmin, vmax) == pytest.approx(tuple(np.percentile(finite, [0.5, 99.5])))


@pytest.mark.parametrize("data, expected", [(np.full((4, 4), np.nan), (0.0, 1.0)),
                                            (np.full((4, 4), 3.0), (2.5, 3.5))])
def test_display_limits_of_empty_or_flat_images_give_a_drawable_range(data, expected):
    assert display_limits(data) == expected


def test_asinh_stretch_is_astropys_and_inverts():
    from astropy.visualization import AsinhStretch, ManualInterval

    from webbcal.preview.display import ASINH_SOFTENING, asinh_stretch, inverse_asinh_stretch

    values = np.linspace(-3.0, 12.0, 61)
    vmin, vmax = -1.0, 10.0
    expected = AsinhStretch(ASINH_SOFTENING)(ManualInterval(vmin, vmax)(values, clip=False), clip=False)
    stretched = asinh_stretch(values, vmin, vmax)
    np.testing.assert_allclose(stretched, expected, rtol=1e-12, atol=1e-12)
    assert asinh_stretch(vmin, vmin, vmax) == 0 and asinh_stretch(vmax, vmin, vmax) == pytest.approx(1)
    np.testing.assert_allclose(inverse_asinh_stretch(stretched, vmin, vmax), values, atol=1e-9)
