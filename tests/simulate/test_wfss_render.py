"""Dispersed count-rate images: flux conservation, trace geometry, photometric closure."""

from __future__ import annotations

import numpy as np
import pytest

from webbcal.simulate.grism import LW_PIXAR_SR, lw_grism_model
from webbcal.simulate.wfss import (
    DispersedSource,
    background_level,
    background_shape,
    disperse_sources,
    photom_rows,
)

SHAPE = (2048, 2048)


def gaussian_stamp(x0, y0, sigma=1.0, half=6):
    """Unit-sum pixel-sampled Gaussian centred at (x0, y0): (stamp, origin)."""
    col0, row0 = int(np.floor(x0 + 0.5)) - half, int(np.floor(y0 + 0.5)) - half
    yy, xx = np.mgrid[row0:row0 + 2 * half + 1, col0:col0 + 2 * half + 1]
    stamp = np.exp(-0.5 * ((xx - x0) ** 2 + (yy - y0) ** 2) / sigma**2)
    return stamp / stamp.sum(), (row0, col0)


def continuum_and_line(lam, cont=1e-5, line_flux=4e-5, centre=4.4, sigma=0.004):
    """f_nu [Jy]: flat continuum plus a Gaussian line (its integral over lambda is line_flux Jy*um)."""
    lam = np.asarray(lam, float)
    return cont + line_flux * np.exp(-0.5 * ((lam - centre) / sigma) ** 2) / (np.sqrt(2 * np.pi) * sigma)


def integral_of_sed_times_sensitivity(model, order, x0, y0, sed, n=200001):
    """Independent fine trapezoid integral of f_nu * S over the order's wavelength range."""
    om = model.order(order)
    lam = om.displ(np.linspace(0, 1, n), x0, y0)
    y = sed(lam) * om.sensitivity(lam)
    return float(np.sum(0.5 * (y[1:] + y[:-1]) * np.diff(lam)))


@pytest.mark.parametrize("pupil", ["GRISMR", "GRISMC"])
def test_dispersed_flux_equals_integral_of_sed_times_sensitivity(pupil):
    model = lw_grism_model("F444W", pupil)
    x0, y0 = 300.4, 700.7  # order 1 fully on the detector, order 2 off it
    stamp, origin = gaussian_stamp(x0, y0) if pupil == "GRISMR" else gaussian_stamp(y0, x0)
    if pupil == "GRISMC":
        x0, y0 = y0, x0
    src = DispersedSource(7, x0, y0, stamp, origin, continuum_and_line)
    image = disperse_sources(model, [src], SHAPE, orders=(1,))
    expected = integral_of_sed_times_sensitivity(model, 1, x0, y0, continuum_and_line)
    assert image.rate.sum() == pytest.approx(expected, rel=1e-6)  # measured 5e-8
    assert image.traces[0].total_rate == pytest.approx(expected, rel=1e-6)


def test_line_lands_on_the_trace_at_its_wavelength():
    """The centroid of a pure emission line is where the trace puts that wavelength."""
    model = lw_grism_model("F444W", "GRISMR")
    x0, y0 = 250.3, 1400.6
    stamp, origin = gaussian_stamp(x0, y0, sigma=1.2)

    def line_only(lam):
        return continuum_and_line(lam, cont=0.0, sigma=0.002, centre=4.2)

    image = disperse_sources(model, [DispersedSource(1, x0, y0, stamp, origin, line_only)], SHAPE, orders=(1,)).rate
    x_line, y_line = model.trace_at_wavelength(1, x0, y0, 4.2)
    rows, cols = np.mgrid[0:SHAPE[0], 0:SHAPE[1]]
    box = (np.abs(cols - x_line) < 30) & (np.abs(rows - y_line) < 12)
    w = image * box
    assert (w * cols).sum() / w.sum() == pytest.approx(float(x_line), abs=0.02)
    assert (w * rows).sum() / w.sum() == pytest.approx(float(y_line), abs=0.02)


def test_order2_of_f322w2_is_rendered_where_the_model_puts_it():
    model = lw_grism_model("F322W2", "GRISMR")
    x0, y0 = 150.2, 1000.5
    stamp, origin = gaussian_stamp(x0, y0)
    src = DispersedSource(3, x0, y0, stamp, origin, lambda lam: np.full_like(lam, 1e-5))
    both = disperse_sources(model, [src], SHAPE)
    first = disperse_sources(model, [src], SHAPE, orders=(1,))
    order2 = both.rate - first.rate
    truth2 = next(t for t in both.traces if t.order == 2)
    on = (truth2.x > 10) & (truth2.x < 2030)
    assert on.sum() > 500
    cols = np.round(truth2.x[on]).astype(int)
    profile = order2[:, cols]  # the order-2 light in those columns is centred on its trace
    centroid = (profile * np.arange(SHAPE[0])[:, None]).sum(axis=0) / profile.sum(axis=0)
    assert np.abs(centroid - truth2.y[on]).max() < 0.05


def test_photom_reference_converts_the_dispersed_rate_back_to_the_true_spectrum():
    """photmjsr * relresponse / |dlambda/dpix| (the official photom formula) recovers f_nu."""
    model = lw_grism_model("F444W", "GRISMR")
    x0, y0 = 400.2, 900.3
    stamp, origin = gaussian_stamp(x0, y0)
    image = disperse_sources(model, [DispersedSource(1, x0, y0, stamp, origin, continuum_and_line)],
                             SHAPE, orders=(1,)).rate
    row = next(r for r in photom_rows(model) if r["order"] == 1)
    cols = np.arange(700, 1700)
    lam = model.wavelength_at(1, x0, y0, cols.astype(float))
    dispersion = np.abs(np.gradient(lam))
    conv = row["photmjsr"] * np.interp(lam, row["wavelength"], row["relresponse"]) / dispersion
    column_rate = image[int(y0) - 20:int(y0) + 25, cols].sum(axis=0)
    flux_jy = column_rate * conv * LW_PIXAR_SR * 1e6
    continuum = np.abs(lam - 4.4) > 0.03  # away from the line, f_nu is flat 10 uJy
    assert np.median(flux_jy[continuum]) == pytest.approx(1e-5, rel=1e-4)  # measured 2e-7
    assert np.abs(flux_jy[continuum] / 1e-5 - 1).max() < 0.01  # measured 0.004 (edges of bins)


def test_background_shape_and_level():
    model = lw_grism_model("F444W", "GRISMR")
    shape = background_shape(model)
    lit = shape[4:-4, 4:-4]
    assert np.median(lit) == pytest.approx(1.0, abs=1e-6)
    assert shape[:4].max() == 0.0
    # falls off towards the side the spectra come from (low x for GRISMR), flat elsewhere
    assert lit[:, :50].mean() < 0.9 and abs(lit[:, 1200:].mean() - 1.0) < 0.05
    level = background_level(model, 0.25)
    assert 0.1 < level < 1.0  # DN/s for 0.25 MJy/sr in F444W


def test_rendering_is_deterministic():
    from astropy.table import Table

    from webbcal.simulate.wfss import render_dispersed_rate

    cat = Table({"id": [1, 2], "is_extended": [False, True], "r_eff": [0.0, 0.2],
                 "sersic_n": [0.0, 1.0], "axis_ratio": [1.0, 0.5], "theta": [0.0, 30.0]})

    def sed(row, lam):
        return np.full(np.shape(lam), 2e-6 * row["id"])

    positions = (np.array([500.2, 800.7]), np.array([100.1, 500.9]))  # order 1 all on the detector
    a = render_dispersed_rate(cat, positions, "F444W", "GRISMC", sed=sed, background_scale=0.3)
    b = render_dispersed_rate(cat, positions, "F444W", "GRISMC", sed=sed, background_scale=0.3)
    assert np.array_equal(a.rate, b.rate)
    bkg = background_shape(lw_grism_model("F444W", "GRISMC"))
    sources = a.rate - 0.3 * bkg
    assert [t.order for t in a.traces] == [1, 1]  # order 2 misses the detector: no truth
    expected = sum(t.total_rate for t in a.traces)
    assert sources.sum() == pytest.approx(expected, rel=1e-3)


@pytest.mark.parametrize("r_eff,n,q,theta", [(3.0, 1.0, 0.5, 30.0), (1.5, 4.0, 0.7, 120.0), (6.0, 0.8, 0.4, -45.0)])
def test_galaxy_profile_matches_the_imaging_renderer(r_eff, n, q, theta):
    """The dispersed galaxies have the direct image's profile (psf.add_sersic) and orientation."""
    from webbcal.simulate.psf import add_sersic, psf_for
    from webbcal.simulate.wfss import _galaxy_stamp

    psf = psf_for("F444W", 0.063)
    size, x, y = 101, 50.3, 49.8
    imaging = np.zeros((size, size))
    add_sersic(imaging, psf, x, y, 1.0, r_eff, n, q, theta)
    ours = _galaxy_stamp(psf, size, x, y, r_eff, n, q, theta, psf_half=20)
    imaging, ours = imaging / imaging.sum(), ours / ours.sum()
    assert np.abs(ours - imaging).max() < 0.035 * imaging.max()
    yy, xx = np.mgrid[:size, :size]
    cx, cy = (ours * xx).sum(), (ours * yy).sum()
    assert (cx, cy) == pytest.approx((x, y), abs=0.01)
    mxx, myy = (ours * (xx - cx) ** 2).sum(), (ours * (yy - cy) ** 2).sum()
    mxy = (ours * (xx - cx) * (yy - cy)).sum()
    angle = np.degrees(0.5 * np.arctan2(2 * mxy, mxx - myy))
    assert (angle - theta + 90) % 180 - 90 == pytest.approx(0.0, abs=1.0)  # pixelised cusps: < 1 deg


def test_official_photom_turns_the_dispersed_rate_into_the_true_spectrum(tmp_path):
    """jwst's WFSS photom (calc_wfss: PHOTUNIT, relresponse, dispersion) on a cut-out of the
    simulated trace, with the PHOTOM reference webbcal writes, gives back f_nu."""
    from jwst.photom.photom import DataSet
    from stdatamodels.jwst import datamodels

    from webbcal.simulate.wfss import write_wfss_references

    paths = write_wfss_references(tmp_path, "NRCALONG", ("F444W",), ("GRISMR",))
    photom = next(p for p in paths if "_photom_" in p.name)
    model = lw_grism_model("F444W", "GRISMR")
    x0, y0 = 400.2, 900.3
    stamp, origin = gaussian_stamp(x0, y0)
    image = disperse_sources(model, [DispersedSource(1, x0, y0, stamp, origin, continuum_and_line)],
                             SHAPE, orders=(1,)).rate
    row0, cols = int(y0) - 20, np.arange(700, 1700)
    cut = image[row0:row0 + 45, cols].astype(np.float32)
    lam = model.wavelength_at(1, x0, y0, cols.astype(float))

    exposure = datamodels.MultiSlitModel()
    inst = exposure.meta.instrument
    inst.name, inst.detector, inst.filter, inst.pupil = "NIRCAM", "NRCALONG", "F444W", "GRISMR"
    exposure.meta.exposure.type = "NRC_WFSS"
    exposure.meta.observation.date, exposure.meta.observation.time = "2024-01-16", "03:00:00"
    zeros = np.zeros_like(cut)
    slit = datamodels.SlitModel(data=cut, err=zeros.copy(), var_poisson=zeros.copy(),
                                var_rnoise=zeros.copy(), var_flat=zeros.copy(),
                                dq=np.zeros(cut.shape, np.uint32))
    slit.wavelength = np.tile(lam, (cut.shape[0], 1)).astype(np.float32)
    slit.meta.wcsinfo.spectral_order = 1
    slit.meta.wcsinfo.dispersion_direction = 1
    slit.source_type, slit.name = "POINT", "1"
    exposure.slits.append(slit)
    calibrated = DataSet(exposure, apply_time_correction=False).apply_photom(str(photom), None)

    assert calibrated.slits[0].meta.bunit_data == "MJy/sr"
    flux_jy = np.nansum(calibrated.slits[0].data, axis=0) * LW_PIXAR_SR * 1e6
    continuum = (np.abs(lam - 4.4) > 0.03) & (lam > 3.9) & (lam < 4.95)
    assert np.median(flux_jy[continuum]) == pytest.approx(1e-5, rel=1e-4)  # measured 5e-6
    assert np.abs(flux_jy[continuum] / 1e-5 - 1).max() < 2e-3  # measured 4e-4
