"""Scene SEDs and PSF photometry: the numbers the accuracy tests of later stages rely on."""

import numpy as np
import pytest

from webbcal.simulate import psf as psfmod
from webbcal.simulate.references import apcorr_rows
from webbcal.simulate.scene import C_UM_S, JY, band_flux_jy, make_catalog, sed_flux_jy


@pytest.fixture(scope="module")
def catalog():
    return make_catalog(np.random.default_rng(4), 53.16, -27.79, 60.0, 300)


def test_catalog_columns_and_mix(catalog):
    for col in ("id", "ra", "dec", "is_extended", "flux_F150W", "flux_F200W", "flux_F444W",
                "r_eff", "sersic_n", "axis_ratio", "theta", "sed_slope", "line1_wave", "line1_flux"):
        assert col in catalog.colnames
    assert 0.2 < np.mean(~catalog["is_extended"]) < 0.5
    assert np.all(catalog["r_eff"][~catalog["is_extended"]] == 0)
    assert abs(np.mean(catalog["dec"]) + 27.79) < 60 / 3600


def test_emission_line_flux_integrates_back(catalog):
    row = next(r for r in catalog if r["line1_flux"] > 0)
    mu, sig = row["line1_wave"], row["line1_sigma"]
    lam = np.linspace(mu - 8 * sig, mu + 8 * sig, 4001)
    cont = row["sed_ref_flux"] * (lam / row["sed_ref_wave"]) ** row["sed_slope"]
    line_fnu = sed_flux_jy(row, lam) - cont
    if row["line2_flux"] > 0 and abs(row["line2_wave"] - mu) < 8 * sig:
        pytest.skip("overlapping lines")
    f_lambda = line_fnu * JY * C_UM_S / lam**2  # erg/s/cm²/µm
    assert np.trapezoid(f_lambda, lam) == pytest.approx(row["line1_flux"], rel=1e-3)


def test_band_flux_of_a_flat_spectrum_is_the_flux():
    row = {"sed_ref_flux": 1e-6, "sed_ref_wave": 2.0, "sed_slope": 0.0,
           "line1_flux": 0.0, "line2_flux": 0.0}
    assert band_flux_jy(row, "F150W") == pytest.approx(1e-6)


def test_point_source_rendering_conserves_flux_and_centroid():
    p = psfmod.psf_for("F150W", 0.031)
    img = np.zeros((121, 121))
    psfmod.add_point_source(img, p, 60.3, 59.7, 1e4)
    yy, xx = np.mgrid[:121, :121]
    assert img.sum() == pytest.approx(1e4, rel=2e-4)
    assert (img * xx).sum() / img.sum() == pytest.approx(60.3, abs=2e-3)
    assert (img * yy).sum() / img.sum() == pytest.approx(59.7, abs=2e-3)


def test_aperture_photometry_matches_the_measured_encircled_energy():
    from photutils.aperture import CircularAperture, aperture_photometry

    p = psfmod.psf_for("F150W", 0.031)
    assert psfmod.encircled_energy_pixelated(p, [2.0], boxes=0)[0] == pytest.approx(
        p.encircled_energy(2.0), abs=2e-3)
    radii = [1.0, 2.0, 3.0]
    expected = psfmod.encircled_energy_measured(p, radii, boxes=1)
    measured = []
    phases = [(dx, dy) for dx in (0, 1 / 3, 2 / 3) for dy in (0, 1 / 3, 2 / 3)]
    for dx, dy in phases:  # the same sub-pixel phases the model averages over
        img = np.zeros((101, 101))
        psfmod.add_point_source(img, p, 50 + dx, 50 + dy, 1.0)
        phot = aperture_photometry(img, [CircularAperture((50 + dx, 50 + dy), r) for r in radii])
        measured.append([phot[f"aperture_sum_{k}"][0] for k in range(3)])
    assert np.allclose(np.mean(measured, axis=0), expected, rtol=1e-3)


def test_apcorr_rows_are_consistent():
    rows = apcorr_rows("F444W", 0.063)
    assert [round(r["eefraction"], 1) for r in rows] == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    radii = [r["radius"] for r in rows]
    assert np.all(np.diff(radii) > 0)
    for r in rows:  # 1/EE, slightly larger for the light the sky annulus removes
        assert 1.0 / r["eefraction"] <= r["apcorr"] < 1.02 / r["eefraction"]
        assert r["skyin"] > radii[-1] and r["skyout"] > r["skyin"]
