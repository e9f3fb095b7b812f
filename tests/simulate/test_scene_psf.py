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


def test_apcorr_model_matches_a_drizzled_star():
    """The APCORR reference assumes the mosaic PSF is the PSF ⊗ MOSAIC_PIXEL_BOXES pixel
    boxes; drizzle (square kernel, pixfrac 1, same scale, random phase and rotation) agrees."""
    from drizzle.resample import Drizzle
    from photutils.aperture import CircularAperture, aperture_photometry

    from webbcal.simulate.references import MOSAIC_PIXEL_BOXES

    p = psfmod.psf_for("F150W", 0.031)
    radii = [1.0, 1.5, 2.0, 3.0]
    rng = np.random.default_rng(12)
    n = 48
    yy, xx = np.mgrid[0:n, 0:n].astype(float)
    sums = []
    for _ in range(24):
        image = np.zeros((n, n), np.float32)
        sx, sy = 23.5 + rng.random(2)
        psfmod.add_point_source(image, p, sx, sy, 1.0)
        dx, dy = rng.random(2) - 0.5
        angle = rng.uniform(0, np.pi)
        c, s = np.cos(angle), np.sin(angle)
        pixmap = np.dstack([c * (xx - 24) - s * (yy - 24) + 24 + dx, s * (xx - 24) + c * (yy - 24) + 24 + dy])
        driz = Drizzle(kernel="square", out_shape=(n, n), fillval=0)
        driz.add_image(image, exptime=1.0, pixmap=pixmap, pixfrac=1.0)
        ox, oy = c * (sx - 24) - s * (sy - 24) + 24 + dx, s * (sx - 24) + c * (sy - 24) + 24 + dy
        phot = aperture_photometry(driz.out_img, [CircularAperture((ox, oy), r) for r in radii])
        sums.append([phot[f"aperture_sum_{k}"][0] for k in range(len(radii))])
    model = psfmod.encircled_energy_measured(p, radii, boxes=MOSAIC_PIXEL_BOXES)
    assert np.allclose(np.mean(sums, axis=0), model, rtol=0.006)
    two_boxes = psfmod.encircled_energy_measured(p, radii, boxes=2)
    assert not np.allclose(np.mean(sums, axis=0), two_boxes, rtol=0.02)


def test_reference_catalog_holds_bright_stars_with_gaia_like_errors(catalog):
    from webbcal.simulate import scene

    refcat, truth = scene.reference_catalog(catalog, "F150W", np.random.default_rng(3))
    flux = np.asarray(catalog["flux_F150W"])
    bright_stars = ~np.asarray(catalog["is_extended"]) & (-2.5 * np.log10(flux / 3631) <= scene.REFCAT_MAG_LIMIT)
    assert len(refcat) == bright_stars.sum() > 5
    assert sorted(refcat["source_id"]) == sorted(np.asarray(catalog["id"])[bright_stars])
    assert np.all(refcat["mag"] <= scene.REFCAT_MAG_LIMIT)
    assert {"RA", "DEC", "ra_error", "dec_error", "ref_epoch"} <= set(refcat.colnames)
    # the recorded errors are the differences from the truth, of the stated size
    dra = (refcat["RA"] - truth["ra_true"]) * np.cos(np.radians(truth["dec_true"])) * 3.6e6
    assert np.allclose(dra, truth["error_ra_cosdec_mas"], atol=1e-4)
    assert np.allclose((refcat["DEC"] - truth["dec_true"]) * 3.6e6, truth["error_dec_mas"], atol=1e-4)
    assert np.all(refcat["ra_error"] <= scene.REFCAT_ERROR_AT_LIMIT_MAS + 1e-9)
    normalised = np.concatenate([truth["error_ra_cosdec_mas"], truth["error_dec_mas"]]) / np.tile(truth["sigma_mas"], 2)
    assert 0.5 < np.std(normalised) < 1.5
