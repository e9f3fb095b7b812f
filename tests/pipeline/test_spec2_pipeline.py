"""webbcal Spec2 for NIRCam WFSS, end to end on a simulated observation.

The spec2 association the simulator wrote (grism rate + the direct image's Image3
catalog) runs through the whole chain: the products open with the official readers, every
step is recorded, the background scale is the injected one within 1 %, the provenance is
stamped, and bad input (no sourcecat member, a missing catalog, a failure mid-chain) gives
one clear error and no cal or x1d. Without a BKG reference bkg_subtract is SKIPPED.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from astropy.io import fits

from tests.pipeline.test_spec2_support import FEW_SLITS, spec2_data  # noqa: F401
from webbcal.errors import WebbcalError
from webbcal.pipeline.spec2 import run_spec2, run_spec2_step

STATUS_KEYS = {"assign_wcs": "S_WCS", "bkg_subtract": "S_BKDSUB", "flat_field": "S_FLAT",
               "extract_2d": "S_EXTR2D", "srctype": "S_SRCTYP", "photom": "S_PHOTOM",
               "extract_1d": "S_EXTR1D"}


@pytest.fixture(scope="module")
def chain(spec2_data, tmp_path_factory):
    """One run of the association (15 brightest sources), outputs in a fresh folder."""
    out = tmp_path_factory.mktemp("spec2_run")
    cal, x1d = out / "g_cal.fits", out / "g_x1d.fits"
    (result,) = run_spec2(spec2_data.asn, cal_path=cal, x1d_path=x1d, params=FEW_SLITS,
                          refs_dir=spec2_data.refs)
    return result, cal, x1d


def test_products_open_with_the_official_readers(chain, spec2_data):
    from stdatamodels.jwst import datamodels

    result, cal, x1d = chain
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with datamodels.open(str(cal)) as model:
            assert type(model).__name__ == "MultiSlitModel"
            assert 15 <= len(model.slits) <= 30  # 15 sources, orders 1 (and 2 where on the detector)
            assert {s.meta.wcsinfo.spectral_order for s in model.slits} <= {1, 2}
            assert model.meta.source_catalog == spec2_data.catalog.name
            assert model.meta.asn.table_name == spec2_data.asn.name
        with datamodels.open(str(x1d)) as spectra:
            assert type(spectra).__name__ == "WFSSMultiSpecModel"
    assert result.statuses == dict.fromkeys(STATUS_KEYS, "COMPLETE")
    primary = fits.getheader(cal)
    for key in STATUS_KEYS.values():
        assert primary[key] == "COMPLETE"
        assert fits.getheader(x1d)[key] == "COMPLETE"
    # provenance as in Image2: references by name, inputs, parameters
    assert primary["R_BKG"].startswith("webbcal_nircam_bkg_nrcalong")
    assert primary["R_SPCWCS"].startswith("webbcal_nircam_specwcs")
    assert primary["CAL_VER"]
    history = " ".join(str(h) for h in primary["HISTORY"])
    assert spec2_data.catalog.name in history and "wfss_nbright=15" in history


def test_background_scale_within_one_percent_of_the_injected(chain, spec2_data):
    result, cal, _ = chain
    scale = fits.getval(cal, "BKGD_SCL")
    assert scale == pytest.approx(spec2_data.injected_background, rel=0.01)
    # the mask left most of the image as background but hid the catalog's spectra
    mask = result.background_mask
    assert 0.2 < mask.mean() < 0.95


def test_without_bkg_reference_the_step_is_skipped(spec2_data, tmp_path):
    from webbcal.refs import RefCache

    cache = tmp_path / "refs"
    shutil_copy_cache(spec2_data.refs, cache, without="bkg")
    (result,) = run_spec2(spec2_data.asn, cal_path=tmp_path / "c_cal.fits", x1d_path=tmp_path / "c_x1d.fits",
                          params={**FEW_SLITS, "extract_1d": {"skip": True}}, refs_dir=cache)
    assert result.statuses["bkg_subtract"] == "SKIPPED"
    assert fits.getval(tmp_path / "c_cal.fits", "S_BKDSUB") == "SKIPPED"
    assert "BKGD_SCL" not in fits.getheader(tmp_path / "c_cal.fits")
    assert not (tmp_path / "c_x1d.fits").exists()  # extract_1d skipped: no x1d
    assert RefCache(cache).entries()


def shutil_copy_cache(source, target, without: str) -> None:
    """A reference cache of links to ``source``'s files, without its ``without`` entries."""
    target.mkdir()
    for path in source.iterdir():
        if path.name != "manifest.json":
            (target / path.name).symlink_to(path)
    data = json.loads((source / "manifest.json").read_text())
    kept = [e for e in data["entries"] if str(e.get("reftype", "")).lower() != without]
    assert len(kept) < len(data["entries"])
    (target / "manifest.json").write_text(json.dumps({**data, "entries": kept}))


def test_rate_with_a_catalog_equals_the_association(chain, spec2_data, tmp_path):
    _, cal, x1d = chain
    (result,) = run_spec2(spec2_data.rate, cal_path=tmp_path / "r_cal.fits", x1d_path=tmp_path / "r_x1d.fits",
                          params=FEW_SLITS, refs_dir=spec2_data.refs, catalog=spec2_data.catalog)
    assert fits.getval(tmp_path / "r_cal.fits", "ASNTABLE") == "singleton"
    a, b = fits.open(cal), fits.open(tmp_path / "r_cal.fits")
    assert len(a) == len(b)
    np.testing.assert_array_equal(a["SCI", 1].data, b["SCI", 1].data)
    np.testing.assert_array_equal(fits.getdata(x1d, "EXTRACT1D")["FLUX"],
                                  fits.getdata(tmp_path / "r_x1d.fits", "EXTRACT1D")["FLUX"])


def test_association_without_sourcecat_is_one_error(spec2_data, tmp_path):
    asn = spec2_data.copy_asn(tmp_path, drop="sourcecat")
    with pytest.raises(WebbcalError, match="0 sourcecat members") as error:
        run_spec2(asn, refs_dir=spec2_data.refs)
    assert "\n" not in str(error.value)
    assert not list(tmp_path.glob("*_cal.fits")) and not list(tmp_path.glob("*_x1d.fits"))


def test_missing_catalog_file_is_one_error(spec2_data, tmp_path):
    asn = spec2_data.copy_asn(tmp_path, sourcecat="jw09999-o002_gone_cat.ecsv")
    with pytest.raises(WebbcalError, match="source catalog not found"):
        run_spec2(asn, refs_dir=spec2_data.refs)
    with pytest.raises(WebbcalError, match="no source catalog"):
        run_spec2(spec2_data.rate, cal_path=tmp_path / "x_cal.fits", refs_dir=spec2_data.refs)
    assert not list(tmp_path.glob("*_cal.fits")) and not list(tmp_path.glob("*_x1d.fits"))


def test_failure_mid_chain_leaves_no_product(spec2_data, tmp_path, monkeypatch):
    from webbcal.steps.wfss import extract_1d

    def broken(*args, **kwargs):
        raise WebbcalError(None, "simulated failure in extract_1d")

    monkeypatch.setattr(extract_1d, "apply", broken)
    cal, x1d = tmp_path / "f_cal.fits", tmp_path / "f_x1d.fits"
    with pytest.raises(WebbcalError, match="simulated failure") as error:
        run_spec2(spec2_data.asn, cal_path=cal, x1d_path=x1d, params=FEW_SLITS, refs_dir=spec2_data.refs)
    assert error.value.path == str(spec2_data.rate)  # named after the exposure
    assert list(tmp_path.iterdir()) == []  # no cal, no x1d, no temporary file


def test_unknown_or_bad_parameters_are_one_line_errors(spec2_data):
    with pytest.raises(WebbcalError, match="unknown spec2 step 'resample'"):
        run_spec2(spec2_data.asn, params={"resample": {}}, refs_dir=spec2_data.refs)
    with pytest.raises(WebbcalError, match="bkg_subtract: wfss_maxiter expects int"):
        run_spec2(spec2_data.asn, params={"bkg_subtract": {"wfss_maxiter": "many"}}, refs_dir=spec2_data.refs)
    with pytest.raises(WebbcalError, match="extract_2d cannot be skipped"):
        run_spec2(spec2_data.asn, params={"extract_2d": {"skip": True}}, refs_dir=spec2_data.refs)


def test_bkg_subtract_alone_writes_bsub_with_mask(chain, spec2_data, tmp_path):
    result, cal, _ = chain
    out = run_spec2_step("bkg_subtract", spec2_data.rate, tmp_path / "g_bsub.fits",
                         refs_dir=spec2_data.refs, catalog=spec2_data.catalog)
    with fits.open(out) as hdul:
        assert hdul[0].header["S_BKDSUB"] == "COMPLETE"
        assert hdul[0].header["BKGD_SCL"] == pytest.approx(fits.getval(cal, "BKGD_SCL"), rel=1e-12)
        np.testing.assert_array_equal(hdul["MASK"].data, result.background_mask)
    with pytest.raises(WebbcalError, match="run 'webbcal spec2'"):
        run_spec2_step("extract_1d", spec2_data.rate, refs_dir=spec2_data.refs)


def test_catalog_mask_and_scale_equal_the_official_background_step(chain, spec2_data, tmp_path):
    """jwst's subtract_wfss_bkg with its own grism boxes (official WCS from the same
    DISTORTION/SPECWCS, the same catalog) masks the same pixels and fits the same scale."""
    from astropy.table import QTable
    from gwcs import WCS
    from jwst.assign_wcs import nircam
    from jwst.background.background_sub_wfss import subtract_wfss_bkg
    from stdatamodels.jwst import datamodels

    from webbcal.refs import RefCache

    result, cal, _ = chain
    header = fits.getheader(spec2_data.rate)
    cache = RefCache(spec2_data.refs)
    refs = {r: str(cache.select(r, header)) for r in ("distortion", "specwcs", "bkg", "wavelengthrange")}
    catalog = QTable.read(spec2_data.catalog, format="ascii.ecsv")
    for name in ("isophotal_abmag", "isophotal_abmag_err"):  # the official compares plain floats
        catalog[name] = np.asarray(getattr(catalog[name], "value", catalog[name]))
    catalog.write(tmp_path / "cat.ecsv", format="ascii.ecsv")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = datamodels.ImageModel(str(spec2_data.rate))
        model.meta.wcs = WCS(nircam.wfss(model, {"distortion": refs["distortion"],
                                                "specwcs": refs["specwcs"], "filteroffset": None}))
        model.meta.wcsinfo.dispersion_direction = 1
        model.meta.source_catalog = str(tmp_path / "cat.ecsv")
        official = subtract_wfss_bkg(model, refs["bkg"], refs["wavelengthrange"])
    np.testing.assert_array_equal(result.background_mask, official.mask)
    assert fits.getval(cal, "BKGD_SCL") == pytest.approx(official.meta.background.scaling_factor, rel=1e-7)
