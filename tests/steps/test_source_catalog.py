"""source_catalog on the simulated mosaic (aligned set, no injected outliers) against the
scene's truth (issue 6 §4), its columns and units, and the APCORR aperture parameters."""

from __future__ import annotations

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.table import QTable

from tests.pipeline.test_image3_support import aligned_outputs, image3_data  # noqa: F401
from webbcal.image3.catalog import aperture_params, nearest_neighbours
from webbcal.io.product import read_product

OFFICIAL_COLUMNS = [
    "label", "xcentroid", "ycentroid", "sky_centroid", "aper_bkg_flux", "aper_bkg_flux_err",
    "aper30_flux", "aper30_flux_err", "aper50_flux", "aper50_flux_err", "aper70_flux", "aper70_flux_err",
    "aper_total_flux", "aper_total_flux_err",
    "aper30_abmag", "aper30_abmag_err", "aper50_abmag", "aper50_abmag_err", "aper70_abmag", "aper70_abmag_err",
    "aper_total_abmag", "aper_total_abmag_err",
    "aper30_vegamag", "aper30_vegamag_err", "aper50_vegamag", "aper50_vegamag_err", "aper70_vegamag",
    "aper70_vegamag_err", "aper_total_vegamag", "aper_total_vegamag_err",
    "CI_50_30", "CI_70_50", "CI_70_30", "is_extended", "sharpness", "roundness", "nn_label", "nn_dist",
    "isophotal_flux", "isophotal_flux_err", "isophotal_abmag", "isophotal_abmag_err",
    "isophotal_vegamag", "isophotal_vegamag_err", "isophotal_area", "semimajor_sigma", "semiminor_sigma",
    "ellipticity", "orientation", "sky_orientation", "sky_bbox_ll", "sky_bbox_ul", "sky_bbox_lr", "sky_bbox_ur",
]


@pytest.fixture(scope="module")
def measured(image3_data, aligned_outputs):
    catalog = QTable.read(aligned_outputs.catalog, format="ascii.ecsv")
    i2d = read_product(aligned_outputs.i2d)
    truth = image3_data.catalog
    x, y = i2d.tree["meta"]["wcs"].invert(np.asarray(truth["ra"]), np.asarray(truth["dec"]))
    ny, nx = i2d.arrays["SCI"].shape
    truth = truth[(x > 10) & (x < nx - 10) & (y > 10) & (y < ny - 10)]
    # true S/N: half the flux over the noise of the aperture holding it in the mosaic (the
    # EE50 radius of the PSF, widened by a galaxy's half-light radius)
    sigma_jy = np.nanmedian(i2d.arrays["ERR"]) * 1e6 * i2d.meta["PIXAR_SR"]
    r50 = catalog.meta["aperture_params"]["aperture_radii"][1]
    r_eff = np.where(truth["is_extended"], np.asarray(truth["r_eff"]), 0.0) / np.sqrt(i2d.meta["PIXAR_A2"])
    snr = 0.5 * np.asarray(truth["flux_F150W"]) / (sigma_jy * np.sqrt(np.pi * (r50**2 + r_eff**2)))
    coords = SkyCoord(truth["ra"], truth["dec"], unit="deg")
    index, separation, _ = coords.match_to_catalog_sky(catalog["sky_centroid"])
    return catalog, truth, snr, index, separation.arcsec < 0.1


def test_columns_units_and_segmentation(aligned_outputs, measured):
    catalog = measured[0]
    assert catalog.colnames == OFFICIAL_COLUMNS
    assert catalog["aper50_flux"].unit == u.Jy and catalog["aper50_abmag"].unit is None  # as official
    assert catalog["isophotal_area"].unit == u.pix**2 and catalog["orientation"].unit == u.deg
    assert isinstance(catalog["sky_bbox_ll"], SkyCoord)
    assert np.array_equal(catalog["label"], np.arange(1, len(catalog) + 1))
    ok = catalog["aper70_flux"] > 0
    ab = -2.5 * np.log10(catalog["aper70_flux"][ok].to_value(u.Jy)) + 8.9
    assert np.allclose(catalog["aper70_abmag"][ok].value, ab)
    assert np.allclose((catalog["aper70_abmag"] - catalog["aper70_vegamag"])[ok].value, 1.21)  # F150W
    segm = read_product(aligned_outputs.segm)
    assert segm.model == "SegmentationMapModel"
    assert int(np.max(segm.arrays["SCI"])) == len(catalog)
    from stdatamodels.jwst import datamodels

    with datamodels.open(aligned_outputs.segm) as model:
        model.validate()


def test_completeness_and_spurious_detections(image3_data, measured):
    catalog, truth, snr, index, found = measured
    point = ~np.asarray(truth["is_extended"])
    for kind in (point, ~point):
        bright = kind & (snr >= 20)
        assert bright.sum() >= 5   # a SUB640 field holds few bright galaxies
        assert found[bright].mean() >= 0.95           # official (npixels=25): 19% at S/N 20-50
    everything = SkyCoord(image3_data.catalog["ra"], image3_data.catalog["dec"], unit="deg")
    _, separation, _ = catalog["sky_centroid"].match_to_catalog_sky(everything)
    assert np.mean(separation.arcsec > 0.1) <= 0.01


def test_star_positions_and_aperture_corrected_fluxes(measured):
    catalog, truth, snr, index, found = measured
    stars = found & ~np.asarray(truth["is_extended"]) & (snr >= 50)
    assert stars.sum() >= 8
    matched = catalog[index[stars]]
    coords = SkyCoord(truth["ra"][stars], truth["dec"][stars], unit="deg")
    dra, ddec = coords.spherical_offsets_to(matched["sky_centroid"])
    rms = np.sqrt(np.mean(dra.to_value(u.mas) ** 2 + ddec.to_value(u.mas) ** 2))
    assert rms <= 2.0                                  # measured 1.2 mas (goal: 1 mas)
    ratio = matched["aper_total_flux"].to_value(u.Jy) / np.asarray(truth["flux_F150W"][stars])
    # measured 0.95: the APCORR radii are for the native PSF; drizzling broadens it (goal: 0.98)
    assert np.median(ratio) == pytest.approx(1.0, abs=0.07)
    iso = matched["isophotal_flux"].to_value(u.Jy) / np.asarray(truth["flux_F150W"][stars])
    assert np.median(iso) == pytest.approx(0.95, abs=0.05)


def test_aperture_parameters_from_the_reference(image3_data):
    from webbcal.refs import RefCache
    from webbcal.refs.load import get_references

    meta = {"INSTRUME": "NIRCAM", "EXP_TYPE": "NRC_IMAGE", "DETECTOR": "NRCA1", "FILTER": "F150W",
            "PUPIL": "CLEAR", "DATE-OBS": "2024-01-15", "TIME-OBS": "03:00:00"}
    table = get_references(["apcorr"], meta, RefCache(image3_data.root / "refs"))["apcorr"].tables["APCORR"]
    params = aperture_params(table, "F150W", "CLEAR", (30, 50, 70), 0.5)
    row = [r for r in table if r["filter"].strip() in (b"F150W", "F150W") and round(r["eefraction"] * 100) == 50]
    assert params.radii[1] == pytest.approx(float(row[0]["radius"]) / 0.5)
    assert params.radii[0] < params.radii[1] < params.radii[2]
    fallback = aperture_params(None, "F150W", "CLEAR", (30, 50, 70), 1.0)
    assert fallback.radii == (1.0, 2.0, 3.0) and fallback.corrections == (1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="95%"):
        aperture_params(table, "F150W", "CLEAR", (30, 50, 95), 1.0)


def test_nearest_neighbours():
    labels, dist = nearest_neighbours(np.array([0.0, 3.0, 10.0]), np.array([0.0, 4.0, 4.0]),
                                      np.array([1, 2, 3]))
    assert labels.tolist() == [2, 1, 2]
    assert dist.to_value(u.pix).tolist() == pytest.approx([5.0, 5.0, 7.0])
