"""refpix against the official jwst.refpix on identical arrays, and the subarray extension."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from webbcal import dqflags
from webbcal.steps import refpix
from webbcal.steps.containers import Ramp

REF_DQ = dqflags.REFERENCE_PIXEL


@pytest.fixture
def rng():
    return np.random.default_rng(20261124)


def official_refpix(data, pixeldq, *, xstart=1, ystart=1, fastaxis=-1, slowaxis=2, noutputs=4,
                    zeroframe=None, odd_even_columns=True, use_side=True, smoothing=11):
    from jwst.refpix import reference_pixels
    from stdatamodels.jwst import datamodels

    model = datamodels.RampModel(data=data.copy(), pixeldq=pixeldq.copy(),
                                 groupdq=np.zeros(data.shape, np.uint8))
    model.meta.instrument.name = "NIRCAM"
    model.meta.instrument.detector = "NRCA1"
    model.meta.exposure.noutputs = noutputs
    model.meta.exposure.zero_frame = zeroframe is not None
    if zeroframe is not None:
        model.zeroframe = zeroframe.copy()
    sub = model.meta.subarray
    sub.name = "FULL" if data.shape[-2:] == (2048, 2048) else "SUB160"
    sub.xstart, sub.ystart = xstart, ystart
    sub.xsize, sub.ysize = data.shape[-1], data.shape[-2]
    sub.fastaxis, sub.slowaxis = fastaxis, slowaxis
    kernel = {"refpix_algorithm": "median", "sirs_kernel_model": None, "sigreject": 4.0,
              "gaussmooth": 1.0, "halfwidth": 30}
    reference_pixels.correct_model(model, odd_even_columns, use_side, smoothing, 1.0, False,
                                   kernel, 3.0)
    return model


def simulated(rng, shape, *, offsets=True):
    """Bias-subtracted-like ramps: noise + per-amp/parity offsets + correlated row noise."""
    data = rng.normal(0.0, 5.0, shape).astype(np.float32)
    if offsets:
        data += rng.normal(0, 30, shape[:2] + (1, 1)).astype(np.float32)
        data[..., ::2] += 7.0
    data += rng.normal(0, 3, shape[:-1] + (1,)).astype(np.float32)  # 1/f-like row noise
    data.ravel()[rng.integers(0, data.size, 50)] = 3000.0  # a few outliers for the clipping
    return data


def ours(data, pixeldq, **kw):
    out = data.copy()
    status = refpix.subtract_reference_pixels(out, pixeldq.copy(), **kw)
    return status, out


def test_full_frame_matches_official(rng):
    data = simulated(rng, (1, 2, 2048, 2048))
    pdq = np.zeros((2048, 2048), np.uint32)
    pdq[:4] = pdq[-4:] = REF_DQ
    pdq[:, :4] = pdq[:, -4:] = REF_DQ
    pdq[1, 10:40] |= dqflags.DO_NOT_USE   # bad reference pixels are ignored
    pdq[500:520, 2] |= dqflags.DO_NOT_USE
    expected = official_refpix(data, pdq, fastaxis=-1, slowaxis=2).data
    status, got = ours(data, pdq, fastaxis=-1, slowaxis=2, noutputs=4)
    assert status == "COMPLETE"
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-4)
    # from its second group on the official computes in float64 as we do: bit-identical
    assert np.mean(got[:, 1:] == expected[:, 1:]) > 0.9999


@pytest.mark.parametrize("fastaxis,slowaxis", [(1, -2), (-2, -1)])
def test_four_output_stripe_matches_official_any_orientation(rng, fastaxis, slowaxis):
    # 2048-wide stripe read through 4 outputs: the full-frame algorithm on a subarray
    shape = (2, 3, 64, 2048) if abs(fastaxis) == 1 else (2, 3, 2048, 64)
    data = simulated(rng, shape)
    pdq = np.zeros(shape[-2:], np.uint32)
    xstart, ystart = (1, 1985) if abs(fastaxis) == 1 else (1985, 1)
    expected = official_refpix(data, pdq, xstart=xstart, ystart=ystart, fastaxis=fastaxis,
                               slowaxis=slowaxis, noutputs=4).data
    status, got = ours(data, pdq, xstart=xstart - 1, ystart=ystart - 1, fastaxis=fastaxis,
                       slowaxis=slowaxis, noutputs=4)
    assert status == "COMPLETE"
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-4)


@pytest.mark.parametrize("odd_even", [True, False])
def test_one_output_subarray_matches_official_without_extension(rng, odd_even):
    # SUB160-like corner subarray: bottom and left reference pixels inside
    data = simulated(rng, (2, 3, 40, 32))
    pdq = np.zeros((40, 32), np.uint32)
    pdq[:4, :] = REF_DQ
    pdq[:, :4] = REF_DQ
    pdq[2, 7] |= dqflags.DO_NOT_USE
    zeroframe = data[:, 0].copy()
    zeroframe[0, 10, 10] = 0.0
    model = official_refpix(data, pdq, xstart=1, ystart=1, fastaxis=1, slowaxis=2, noutputs=1,
                            zeroframe=zeroframe, odd_even_columns=odd_even)
    ramp = Ramp(data=data.copy(), groupdq=np.zeros(data.shape, np.uint8), pixeldq=pdq.copy(),
                meta=fits.Header({"SUBSTRT1": 1, "SUBSTRT2": 1, "FASTAXIS": 1, "SLOWAXIS": 2,
                                  "NOUTPUTS": 1, "ZEROFRAM": True}),
                zeroframe=zeroframe.copy())
    params = refpix.SPEC.resolve({"subarray_side_correction": False, "odd_even_columns": odd_even})
    assert refpix.apply(ramp, {}, params) == "COMPLETE"
    np.testing.assert_allclose(ramp.data, model.data, rtol=0, atol=1e-4)
    np.testing.assert_allclose(ramp.zeroframe, model.zeroframe, rtol=0, atol=1e-4)
    assert ramp.zeroframe[0, 10, 10] == 0.0


@pytest.mark.parametrize("fastaxis,slowaxis", [(1, 2), (-1, 2), (2, 1)])
def test_subarray_side_correction_removes_row_noise_better(rng, fastaxis, slowaxis):
    # SUB640-like one-output subarray at the detector corner that holds the side reference
    # columns (detector columns 0-3); 1/f-like noise correlated along detector rows
    from scipy.ndimage import gaussian_filter1d

    n_fast, n_slow = 64, 160                      # detector columns x rows
    det_rows = gaussian_filter1d(rng.normal(0, 1, (1, 4, n_slow, 1)), 8, axis=2)
    det_rows = (10 * det_rows / det_rows.std()).astype(np.float32)
    det_white = rng.normal(0, 2, (1, 4, n_slow, n_fast)).astype(np.float32)
    det_dq = np.zeros((n_slow, n_fast), np.uint32)
    det_dq[:4, :] = REF_DQ
    det_dq[:, :4] = REF_DQ
    # place the detector-frame arrays in DMS orientation (inverse of to_detector)
    to_dms = {(1, 2): lambda a: a, (-1, 2): lambda a: a[..., ::-1],
              (2, 1): lambda a: np.swapaxes(a, -1, -2)}[(fastaxis, slowaxis)]
    data = np.ascontiguousarray(to_dms(det_rows + det_white))
    white = np.ascontiguousarray(to_dms(det_white + 0 * det_rows))
    pdq = np.ascontiguousarray(to_dms(det_dq))
    ny, nx = data.shape[-2:]
    xstart = 1 if fastaxis > 0 else 2048 - nx + 1
    official = official_refpix(data, pdq, xstart=xstart, fastaxis=fastaxis, slowaxis=slowaxis,
                               noutputs=1).data
    kw = dict(xstart=xstart - 1, fastaxis=fastaxis, slowaxis=slowaxis, noutputs=1)
    _, extended = ours(data, pdq, subarray_side_correction=True, **kw)
    _, plain = ours(data, pdq, subarray_side_correction=False, **kw)
    np.testing.assert_allclose(plain, official, atol=1e-4)

    def residual_row_noise(result):
        det = refpix.to_detector(result - white, fastaxis, slowaxis)[..., 4:, 4:]
        return np.std(det.mean(axis=-1))

    assert residual_row_noise(official) > 8.0
    assert residual_row_noise(extended) < 0.2 * residual_row_noise(official)


def test_running_median_matches_numpy_with_reflection_and_bad_pixels(rng):
    values = rng.normal(0, 1, (50, 4)).astype(np.float32)
    good = rng.random((50, 4)) > 0.2
    good[20:32] = False  # a window with no good pixel at all
    got = refpix.running_median(values, good, 10)  # made odd: 11
    padded = np.pad(values, ((5, 5), (0, 0)), mode="reflect")
    pgood = np.pad(good, ((5, 5), (0, 0)), mode="reflect")
    for r in range(50):
        window = padded[r:r + 11][pgood[r:r + 11]]
        expected = np.median(window) if window.size else np.nan
        np.testing.assert_equal(got[r], np.float64(expected))


def test_clipped_mean_matches_scipy_sigmaclip(rng):
    from scipy import stats
    values = np.concatenate([rng.normal(10, 1, 500), [80.0, -50.0, 40.0]]).astype(np.float32)
    dq = np.zeros(values.size, np.uint32)
    assert refpix.clipped_mean(values, dq, 3.0) == stats.sigmaclip(values, 3.0, 3.0)[0].mean()
    dq[:] = dqflags.DO_NOT_USE
    assert refpix.clipped_mean(values, dq, 3.0) is None
    assert refpix.clipped_mean(np.full(5, 2.5, np.float32), np.zeros(5, np.uint32), 3.0) == 2.5


def test_subarray_outside_detector_is_skipped():
    data = np.zeros((1, 1, 10, 10), np.float32)
    assert refpix.subtract_reference_pixels(data, np.zeros((10, 10), np.uint32),
                                            xstart=2040, ystart=0) == "SKIPPED"


def test_spec_has_every_official_parameter():
    names = {p.name for p in refpix.SPEC.params}
    assert {"odd_even_columns", "use_side_ref_pixels", "side_smoothing_length", "side_gain",
            "odd_even_rows", "ovr_corr_mitigation_ftr", "preserve_irs2_refpix",
            "irs2_mean_subtraction", "refpix_algorithm", "sigreject", "gaussmooth",
            "halfwidth", "siglimit"} <= names
    assert refpix.SPEC.defaults()["side_smoothing_length"] == 11
