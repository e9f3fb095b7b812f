"""linearity against stcal's linearity_correction on identical arrays."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from webbcal import dqflags
from webbcal.steps import linearity
from webbcal.steps.containers import Ramp
from webbcal.steps.saturation import group_frames


@pytest.fixture
def rng():
    return np.random.default_rng(11)


def random_case(rng, nints=2, ngroups=6, ny=32, nx=40):
    data = (np.arange(1, ngroups + 1, dtype=np.float32)[:, None, None]
            * rng.uniform(100, 6000, (ny, nx)).astype(np.float32))
    data = np.broadcast_to(data, (nints, ngroups, ny, nx)).astype(np.float32)
    data += rng.normal(0, 5, data.shape).astype(np.float32)
    gdq = np.zeros(data.shape, np.uint8)
    gdq[0, 4:, 1, 1] = dqflags.SATURATED
    gdq[1, 2:, 3, 4] = dqflags.SATURATED
    coeffs = np.zeros((5, ny, nx), np.float32)
    coeffs[1] = rng.normal(1.0, 0.01, (ny, nx))
    coeffs[2] = rng.normal(2e-6, 2e-7, (ny, nx))
    coeffs[3] = rng.normal(1e-11, 1e-12, (ny, nx))
    coeffs[4] = rng.normal(1e-16, 1e-17, (ny, nx))
    coeffs[2, 5, 5] = np.nan        # NaN -> identity + NO_LIN_CORR
    coeffs[1, 6, 6] = 0.0           # zero slope -> identity + NO_LIN_CORR
    lin_dq = np.zeros((ny, nx), np.uint32)
    lin_dq[7, 7] = dqflags.NO_LIN_CORR
    lin_dq[8, 8] = dqflags.HOT
    inv = np.zeros_like(coeffs)
    inv[1] = 1.0 / np.where(coeffs[1] == 0, 1, coeffs[1])
    inv[2] = -coeffs[2]
    inv[1, 6, 6] = 1.0
    zf = data[:, 0].copy()
    zf[0, 2, 2] = 0.0
    return data, gdq, np.zeros((ny, nx), np.uint32), coeffs, lin_dq, inv, zf


def official(data, gdq, pdq, coeffs, lin_dq, zf, inv=None, frames=None):
    from stcal.linearity.linearity import linearity_correction
    from stdatamodels.jwst.datamodels import dqflags as official_flags
    return linearity_correction(data.copy(), gdq.copy(), pdq.copy(), coeffs.copy(), lin_dq.copy(),
                                official_flags.pixel, zframe=zf.copy(),
                                ilin_coeffs=None if inv is None else inv.copy(),
                                read_pattern=frames)


def test_group_level_matches_stcal(rng):
    data, gdq, pdq, coeffs, lin_dq, _, zf = random_case(rng)
    exp_data, exp_pdq, exp_zf = official(data, gdq, pdq, coeffs, lin_dq, zf)
    got, got_zf = data.copy(), zf.copy()
    got_pdq = linearity.correct_linearity(got, gdq, pdq, coeffs, lin_dq, zeroframe=got_zf)
    np.testing.assert_array_equal(got, exp_data)
    np.testing.assert_array_equal(got_pdq, exp_pdq)
    np.testing.assert_array_equal(got_zf, exp_zf)
    assert got_pdq[5, 5] & dqflags.NO_LIN_CORR and got_pdq[6, 6] & dqflags.NO_LIN_CORR
    assert got_pdq[8, 8] == dqflags.HOT
    np.testing.assert_array_equal(got[0, 4:, 1, 1], data[0, 4:, 1, 1])  # saturated untouched
    np.testing.assert_array_equal(got[:, :, 7, 7], data[:, :, 7, 7])    # NO_LIN_CORR: identity
    assert got_zf[0, 2, 2] == 0.0


def test_read_level_matches_stcal(rng):
    data, gdq, pdq, coeffs, lin_dq, inv, zf = random_case(rng, ny=70)  # > one 64-row block
    frames = group_frames(data.shape[1], 4)
    exp_data, exp_pdq, _ = official(data, gdq, pdq, coeffs, lin_dq, zf, inv, frames)
    got = data.copy()
    got_pdq = linearity.correct_linearity(got, gdq, pdq, coeffs, lin_dq, inv_coeffs=inv,
                                          frames=frames)
    np.testing.assert_allclose(got, exp_data, rtol=1e-6)
    np.testing.assert_array_equal(got_pdq, exp_pdq)
    assert not np.array_equal(got, linearity_group_level(data, gdq, pdq, coeffs, lin_dq))


def linearity_group_level(data, gdq, pdq, coeffs, lin_dq):
    out = data.copy()
    linearity.correct_linearity(out, gdq, pdq, coeffs, lin_dq)
    return out


def test_apply_selects_read_level_only_with_inv_coeffs_and_nframes(rng):
    data, gdq, pdq, coeffs, lin_dq, inv, _ = random_case(rng)
    ref = type("Ref", (), {})()
    ref.meta = fits.Header()
    results = {}
    for nframes, arrays in [(1, {"COEFFS": coeffs, "DQ": lin_dq, "INV_COEFFS": inv}),
                            (4, {"COEFFS": coeffs, "DQ": lin_dq, "INV_COEFFS": inv}),
                            (4, {"COEFFS": coeffs, "DQ": lin_dq})]:
        ref.arrays = arrays
        ramp = Ramp(data=data.copy(), groupdq=gdq.copy(), pixeldq=pdq.copy(),
                    meta=fits.Header({"NFRAMES": nframes}))
        assert linearity.apply(ramp, {"linearity": ref}, {}) == "COMPLETE"
        results[(nframes, "INV_COEFFS" in arrays)] = ramp.data
    plain = linearity_group_level(data, gdq, pdq, coeffs, lin_dq)
    np.testing.assert_array_equal(results[(1, True)], plain)
    np.testing.assert_array_equal(results[(4, False)], plain)
    assert not np.array_equal(results[(4, True)], plain)
