"""bkg_subtract for WFSS: the scale fit against jwst 3.0 and against the simulator's truth.

* ``fit_scale`` equals the official ``ScalingFactorComputer`` on the same arrays (NaNs,
  zero variances, a source mask, the RMS stopping rule);
* the step on a subarray grism exposure with a user mask equals the official
  ``subtract_wfss_bkg`` (scale, subtracted SCI, DQ, MASK), the BKG reference cut to the
  subarray on both sides;
* on a simulated dispersed scene (true rate + the noise of a 215 s exposure, ERR as the
  ramp fit gives it) the fitted scale is within 1 % of the injected one;
* the FAILED rules (too few background pixels, no usable pixel) leave the data untouched.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from astropy.io import fits

from webbcal import dqflags
from webbcal.refs import load_reference
from webbcal.spec2.background import enough_background, fit_scale, source_mask
from webbcal.steps.image_model import CalImage
from webbcal.steps.wfss import bkg_subtract

SUBARRAY = {"SUBARRAY": "SUB1024X512", "SUBSTRT1": 513, "SUBSTRT2": 257,
            "SUBSIZE1": 1024, "SUBSIZE2": 512}
EXPOSURE_S = 214.7  # MEDIUM8 x 3 groups, full frame
READ_NOISE_DN_S = 0.004  # read-noise sigma of the slope at that exposure time


def _params(**changes) -> dict:
    return {**bkg_subtract.SPEC.defaults(), **changes}


# --------------------------------------------------------------------------- the pure fit

def _official_scale(sci, bkg, var, mask, **kwargs):
    from jwst.background.background_sub_wfss import ScalingFactorComputer

    computer = ScalingFactorComputer(**kwargs)
    factor, _ = computer(sci.copy(), bkg.copy(), var.copy(), mask=mask.copy())
    return factor, computer._iters_run_last_call


@pytest.mark.parametrize("kwargs", [
    {},
    {"p": 2.5, "maxiter": 3},
    {"maxiter": 0},
    {"delta_rms_thresh": 0.02, "dispersion_axis": 1, "maxiter": 20},
    {"delta_rms_thresh": 0.02, "dispersion_axis": 2, "maxiter": 20},
])
def test_fit_scale_equals_the_official_computer(kwargs):
    rng = np.random.default_rng(4)
    shape = (120, 200)
    bkg = (1.0 + 0.3 * np.sin(np.arange(shape[1]) / 17.0))[None, :] * np.ones(shape)
    bkg = bkg.astype(np.float32)
    sci = (0.7 * bkg + rng.normal(0, 0.05, shape)).astype(np.float32)
    sci[40:50, 20:180] += 2.0  # a source the mask hides
    sci[rng.random(shape) < 0.01] += 5.0  # outliers the percentiles reject
    var = np.full(shape, 0.05**2, np.float32)
    var[5, :7] = 0.0  # zero variance never enters the sums
    var[7, :4] = np.nan  # NaN variance: out of the sums, still in the percentiles
    mask = np.zeros(shape, bool)
    mask[38:52, 15:185] = True

    expected, iterations = _official_scale(sci, bkg, var, mask, **kwargs)
    ours = fit_scale(sci, bkg, var, mask, percent=kwargs.get("p", 1.0),
                     maxiter=kwargs.get("maxiter", 5), rms_stop=kwargs.get("delta_rms_thresh", 0.0),
                     dispaxis=kwargs.get("dispersion_axis"))
    assert ours.factor == pytest.approx(expected, rel=1e-7)  # official products are float32
    assert ours.iterations == iterations
    assert not ours.used[mask].any() and not ours.used[5, :7].any()


def test_nan_science_pixels_leave_both_sums():
    """The one deliberate difference: the official code keeps a NaN-SCI pixel's bkg²/var in
    the denominator (biased low); webbcal drops the pixel, which is what the official gives
    when that pixel's BKG is NaN too."""
    rng = np.random.default_rng(8)
    shape = (80, 90)
    bkg = np.full(shape, 2.0, np.float32)
    sci = (0.5 * bkg + rng.normal(0, 0.02, shape)).astype(np.float32)
    var = np.full(shape, 0.02**2, np.float32)
    hole = rng.random(shape) < 0.05
    sci[hole] = np.nan
    mask = np.zeros(shape, bool)
    fit = fit_scale(sci, bkg, var, mask)
    ours = fit.factor
    official, _ = _official_scale(sci, bkg, var, mask)
    bkg_with_holes = np.where(hole, np.nan, bkg).astype(np.float32)
    official_without_holes, _ = _official_scale(sci, bkg_with_holes, var, mask)
    assert ours == pytest.approx(official_without_holes, rel=1e-7)
    assert ours == pytest.approx(0.5, rel=2e-3)
    # the official bias: NaN pixels' share of the denominator after the clipping
    kept, holes = int(fit.used.sum()), int(hole.sum())
    assert official == pytest.approx(ours * kept / (kept + holes), rel=1e-6)


def test_fit_scale_without_usable_pixels_is_nan():
    sci = np.full((4, 4), np.nan, np.float32)
    fit = fit_scale(sci, np.ones((4, 4)), np.ones((4, 4)))
    assert np.isnan(fit.factor)


def test_enough_background_equals_the_official_rule():
    from jwst.background.background_sub_wfss import _sufficient_background_pixels

    rng = np.random.default_rng(1)
    for fraction in (0.03, 0.05, 0.06, 0.5):
        mask = rng.random((50, 60)) < fraction
        dq = np.where(rng.random((50, 60)) < 0.2, dqflags.DO_NOT_USE, 0).astype(np.uint32)
        bkg = np.where(rng.random((50, 60)) < 0.1, 0.0, 1.0)
        assert enough_background(dq, mask, bkg) == bool(_sufficient_background_pixels(dq, mask, bkg))


def test_source_mask_floors_and_ceils_inclusive_boxes_and_clips():
    boxes = [SimpleNamespace(xmin=2.4, xmax=4.2, ymin=1, ymax=1),
             SimpleNamespace(xmin=-5, xmax=0, ymin=8, ymax=30)]
    mask = source_mask((10, 8), boxes)
    hidden = np.argwhere(~mask)
    assert {tuple(p) for p in hidden[hidden[:, 0] < 8]} == {(1, 2), (1, 3), (1, 4), (1, 5)}
    assert set(map(tuple, hidden[hidden[:, 0] >= 8])) == {(8, 0), (9, 0)}


# --------------------------------------------------------------------------- the step

@pytest.fixture(scope="module")
def wfss_refs(tmp_path_factory) -> dict[str, Path]:
    from webbcal.simulate.wfss import write_wfss_references

    folder = tmp_path_factory.mktemp("wfss_refs")
    written = write_wfss_references(folder, "NRCALONG", ("F444W",), ("GRISMR",))
    return {fits.getval(p, "REFTYPE").lower() if p.suffix == ".fits" else p.stem: p for p in written}


def _header(**extra) -> fits.Header:
    header = fits.Header()
    for key, value in {"INSTRUME": "NIRCAM", "DETECTOR": "NRCALONG", "EXP_TYPE": "NRC_WFSS",
                       "FILTER": "F444W", "PUPIL": "GRISMR", "DISPAXIS": 1, **extra}.items():
        header[key] = value
    return header


def _scene(shape, window, scale, rng, n_sources=30):
    """Dispersed sources + ``scale`` x BKG shape on ``window``, with a 215 s exposure's noise.

    ERR is computed from the noisy rate as a ramp fit does (Poisson from the measured
    slope, plus read noise). Returns (image, truth boxes of the traces)."""
    from webbcal.simulate import scene as scenemod
    from webbcal.simulate.grism import lw_grism_model
    from webbcal.simulate.wfss import background_shape, render_dispersed_rate

    model = lw_grism_model("F444W", "GRISMR")
    catalog = scenemod.make_catalog(rng, 53.16, -27.79, 100.0, n_sources)
    catalog["sed_ref_flux"] *= 30.0  # bright enough to matter for the fit
    x0 = rng.uniform(-200, 2200, n_sources)
    y0 = rng.uniform(30, 2010, n_sources)
    full = render_dispersed_rate(catalog, (x0, y0), "F444W", "GRISMR", background_scale=scale,
                                 background=background_shape(model))
    rows, cols = window
    true = full.rate[rows, cols]
    electrons = rng.poisson(np.clip(true, 0, None) * EXPOSURE_S * 2.0) / 2.0  # gain 2 e-/DN
    rate = electrons / EXPOSURE_S + rng.normal(0, READ_NOISE_DN_S, true.shape)
    err = np.sqrt(np.clip(rate, 0, None) / (2.0 * EXPOSURE_S) + READ_NOISE_DN_S**2)
    boxes = []
    for trace in full.traces:  # the traces as boxes, 8 pixels wider than the stamps
        xs, ys = trace.x - cols.start, trace.y - rows.start
        boxes.append(SimpleNamespace(xmin=xs.min() - 12, xmax=xs.max() + 12,
                                     ymin=ys.min() - 12, ymax=ys.max() + 12))
    return rate.astype(np.float32), err.astype(np.float32), boxes


def _image(data, err, header, dq=None) -> CalImage:
    shape = data.shape
    return CalImage(data=data.copy(), err=err.copy(),
                    dq=np.zeros(shape, np.uint32) if dq is None else dq.copy(), meta=header.copy())


def _write_mask(path: Path, mask: np.ndarray) -> Path:
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(mask.astype(np.uint8), name="MASK")]).writeto(path)
    return path


@pytest.fixture(scope="module")
def subarray_exposure(wfss_refs):
    rng = np.random.default_rng(7)
    window = (slice(256, 768), slice(512, 1536))
    data, err, boxes = _scene((2048, 2048), window, 0.31, rng)
    dq = np.zeros(data.shape, np.uint32)
    dq[rng.random(data.shape) < 0.002] = dqflags.HOT
    header = _header(**SUBARRAY)
    bkg = load_reference(wfss_refs["bkg"], "bkg", header, sci_shape=data.shape)
    return data, err, dq, header, bkg, source_mask(data.shape, boxes)


def test_step_with_a_user_mask_equals_the_official_subtraction(subarray_exposure, wfss_refs, tmp_path):
    from jwst.background.background_sub_wfss import subtract_wfss_bkg
    from stdatamodels.jwst import datamodels

    data, err, dq, header, bkg, mask = subarray_exposure
    mask_file = _write_mask(tmp_path / "mask.fits", mask)
    image = _image(data, err, header, dq)
    params = _params(wfss_mask=str(mask_file), wfss_outlier_percent=1.5)
    result = bkg_subtract.subtract(image, {"bkg": bkg, "wavelengthrange": None}, params)

    model = datamodels.ImageModel(data=data.copy(), err=err.copy(), dq=dq.copy())
    model.meta.instrument.name, model.meta.instrument.detector = "NIRCAM", "NRCALONG"
    model.meta.exposure.type = "NRC_WFSS"
    model.meta.wcsinfo.dispersion_direction = 1
    sub = model.meta.subarray
    sub.xstart, sub.ystart, sub.xsize, sub.ysize = 513, 257, 1024, 512
    official = subtract_wfss_bkg(model, str(wfss_refs["bkg"]), str(wfss_refs["webbcal_nircam_wavelengthrange_wfss"]),
                                 user_mask=mask, rescaler_kwargs={"p": 1.5, "maxiter": 5, "delta_rms_thresh": 0})
    assert result.status == "COMPLETE"
    assert result.factor == pytest.approx(official.meta.background.scaling_factor, rel=1e-7)
    assert image.meta["BKGD_SCL"] == result.factor
    np.testing.assert_allclose(image.data, official.data, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(image.dq, official.dq)
    np.testing.assert_array_equal(result.mask, official.mask)
    np.testing.assert_array_equal(image.err, err)  # ERR untouched, as officially


def test_fitted_scale_within_one_percent_of_the_injected(wfss_refs, tmp_path):
    rng = np.random.default_rng(11)
    injected = 0.305
    window = (slice(0, 2048), slice(0, 2048))
    data, err, boxes = _scene((2048, 2048), window, injected, rng, n_sources=60)
    header = _header(SUBARRAY="FULL", SUBSTRT1=1, SUBSTRT2=1, SUBSIZE1=2048, SUBSIZE2=2048)
    bkg = load_reference(wfss_refs["bkg"], "bkg", header, sci_shape=data.shape)
    background = source_mask(data.shape, boxes)
    mask_file = _write_mask(tmp_path / "mask.fits", background)
    for params in (_params(wfss_mask=str(mask_file)), _params()):  # sources masked; no catalog
        image = _image(data, err, header)
        result = bkg_subtract.subtract(image, {"bkg": bkg}, params)
        assert result.status == "COMPLETE"
        assert result.factor == pytest.approx(injected, rel=0.01)
        # what is left of the background is noise around zero
        residual = image.data[4:-4, 4:-4][background[4:-4, 4:-4]]
        assert abs(np.nanmedian(residual)) < 0.01 * injected


def test_too_few_background_pixels_fail_and_leave_the_data(subarray_exposure, monkeypatch):
    data, err, dq, header, bkg, _ = subarray_exposure
    image = _image(data, err, header, dq)
    everything = np.zeros(data.shape, bool)
    everything[:10, :10] = True  # 100 of 524288 pixels: far below 5 %
    monkeypatch.setattr(bkg_subtract, "catalog_mask", lambda *a, **k: everything)
    result = bkg_subtract.subtract(image, {"bkg": bkg, "wavelengthrange": None}, _params(),
                                   catalog=object())
    assert result.status == "FAILED" and result.factor == 0.0 and image.meta["BKGD_SCL"] == 0.0
    np.testing.assert_array_equal(image.data, data)
    np.testing.assert_array_equal(result.mask, everything.astype(np.uint32))


def test_no_usable_pixel_fails(subarray_exposure):
    data, err, dq, header, bkg, _ = subarray_exposure
    image = _image(np.full(data.shape, np.nan, np.float32), err, header, dq)
    result = bkg_subtract.subtract(image, {"bkg": bkg}, _params())
    assert result.status == "FAILED" and image.meta["BKGD_SCL"] == 0.0


def test_bad_user_mask_is_one_line_error(subarray_exposure, tmp_path):
    from webbcal.errors import WebbcalError

    data, err, dq, header, bkg, _ = subarray_exposure
    wrong = _write_mask(tmp_path / "small.fits", np.ones((10, 10), bool))
    with pytest.raises(WebbcalError, match=r"wfss_mask is \(10, 10\)"):
        bkg_subtract.subtract(_image(data, err, header), {"bkg": bkg}, _params(wfss_mask=str(wrong)))
    no_ext = tmp_path / "plain.fits"
    fits.PrimaryHDU(np.ones((2, 2))).writeto(no_ext)
    with pytest.raises(WebbcalError, match="no MASK extension"):
        bkg_subtract.subtract(_image(data, err, header), {"bkg": bkg}, _params(wfss_mask=str(no_ext)))
