"""A tiny simulated program: files open in the official readers, headers, truth, associations."""

import json
import warnings

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from webbcal.simulate.program import settings_for, simulate_program
from webbcal.wcs.pointing import detector_to_world, v2v3_to_sky

SEED = 7


@pytest.fixture(scope="module")
def program(tmp_path_factory):
    out = tmp_path_factory.mktemp("prog")
    settings = settings_for("demo", subarray="SUB160", readpatt="RAPID", ngroups=3, ndither=2,
                            nsources=40, zeroframe=True)
    summary = simulate_program(out, settings, SEED)
    return out, settings, summary


def _open_validated(path):
    """Open with the official reader; any schema ValidationWarning fails the test."""
    from stdatamodels.jwst import datamodels
    from stdatamodels.validate import ValidationWarning

    with warnings.catch_warnings():
        warnings.simplefilter("error", category=ValidationWarning)
        model = datamodels.open(path)
        model.validate()
    return model


def test_uncal_files_open_as_level1b_and_validate(program):
    out, settings, summary = program
    files = sorted((out / "uncal").glob("*_uncal.fits"))
    assert [f.name for f in files] == [f"jw09999001001_02101_0000{k}_nrca1_uncal.fits" for k in (1, 2)]
    m = _open_validated(files[0])
    assert type(m).__name__ == "Level1bModel"
    assert m.data.dtype == np.uint16 and m.data.shape == (1, 3, 160, 160)
    assert m.zeroframe.shape == (1, 160, 160)
    assert m.meta.exposure.readpatt == "RAPID" and m.meta.exposure.nframes == 1
    assert m.meta.exposure.frame_time == pytest.approx((160 + 12) * (160 + 2) * 1e-5, abs=1e-5)
    assert m.meta.subarray.name == "SUB160" and m.meta.exposure.noutputs == 1
    assert m.meta.wcsinfo.v2_ref is not None and m.meta.wcsinfo.roll_ref is not None
    assert len(m.group) == 3 and len(m.int_times) == 1


def test_every_reference_opens_and_validates(program):
    out, _, summary = program
    kinds = set()
    for path in summary["references"]:
        model = _open_validated(path)
        kinds.add(type(model).__name__)
    assert kinds >= {"MaskModel", "SaturationModel", "SuperBiasModel", "LinearityModel", "DarkModel",
                     "GainModel", "ReadnoiseModel", "FlatModel", "NrcImgPhotomModel", "PixelAreaModel",
                     "DistortionModel", "FilteroffsetModel", "NrcImgApcorrModel", "ABVegaOffsetModel"}
    manifest = json.loads((out / "refs" / "manifest.json").read_text())
    assert len(json.dumps(manifest)) > 100


def test_references_are_selected_for_the_exposure(program):
    from webbcal.refs import RefCache

    out, _, _ = program
    header = fits.getheader(sorted((out / "uncal").glob("*.fits"))[0])
    cache = RefCache(out / "refs")
    for reftype in ("mask", "saturation", "superbias", "linearity", "dark", "gain", "readnoise",
                    "flat", "photom", "area", "distortion", "filteroffset", "apcorr", "abvegaoffset"):
        assert cache.select(reftype, header).exists(), reftype


def test_header_pointing_maps_v2v3_ref_to_ra_dec_ref_and_truth_differs(program):
    import asdf

    out, _, summary = program
    path = sorted((out / "uncal").glob("*.fits"))[1]
    h = fits.getheader(path)
    ra, dec = v2v3_to_sky(h["V2_REF"], h["V3_REF"], h["RA_REF"], h["DEC_REF"], h["ROLL_REF"],
                          h["V2_REF"], h["V3_REF"])
    assert abs(ra - h["RA_REF"]) < 1e-12 and abs(dec - h["DEC_REF"]) < 1e-12
    truth = json.loads((out / "truth" / "pointing.json").read_text())[1]
    err = np.hypot((truth["true"]["RA_REF"] - h["RA_REF"]) * np.cos(np.deg2rad(h["DEC_REF"])),
                   truth["true"]["DEC_REF"] - h["DEC_REF"]) * 3.6e6
    assert 1 < err < 150  # tens of mas
    # The true source positions follow the distortion + true pointing: a star placed at its
    # truth (x, y) maps back to its catalog coordinates through the true attitude.
    dist = sorted((out / "refs").glob("*distortion.asdf"))[0]
    with asdf.open(dist) as af:
        model = af.tree["model"]
        fo = [dict(r) for r in asdf.open(sorted((out / "refs").glob("*filteroffset.asdf"))[0]).tree["filters"]]
        name = path.name.replace("_uncal.fits", "")
        src = Table.read(out / "truth" / f"{name}_sources.ecsv")
        cat = Table.read(out / "truth" / "catalog.ecsv")
        hh = fits.Header(h, copy=True)
        for key in ("RA_REF", "DEC_REF", "ROLL_REF"):
            hh[key] = truth["true"][key]
        r2, d2 = detector_to_world(src["x"], src["y"], hh, model, fo)
    assert np.max(np.abs(r2 - cat["ra"]) * 3.6e6) < 1e-3 and np.max(np.abs(d2 - cat["dec"]) * 3.6e6) < 1e-3
    assert "RA_REF" in fits.getheader(path, "SCI")  # wcsinfo keywords where stdatamodels looks


def test_no_truth_in_uncal_headers(program):
    out, _, _ = program
    h = fits.getheader(sorted((out / "uncal").glob("*.fits"))[0])
    text = repr(h).lower()
    assert "truth" not in text and "sky_factor" not in text and "cosmic" not in text


def test_truth_files_and_cosmic_ray_table(program):
    out, settings, summary = program
    name = summary["exposures"][0]
    rate = fits.getdata(out / "truth" / f"{name}_rate.fits", "RATE")
    assert rate.shape == (160, 160) and np.all(rate[:4] == 0) and np.all(rate[:, :4] == 0)
    assert 0.2 < np.median(rate[4:, 4:]) < 0.5  # F150W sky ≈ 0.3 DN/s
    crs = Table.read(out / "truth" / f"{name}_crs.ecsv")
    assert set(crs.colnames) >= {"event", "int", "group", "frame", "y", "x", "deposit_dn"}
    assert len(crs) > 0 and crs["group"].max() < settings.ngroups


def test_associations(program):
    out, settings, summary = program
    image2 = sorted((out / "asn").glob("*_image2_*_asn.json"))
    assert [p.name for p in image2] == ["jw09999-o001_image2_00001_asn.json", "jw09999-o001_image2_00002_asn.json"]
    # one image2 per exposure (numbered as the official asn_generate numbers them)
    by_product = {}
    for path in image2:
        a = json.loads(path.read_text())
        assert a["asn_type"] == "image2"
        by_product[a["products"][0]["name"]] = a["products"][0]["members"]
    assert sorted(by_product) == sorted(summary["exposures"])
    for name, members in by_product.items():
        assert [(m["expname"], m["exptype"]) for m in members] == [(f"{name}_rate.fits", "science")]
    a3 = json.loads((out / "asn" / "jw09999-o001_image3_00001_asn.json").read_text())
    assert a3["products"][0]["name"] == "jw09999-o001_t001_nircam_clear-f150w-sub160"
    assert [m["expname"] for m in a3["products"][0]["members"]] == [f"{n}_cal.fits" for n in summary["exposures"]]
    from jwst.associations import load_asn

    with open(out / "asn" / "jw09999-o001_image3_00001_asn.json") as fh:
        assert load_asn(fh)["asn_type"] == "image3"


def test_exposures_do_not_depend_on_the_rest_of_the_program(program, tmp_path):
    out, settings, summary = program
    again = settings_for("demo", subarray="SUB160", readpatt="RAPID", ngroups=3, ndither=1,
                         nsources=40, zeroframe=True, write_references=False)
    simulate_program(tmp_path, again, SEED)
    name = summary["exposures"][0]
    a = fits.getdata(out / "uncal" / f"{name}_uncal.fits", "SCI")
    b = fits.getdata(tmp_path / "uncal" / f"{name}_uncal.fits", "SCI")
    assert np.array_equal(a, b)


def test_truth_rate_is_consistent_with_flat_photom_and_area(program):
    """rate / FLAT × PHOTMJSR gives back the injected sky (MJy/sr) and star fluxes (Jy)."""
    out, settings, summary = program
    name = summary["exposures"][0]
    truth = fits.getdata(out / "truth" / f"{name}_rate.fits", "RATE")
    flat = fits.getdata(next((out / "refs").glob("*f150w*_flat.fits")), "SCI")[:160, :160]
    area = fits.getdata(next((out / "refs").glob("*_area.fits")), "SCI")[:160, :160]
    photom = next((out / "refs").glob("*_photom.fits"))
    table = fits.getdata(photom, "PHOTOM")
    photmjsr = table["photmjsr"][list(table["filter"]).index("F150W")]
    pixar_sr = fits.getheader(photom)["PIXAR_SR"]
    sky = json.loads((out / "truth" / "pointing.json").read_text())[0]["sky_mjy_sr"]
    good = flat > 0.1
    sb = np.where(good, truth / np.where(good, flat, 1.0) * photmjsr, 0.0)
    assert np.median(sb[good]) == pytest.approx(sky, rel=1e-4)
    # the sky-subtracted flux of every isolated, fully covered star
    src = Table.read(out / "truth" / f"{name}_sources.ecsv")
    x, y = np.asarray(src["x"]), np.asarray(src["y"])
    checked = 0
    for k in np.flatnonzero(~src["is_extended"] & (x > 25) & (x < 134) & (y > 25) & (y < 134)):
        others = np.hypot(x - x[k], y - y[k])
        if np.sort(others)[1] < 35:
            continue
        xi, yi = int(round(x[k])), int(round(y[k]))
        box = np.s_[yi - 20:yi + 21, xi - 20:xi + 21]
        flux = ((sb[box] - sky) * area[box] * good[box]).sum() * 1e6 * pixar_sr
        assert flux == pytest.approx(src["flux_jy"][k], rel=0.01)
        checked += 1
    if not checked:
        pytest.skip("no isolated star in this small field")


def test_dither_pattern_is_primary_by_subpixel_and_prefix_stable():
    from webbcal.simulate.program import dither_offsets, dither_positions

    assert dither_positions(8) == [(0, 0), (0, 1), (0, 2), (0, 3), (1, 0), (1, 1), (1, 2), (1, 3)]
    full = dither_offsets(8, 0.031, 2048)
    assert dither_offsets(3, 0.031, 2048) == full[:3]
    # sub-pixel phases: the four points of a primary position sample x and y at distinct phases
    px = {round((o[0] / 0.031) % 1, 2) for o in full[:4]}
    py = {round((o[1] / 0.031) % 1, 2) for o in full[:4]}
    assert len(px) == 4 and len(py) == 4


@pytest.mark.parametrize("filter_name", ["F150W", "F200W"])  # F200W has a non-zero FILTEROFFSET
def test_official_assign_wcs_on_our_references_matches_our_wcs(program, filter_name):
    """jwst's NIRCam imaging WCS, built from our uncal header and references, is ours."""
    import asdf
    from gwcs.wcs import WCS
    from jwst.assign_wcs import nircam
    from stdatamodels.jwst import datamodels

    from webbcal.wcs.imaging import imaging_wcs

    out, _, summary = program
    uncal = out / "uncal" / f"{summary['exposures'][1]}_uncal.fits"
    with datamodels.open(uncal) as raw:
        image = datamodels.ImageModel(data=np.zeros((160, 160), np.float32))
        image.update(raw)
    image.meta.instrument.filter = filter_name
    refs = {"distortion": str(next((out / "refs").glob("*_distortion.asdf"))),
            "filteroffset": str(next((out / "refs").glob("*_filteroffset.asdf")))}
    official = WCS(nircam.imaging(image, refs))
    header = fits.getheader(uncal)
    header["FILTER"] = filter_name
    header.update({k: v for k, v in fits.getheader(uncal, "SCI").items() if k in ("V2_REF", "V3_REF")})
    with asdf.open(refs["distortion"]) as af, asdf.open(refs["filteroffset"]) as fo:
        ours = imaging_wcs(header, af.tree["model"], [dict(r) for r in fo.tree["filters"]])
        x, y = np.meshgrid(np.linspace(-0.5, 159.5, 9), np.linspace(-0.5, 159.5, 9))
        ra_o, dec_o = official(x, y)
        ra, dec = ours(x, y)
    assert np.max(np.abs(ra - ra_o)) * 3.6e6 < 1e-3  # micro-arcsec agreement
    assert np.max(np.abs(dec - dec_o)) * 3.6e6 < 1e-3


def test_absolute_reference_catalog_is_written(program):
    out, settings, summary = program
    refcat = Table.read(summary["refcat"])  # as tweakreg's abs_refcat reads a file
    assert summary["refcat"] == str(out / "abs_refcat.ecsv")
    assert {"RA", "DEC"} <= set(refcat.colnames) and str(refcat["RA"].unit) == "deg"
    truth = Table.read(out / "truth" / "abs_refcat.ecsv")
    assert list(truth["source_id"]) == list(refcat["source_id"])
    scene = Table.read(out / "truth" / "catalog.ecsv")
    stars = scene[~scene["is_extended"]]
    assert set(refcat["source_id"]) <= set(stars["id"])
