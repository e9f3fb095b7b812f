"""saturation against stcal's flag_saturated_pixels on identical arrays, plus hand-made cases."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from webbcal import dqflags
from webbcal.steps import saturation
from webbcal.steps.containers import Ramp


@pytest.fixture
def rng():
    return np.random.default_rng(7)


def random_case(rng, nints=2, ngroups=6, ny=32, nx=40):
    bias = rng.normal(12000, 300, (ny, nx)).astype(np.float32)
    rate = rng.uniform(0, 15000, (ny, nx)).astype(np.float32)
    ramp = np.arange(1, ngroups + 1, dtype=np.float32)[:, None, None] * rate
    data = (bias + ramp + rng.normal(0, 5, (nints, ngroups, ny, nx))).astype(np.float32)
    data[0, 2:, 5, 5] = 0.0                      # A/D floor
    data[1, 1, 7, 9] = -3.0
    thresh = rng.normal(60000, 500, (ny, nx)).astype(np.float32)
    thresh[3, 3] = np.nan                        # becomes NO_SAT_CHECK
    sat_dq = np.zeros((ny, nx), np.uint32)
    sat_dq[4, 4] = dqflags.NO_SAT_CHECK
    sat_dq[6, 6] = dqflags.DO_NOT_USE
    zeroframe = data[:, 0].copy()
    zeroframe[0, 10, 11] = 65000.0
    zeroframe[1, 12, 12] = -1.0
    gdq = np.zeros(data.shape, np.uint8)
    gdq[0, :, 2, 2] = dqflags.DO_NOT_USE
    pdq = np.zeros((ny, nx), np.uint32)
    return data, gdq, pdq, thresh, sat_dq, bias, zeroframe


@pytest.mark.parametrize("nframes,grow,use_bias", [(1, 1, True), (4, 1, True), (2, 2, False),
                                                   (8, 0, True)])
def test_matches_stcal(rng, nframes, grow, use_bias):
    from stcal.saturation.saturation import flag_saturated_pixels
    from stdatamodels.jwst.datamodels import dqflags as official_flags

    data, gdq, pdq, thresh, sat_dq, bias, zf = random_case(rng)
    frames = saturation.group_frames(data.shape[1], nframes)
    exp_gdq, exp_pdq, exp_zf = flag_saturated_pixels(
        data.copy(), gdq.copy(), pdq.copy(), thresh.copy(), sat_dq.copy(), 65535.0,
        official_flags.pixel, n_pix_grow_sat=grow, zframe=zf.copy(), read_pattern=frames,
        bias=bias.copy() if use_bias else None)

    got_gdq, got_pdq, got_zf = gdq.copy(), pdq.copy(), zf.copy()
    saturation.flag_saturated(data, got_gdq, got_pdq, thresh, sat_dq, n_pix_grow_sat=grow,
                              frames=frames, bias=bias if use_bias else None, zeroframe=got_zf)
    np.testing.assert_array_equal(got_gdq, exp_gdq)
    np.testing.assert_array_equal(got_pdq, exp_pdq)
    np.testing.assert_array_equal(got_zf, exp_zf)
    assert (got_gdq & dqflags.SATURATED).any() and (got_gdq & dqflags.AD_FLOOR).any()


def test_without_read_pattern_matches_stcal(rng):
    from stcal.saturation.saturation import flag_saturated_pixels
    from stdatamodels.jwst.datamodels import dqflags as official_flags

    data, gdq, pdq, thresh, sat_dq, _, _ = random_case(rng)
    exp_gdq, exp_pdq, _ = flag_saturated_pixels(data.copy(), gdq.copy(), pdq.copy(), thresh.copy(),
                                                sat_dq.copy(), 65535.0, official_flags.pixel)
    saturation.flag_saturated(data, gdq, pdq, thresh, sat_dq, frames=None)
    np.testing.assert_array_equal(gdq, exp_gdq)
    np.testing.assert_array_equal(pdq, exp_pdq)


def test_hand_made_flags():
    ny = nx = 9
    data = np.full((1, 4, ny, nx), 1000.0, np.float32)
    data[0, 2:, 4, 4] = 61000.0   # saturates in group 2 (index)
    data[0, 1, 0, 0] = 0.0        # A/D floor in group 1 only
    thresh = np.full((ny, nx), 60000.0, np.float32)
    gdq = np.zeros(data.shape, np.uint8)
    pdq = np.zeros((ny, nx), np.uint32)
    saturation.flag_saturated(data, gdq, pdq, thresh, np.zeros((ny, nx), np.uint32),
                              n_pix_grow_sat=1, frames=None)
    sat = (gdq & dqflags.SATURATED) != 0
    assert not sat[0, :2].any()
    box = np.zeros((ny, nx), bool)
    box[3:6, 3:6] = True
    for g in (2, 3):
        np.testing.assert_array_equal(sat[0, g], box)   # grown to the 8 neighbours
    assert gdq[0, 1, 0, 0] == dqflags.AD_FLOOR | dqflags.DO_NOT_USE
    assert gdq[0, 2, 0, 0] == 0


def test_group2_test_uses_bias():
    # NFRAMES=4: group 1 jumps by more than the headroom, group 2 saturated
    data = np.zeros((1, 3, 1, 1), np.float32)
    data[0, :, 0, 0] = [20000.0, 45000.0, 61000.0]
    thresh = np.full((1, 1), 60000.0, np.float32)
    frames = saturation.group_frames(3, 4)

    def flags(bias):
        gdq = np.zeros(data.shape, np.uint8)
        saturation.flag_saturated(data, gdq, np.zeros((1, 1), np.uint32), thresh,
                                  np.zeros((1, 1), np.uint32), frames=frames,
                                  bias=None if bias is None else np.full((1, 1), bias, np.float32))
        return gdq[0, :, 0, 0]

    # without bias group 0 extrapolates to 20000/2.5*12 > threshold: no DNU on group 1
    assert flags(None)[1] & dqflags.DO_NOT_USE == 0
    # with a 15000 DN bias it would not saturate by group 2: group 1 gets DO_NOT_USE only
    assert flags(15000.0)[1] == dqflags.DO_NOT_USE
    assert flags(15000.0)[2] & dqflags.SATURATED


def test_apply_uses_readpatt_and_superbias(rng):
    data, gdq, pdq, thresh, sat_dq, bias, zf = random_case(rng)
    header = fits.Header({"NFRAMES": 4, "ZEROFRAM": True})
    ramp = Ramp(data=data.copy(), groupdq=gdq.copy(), pixeldq=pdq.copy(), meta=header,
                zeroframe=zf.copy())
    ref = type("Ref", (), {})()
    ref.arrays, ref.meta = {"SCI": thresh, "DQ": sat_dq}, fits.Header()
    bias_ref = type("Ref", (), {})()
    bias_ref.arrays, bias_ref.meta = {"SCI": bias}, fits.Header()
    status = saturation.apply(ramp, {"saturation": ref, "superbias": bias_ref},
                              saturation.SPEC.resolve())
    assert status == "COMPLETE"
    expected_gdq = gdq.copy()
    saturation.flag_saturated(data, expected_gdq, pdq.copy(), thresh, sat_dq, n_pix_grow_sat=1,
                              frames=saturation.group_frames(6, 4), bias=bias, zeroframe=zf.copy())
    np.testing.assert_array_equal(ramp.groupdq, expected_gdq)
    assert ramp.pixeldq[3, 3] & dqflags.NO_SAT_CHECK
    assert saturation.apply(ramp, {}, saturation.SPEC.resolve()) == "SKIPPED"


def test_grow_mask_is_square_dilation(rng):
    from scipy.ndimage import binary_dilation
    mask = rng.random((30, 37)) > 0.97
    for n in (1, 2, 3):
        np.testing.assert_array_equal(saturation.grow_mask(mask, n),
                                      binary_dilation(mask, np.ones((2 * n + 1,) * 2, bool)))

