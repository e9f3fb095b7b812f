"""A simulated WFSS observation: raw files, references, associations and truth fit together."""

from __future__ import annotations

import json

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from webbcal.simulate import scene as scenemod
from webbcal.simulate.program import settings_for
from webbcal.simulate.wfss import simulate_wfss

SEED = 3


def _settings():
    # The program already used NRCALONG, so only the WFSS references are written (fast).
    return settings_for("demo", detector="NRCALONG", filter="F444W", ngroups=2, wfss=True,
                        source_density=15.0,
                        extra={"wfss_pupils": ["GRISMR"], "wfss_min_flux_jy": 3e-7})


def _run(outdir):
    scene = scenemod.make_catalog(np.random.default_rng(1), 53.16, -27.79, 40.0, 6)
    return simulate_wfss(outdir, _settings(), scene, np.random.default_rng(5), seed=SEED)


@pytest.fixture(scope="module")
def observation(tmp_path_factory):
    outdir = tmp_path_factory.mktemp("wfss_obs")
    return outdir, _run(outdir)


def test_raw_exposures_are_level1b_with_wfss_and_imaging_headers(observation):
    from stdatamodels.jwst import datamodels

    outdir, summary = observation
    (grism,), (direct,) = summary["grism_exposures"], summary["direct_exposures"]
    with datamodels.open(str(outdir / "uncal" / f"{grism}_uncal.fits")) as g:
        assert type(g).__name__ == "Level1bModel"
        assert (g.meta.exposure.type, g.meta.instrument.filter, g.meta.instrument.pupil) == (
            "NRC_WFSS", "F444W", "GRISMR")
        assert g.meta.instrument.detector == "NRCALONG"
        assert g.data.shape == (1, 2, 2048, 2048)
    with datamodels.open(str(outdir / "uncal" / f"{direct}_uncal.fits")) as d:
        assert (d.meta.exposure.type, d.meta.instrument.filter, d.meta.instrument.pupil) == (
            "NRC_IMAGE", "F444W", "CLEAR")
        assert d.meta.wcsinfo.ra_ref == pytest.approx(g.meta.wcsinfo.ra_ref)


def test_spec2_association_names_the_direct_image_level3_products(observation):
    from jwst.associations import load_asn

    from webbcal.asn import write_associations

    outdir, summary = observation
    asn_dir = outdir / "asn"
    # simulate_program writes them after every exposure exists; here simulate_wfss ran alone
    write_associations(outdir / "uncal", asn_dir)
    with open(asn_dir / "jw09999-o002_image3_00001_asn.json") as f:
        image3 = load_asn(f)
    with open(asn_dir / "jw09999-o002_spec2_00001_asn.json") as f:
        spec2 = load_asn(f)
    root = image3["products"][0]["name"]
    assert root == summary["direct_level3_root"] == "jw09999-o002_t001_nircam_clear-f444w"
    assert image3["asn_id"] == spec2["asn_id"] == "o002"
    members = {m["exptype"]: m["expname"] for m in spec2["products"][0]["members"]}
    assert members == {
        "science": f"{summary['grism_exposures'][0]}_rate.fits",
        "direct_image": f"{root}_i2d.fits", "sourcecat": f"{root}_cat.ecsv", "segmap": f"{root}_segm.fits"}
    # the direct image is taken after the grism exposure (the spec2 pairing rule)
    seq = [fits.getval(outdir / "uncal" / f"{n}_uncal.fits", "EXPSPCIN")
           for n in (*summary["grism_exposures"], *summary["direct_exposures"])]
    assert seq[1] > seq[0]


def test_truth_background_matches_the_bkg_reference(observation):
    from webbcal.refs import RefCache

    outdir, summary = observation
    grism = summary["grism_exposures"][0]
    scale = summary["exposures"][grism]["background_scale_dn_s"]
    truth_rate = fits.getdata(outdir / "truth" / f"{grism}_rate.fits", "RATE")
    header = fits.getheader(outdir / "uncal" / f"{grism}_uncal.fits")
    cache = RefCache(outdir / "refs")
    bkg_path = cache.select("bkg", header)
    bkg = fits.getdata(bkg_path, "SCI")
    lit = bkg[4:-4, 4:-4] > 0
    ratio = truth_rate[4:-4, 4:-4][lit] / bkg[4:-4, 4:-4][lit]
    # sources cover a small fraction of the pixels: the median ratio is the injected scale
    assert np.median(ratio) == pytest.approx(scale, rel=0.01)
    for reftype in ("specwcs", "wavelengthrange", "photom", "flat", "distortion", "dark"):
        assert cache.select(reftype, header).exists()


def test_trace_truth_holds_true_spectra(observation):
    outdir, summary = observation
    grism = summary["grism_exposures"][0]
    traces = Table.read(outdir / "truth" / f"{grism}_traces.fits")
    catalog = Table.read(outdir / "truth" / summary["catalog"], format="ascii.ecsv")
    assert len(traces) > 1000 and set(traces["order"]) <= {1, 2}
    sid = traces["source_id"][0]
    rows = traces[traces["source_id"] == sid]
    row = catalog[catalog["id"] == sid][0]
    expected = scenemod.sed_flux_jy(row, np.asarray(rows["wavelength"]))
    assert np.allclose(rows["flux_jy"], expected, rtol=1e-6)
    assert np.all(np.diff(rows["x"][rows["order"] == 1]) > 0)  # GRISMR: wavelength runs along +x
    with open(outdir / "truth" / "o002_wfss.json") as f:
        assert json.load(f)["seed"] == SEED


def test_same_seed_gives_identical_exposures(observation, tmp_path):
    outdir, summary = observation
    again = _run(tmp_path)
    for name in (*summary["grism_exposures"], *summary["direct_exposures"]):
        a = fits.getdata(outdir / "uncal" / f"{name}_uncal.fits", "SCI")
        b = fits.getdata(tmp_path / "uncal" / f"{name}_uncal.fits", "SCI")
        assert np.array_equal(a, b)
    assert again["exposures"] == summary["exposures"]


def test_official_assign_wcs_reproduces_the_simulated_traces(observation):
    """jwst's own NIRCam WFSS WCS, built from the cached DISTORTION/SPECWCS for the grism
    exposure's header, maps (RA, Dec, wavelength, order) to the simulator's trace."""
    from gwcs import WCS
    from jwst.assign_wcs import nircam
    from stdatamodels.jwst import datamodels

    from webbcal.refs import RefCache
    from webbcal.simulate.grism import lw_grism_model
    from webbcal.wcs.distortion import detector_to_v2v3_model
    from webbcal.wcs.apertures import aperture
    from webbcal.wcs.pointing import world_to_detector

    outdir, summary = observation
    grism = summary["grism_exposures"][0]
    uncal = outdir / "uncal" / f"{grism}_uncal.fits"
    header = fits.getheader(uncal)
    cache = RefCache(outdir / "refs")
    refs = {"distortion": str(cache.select("distortion", header)),
            "specwcs": str(cache.select("specwcs", header)), "filteroffset": None}
    with datamodels.open(str(uncal)) as raw:
        image = datamodels.ImageModel(np.zeros((2048, 2048), np.float32))
        image.update(raw)
    wcs = WCS(nircam.wfss(image, refs))

    catalog = Table.read(outdir / "truth" / summary["catalog"], format="ascii.ecsv")[:12]
    ra, dec = np.asarray(catalog["ra"], float), np.asarray(catalog["dec"], float)
    x0, y0 = world_to_detector(ra, dec, header, detector_to_v2v3_model(aperture("NRCALONG")))
    model = lw_grism_model("F444W", "GRISMR")
    for order in (1, 2):
        for k in range(len(ra)):
            lam = np.linspace(*model.wavelength_range(order), 9)[1:-1]
            n = lam.size
            x, y, xo, yo, _ = wcs.backward_transform(np.full(n, ra[k]), np.full(n, dec[k]), lam,
                                                      np.full(n, order))
            # same direct-image position (sources outside the field included: the official
            # inverse distortion is a fitted polynomial there)
            assert np.hypot(xo - x0[k], yo - y0[k]).max() < 0.01
            xs, ys = model.trace_at_wavelength(order, x0[k], y0[k], lam)
            assert np.hypot(x - xs, y - ys).max() < 0.02
            xs, ys = model.trace_at_wavelength(order, xo, yo, lam)
            assert np.hypot(x - xs, y - ys).max() < 1e-6


def test_unknown_grism_is_a_one_line_error(tmp_path):
    from webbcal.errors import WebbcalError

    settings = _settings()
    settings.extra = {"wfss_pupils": ["GRISMX"]}
    with pytest.raises(WebbcalError, match="GRISMX"):
        simulate_wfss(tmp_path, settings, Table(), np.random.default_rng(1), seed=1)


def test_official_wfss_background_scaling_recovers_the_injected_scale(observation):
    """jwst's bkg_subtract scaling (no source mask, 1 % outlier clipping) fitted with the
    cached BKG reference to the true count rate gives back the injected sky level."""
    from jwst.background.background_sub_wfss import subtract_wfss_bkg
    from stdatamodels.jwst import datamodels

    from webbcal.refs import RefCache

    outdir, summary = observation
    grism = summary["grism_exposures"][0]
    header = fits.getheader(outdir / "uncal" / f"{grism}_uncal.fits")
    cache = RefCache(outdir / "refs")
    rate = fits.getdata(outdir / "truth" / f"{grism}_rate.fits", "RATE").astype(np.float32)
    model = datamodels.ImageModel(data=rate, err=np.full(rate.shape, 0.05, np.float32),
                                  dq=np.zeros(rate.shape, np.uint32))
    inst = model.meta.instrument
    inst.name, inst.detector, inst.filter, inst.pupil = "NIRCAM", "NRCALONG", "F444W", "GRISMR"
    model.meta.exposure.type = "NRC_WFSS"
    model.meta.wcsinfo.dispersion_direction = 1
    sub = model.meta.subarray
    sub.xstart, sub.ystart, sub.xsize, sub.ysize = 1, 1, 2048, 2048
    result = subtract_wfss_bkg(model, str(cache.select("bkg", header)),
                               str(cache.select("wavelengthrange", header)))
    injected = summary["exposures"][grism]["background_scale_dn_s"]
    assert result.meta.background.scaling_factor == pytest.approx(injected, rel=0.01)
