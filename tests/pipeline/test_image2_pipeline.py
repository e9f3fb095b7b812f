"""Image2 end to end: products the official reader accepts, WCS round trip, associations
with backgrounds, the ``webbcal image2`` command, and one clear error per bad input."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from click.testing import CliRunner

from tests.pipeline.test_image2_support import image2_data, image2_outputs  # noqa: F401
from webbcal import dqflags
from webbcal.errors import WebbcalError
from webbcal.io.product import read_product, write_product
from webbcal.pipeline.image2 import run_image2
from webbcal.refs.formats import write_reference

CAL_EXTENSIONS = ["SCI", "ERR", "DQ", "AREA", "VAR_POISSON", "VAR_RNOISE", "VAR_FLAT"]
I2D_EXTENSIONS = ["SCI", "ERR", "CON", "WHT", "VAR_POISSON", "VAR_RNOISE", "VAR_FLAT"]


def _open_official(path):
    from stdatamodels.jwst import datamodels

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = datamodels.open(str(path))
        model.validate()
    return model


@pytest.mark.parametrize("which", ["cal", "i2d"])
def test_products_open_validate_and_keep_their_wcs(image2_outputs, which):
    path = getattr(image2_outputs, which)
    product = read_product(path)
    expected = CAL_EXTENSIONS if which == "cal" else I2D_EXTENSIONS
    assert sorted(product.arrays) == sorted(expected)
    model = _open_official(path)
    assert type(model).__name__ == "ImageModel"
    assert model.meta.bunit_data == "MJy/sr" and model.meta.bunit_err == "MJy/sr"
    assert model.meta.photometry.conversion_megajanskys == pytest.approx(0.24, rel=1e-6)
    assert model.meta.wcsinfo.s_region.startswith("POLYGON ICRS  ")
    ours = product.tree["meta"]["wcs"]
    ny, nx = model.data.shape
    y, x = np.mgrid[0:ny:23, 0:nx:29].astype(float)
    a = np.array(model.meta.wcs(x, y))
    b = np.array(ours(x, y))
    assert np.nanmax(np.abs(a - b)) <= 1e-9
    assert np.isfinite(a).all()


def test_cal_keywords_and_statuses(image2_outputs):
    model = _open_official(image2_outputs.cal)
    step = model.meta.cal_step
    assert (step.assign_wcs, step.flat_field, step.photom) == ("COMPLETE",) * 3
    assert step.bkg_subtract is None  # no background members: not run, as officially
    assert model.meta.photometry.pixelarea_steradians > 0
    assert model.meta.photometry.conversion_microjanskys == pytest.approx(0.24 * 23.50443, rel=1e-6)
    assert model.meta.wcsinfo.ctype1 == "RA---TAN-SIP"
    assert model.meta.ref_file.distortion.name.endswith("distortion.asdf")
    assert model.meta.ref_file.flat.name.endswith("flat.fits")
    assert model.meta.asn.table_name == "singleton"
    # the SIP header reproduces the gwcs to the requested 0.01 px
    from astropy.io import fits
    from astropy.wcs import WCS

    header = fits.getheader(image2_outputs.cal, "SCI")
    sip = WCS(header)
    ny, nx = model.data.shape
    y, x = np.mgrid[0:ny:40, 0:nx:40].astype(float)
    ra, dec = model.meta.wcs(x, y)
    px, py = sip.all_world2pix(ra, dec, 0)
    assert np.max(np.hypot(px - x, py - y)) < 0.01
    # NaN and DO_NOT_USE agree in every plane
    bad = (model.dq & dqflags.DO_NOT_USE) != 0
    for plane in (model.data, model.err, model.var_poisson, model.var_rnoise, model.var_flat):
        assert np.array_equal(np.isnan(plane), bad)


def test_i2d_keywords(image2_outputs):
    model = _open_official(image2_outputs.i2d)
    assert model.meta.resample.pixfrac == 1.0
    assert model.meta.resample.weight_type == "ivm"
    assert model.meta.resample.pointings == 1
    assert model.meta.cal_step.resample == "COMPLETE"
    assert model.meta.wcsinfo.ctype1 == "RA---TAN"
    assert model.meta.wcsinfo.v2_ref is None
    assert model.con.shape == (1, *model.data.shape)
    filled = np.isfinite(model.data)
    assert np.all(model.con[0][filled] == 1)
    assert np.all(model.wht[~filled] == 0)
    scale = np.sqrt(model.meta.photometry.pixelarea_arcsecsq)
    assert scale == pytest.approx(0.031, rel=0.01)


def test_association_background_is_subtracted(image2_data, tmp_path):
    """A background member equal to the science leaves nothing but zeros."""
    d = image2_data
    science = tmp_path / f"{d.name}_rate.fits"
    science.write_bytes(d.true_rate.read_bytes())
    background = tmp_path / "bkg_rate.fits"
    background.write_bytes(d.true_rate.read_bytes())
    asn = {"asn_type": "image2", "asn_pool": "test_pool", "products": [{"name": "prod", "members": [
        {"expname": science.name, "exptype": "science"},
        {"expname": background.name, "exptype": "background"}]}]}
    asn_path = tmp_path / "test_image2_asn.json"
    asn_path.write_text(json.dumps(asn))
    (result,) = run_image2(asn_path, refs_dir=d.refs, params={"resample": {"skip": True}})
    cal = read_product(tmp_path / "prod_cal.fits")
    assert cal.meta["S_BKDSUB"] == "COMPLETE"
    assert cal.meta["ASNTABLE"] == asn_path.name and cal.meta["ASNPOOL"] == "test_pool"
    data = np.asarray(cal.arrays["SCI"])
    assert np.nanmax(np.abs(data)) == 0.0
    assert not (tmp_path / "prod_i2d.fits").exists()


def test_command_line(image2_data, tmp_path):
    from webbcal.commands.image2 import image2

    d = image2_data
    out = tmp_path / "x_cal.fits"
    result = CliRunner().invoke(image2, [str(d.true_rate), "-o", str(out), "--refs", str(d.refs),
                                         "--set", "resample.pixel_scale_ratio=0.5",
                                         "--set", "resample.kernel=point", "--skip", "photom"])
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output
    cal = read_product(out)
    assert cal.meta["S_PHOTOM"] == "SKIPPED"
    i2d = read_product(tmp_path / "x_i2d.fits")
    assert i2d.meta["PXSCLRT"] == 0.5
    assert i2d.arrays["SCI"].shape[0] > 1.9 * cal.arrays["SCI"].shape[0]


# --------------------------------------------------------------------------- bad input

def _no_outputs(tmp_path):
    return not list(tmp_path.glob("*_cal.fits")) and not list(tmp_path.glob("*_i2d.fits"))


def test_rate_without_pointing_is_one_clear_error(image2_data, tmp_path):
    product = read_product(image2_data.true_rate, lazy=False)
    for key in ("RA_REF", "DEC_REF"):
        del product.meta[key]
    rate = write_product(product, tmp_path / "nopoint_rate.fits")
    with pytest.raises(WebbcalError, match="RA_REF, DEC_REF missing") as info:
        run_image2(rate, refs_dir=image2_data.refs)
    assert info.value.path == str(rate)
    assert _no_outputs(tmp_path)


def test_distortion_of_another_detector_is_refused(image2_data, tmp_path):
    from webbcal.wcs.apertures import aperture
    from webbcal.wcs.distortion import detector_to_v2v3_model

    other = write_reference(tmp_path / "nrcb1_distortion.asdf", "distortion",
                            {"DETECTOR": "NRCB1", "EXP_TYPE": "NRC_IMAGE", "USEAFTER": "2022-01-01T00:00:00"},
                            tree={"model": detector_to_v2v3_model(aperture("NRCB1"))})
    with pytest.raises(WebbcalError, match="NRCB1") as info:
        run_image2(image2_data.true_rate, refs_dir=image2_data.refs,
                   params={"assign_wcs": {"override_distortion": str(other)}}, cal_path=tmp_path / "a_cal.fits")
    assert info.value.path == str(other)
    assert _no_outputs(tmp_path)


def test_flat_of_wrong_shape_is_refused(image2_data, tmp_path):
    flat = write_reference(tmp_path / "small_flat.fits", "flat",
                           {"DETECTOR": "NRCA1", "FILTER": "F150W", "PUPIL": "CLEAR",
                            "USEAFTER": "2022-01-01T00:00:00", "SUBARRAY": "GENERIC"},
                           arrays={"SCI": np.ones((300, 300), np.float32)})
    with pytest.raises(WebbcalError) as info:
        run_image2(image2_data.true_rate, refs_dir=image2_data.refs,
                   params={"flat_field": {"override_flat": str(flat)}}, cal_path=tmp_path / "a_cal.fits")
    assert info.value.path == str(flat)
    assert "300" in info.value.problem
    assert _no_outputs(tmp_path)


def test_association_naming_a_missing_file(image2_data, tmp_path):
    asn = {"products": [{"name": "p", "members": [
        {"expname": "missing_rate.fits", "exptype": "science"}]}]}
    path = tmp_path / "bad_asn.json"
    path.write_text(json.dumps(asn))
    with pytest.raises(WebbcalError, match="member 'missing_rate.fits' of product .* not found"):
        run_image2(path, refs_dir=image2_data.refs)
    assert _no_outputs(tmp_path)


def test_single_steps_chain_like_the_pipeline(image2_data, tmp_path):
    """assign_wcs → flat_field → photom → resample one at a time equals the full run."""
    from webbcal.pipeline.image2 import run_image2_step

    d = image2_data
    current = tmp_path / f"{d.name}_rate.fits"
    current.write_bytes(d.true_rate.read_bytes())
    for name in ("assign_wcs", "flat_field", "photom"):
        current = run_image2_step(name, current, refs_dir=d.refs)
        assert current.name.endswith(f"_{name}.fits")
    i2d = run_image2_step("resample", current, refs_dir=d.refs)
    (full,) = run_image2(d.true_rate, cal_path=tmp_path / "full_cal.fits", i2d_path=tmp_path / "full_i2d.fits",
                         refs_dir=d.refs)
    np.testing.assert_array_equal(read_product(current).arrays["SCI"], full.cal.arrays["SCI"])
    # the i2d from the saved cal (WCS read back from ASDF) differs at most by float32 rounding
    np.testing.assert_allclose(read_product(i2d).arrays["SCI"], full.i2d.arrays["SCI"], rtol=1e-6)


def test_optional_references_may_be_missing(image2_data, tmp_path):
    """Without AREA and FILTEROFFSET (CRDS N/A) the chain still runs."""
    (result,) = run_image2(image2_data.true_rate, cal_path=tmp_path / "x_cal.fits", refs_dir=image2_data.refs,
                           params={"photom": {"override_area": "N/A"},
                                   "assign_wcs": {"override_filteroffset": "N/A"}, "resample": {"skip": True}})
    assert result.statuses["photom"] == "COMPLETE" and result.image.area is None
    assert "area" not in result.references and "filteroffset" not in result.references
