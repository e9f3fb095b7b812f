"""Image3 end to end: products, keywords, the official reader, flux, parameters, failures."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from tests.pipeline.test_image3_support import image3_data, image3_outputs  # noqa: F401
from webbcal.errors import WebbcalError
from webbcal.io.product import read_product
from webbcal.pipeline.image3 import run_image3

PRODUCT = "jw09999-o001_t001_nircam_clear-f150w-sub640"


def test_products_and_keywords(image3_data, image3_outputs):
    i2d = read_product(image3_outputs.i2d)
    assert image3_outputs.i2d.name == f"{PRODUCT}_i2d.fits"
    assert len(image3_outputs.crf) == len(image3_data.names)
    assert image3_outputs.catalog.name == f"{PRODUCT}_cat.ecsv" and image3_outputs.catalog.exists()
    assert image3_outputs.segm.name == f"{PRODUCT}_segm.fits" and image3_outputs.segm.exists()
    # the official order; tweakreg finds too few stars for minobj=15 in a SUB640 field
    assert list(image3_outputs.statuses) == ["tweakreg", "skymatch", "outlier_detection", "resample",
                                             "source_catalog"]
    assert image3_outputs.statuses["tweakreg"] == "SKIPPED"
    for name in ("SCI", "ERR", "CON", "WHT", "VAR_POISSON", "VAR_RNOISE", "VAR_FLAT"):
        assert name in i2d.arrays
    meta = i2d.meta
    assert meta["NDRIZ"] == 4
    assert meta["S_TWKREG"] == "SKIPPED"
    assert meta["S_SKYMAT"] == "COMPLETE" and meta["S_OUTLIR"] == "COMPLETE" and meta["S_RESAMP"] == "COMPLETE"
    assert meta["ASNTABLE"] == image3_data.outlier_asn.name
    assert "BKGLEVEL" not in meta
    assert meta["EFFEXPTM"] == pytest.approx(4 * read_product(image3_outputs.crf[0]).meta["EFFEXPTM"])
    con = np.asarray(i2d.arrays["CON"])
    assert con.shape[0] == 1
    assert np.mean(con[0] == 0b1111) > 0.9  # nearly every pixel seen by all four exposures
    # each crf keeps the provenance records of its cal file (Detector1, Image2)
    crf = read_product(image3_outputs.crf[0])
    cal = read_product(image3_data.outlier_asn.parent / f"{image3_data.names[0]}_cal.fits")
    records = cal.tree["meta"]["webbcal"]["provenance"]
    assert len(records) >= 2
    assert crf.tree["meta"]["webbcal"]["provenance"] == records
    # no temporary files left behind
    assert not [p for p in image3_outputs.i2d.parent.iterdir() if p.name.startswith(".webbcal")]


def test_official_reader_opens_and_validates_products(image3_outputs):
    from stdatamodels.jwst import datamodels

    with datamodels.open(image3_outputs.i2d) as model:
        assert type(model).__name__ == "ImageModel"
        model.validate()
        assert model.meta.cal_step.resample == "COMPLETE"
        assert model.meta.wcs is not None
        assert model.con.dtype.kind == "i" and model.con.dtype.itemsize == 4
    with datamodels.open(image3_outputs.crf[0]) as model:
        model.validate()
        assert model.meta.background.subtracted is False
        assert model.meta.cal_step.outlier_detection == "COMPLETE"


def test_mosaic_conserves_flux_and_removes_the_matched_sky(image3_data, image3_outputs):
    from webbcal.resample.pixmap import pixel_map
    from webbcal.steps.image_model import CalImage

    i2d = read_product(image3_outputs.i2d)
    data = np.asarray(i2d.arrays["SCI"], np.float64)
    true = image3_data.true_skies
    # resample subtracted each exposure's BKGLEVEL: the mosaic sky is the lowest true sky
    assert np.nanmedian(data) == pytest.approx(true.min(), rel=0.01)
    # total (sky included) in a central box: mosaic vs one exposure less its BKGLEVEL
    k = int(np.argmin(true))
    cal = CalImage.from_product(read_product(image3_outputs.crf[k]))
    ny, nx = data.shape
    x0, x1, y0, y1 = 100, nx - 100, 100, ny - 100
    mosaic = np.nansum(data[y0:y1, x0:x1]) * i2d.meta["PIXAR_SR"]
    where = pixel_map(cal.wcs, i2d.tree["meta"]["wcs"], cal.shape)
    inside = ((where[..., 0] >= x0 - 0.5) & (where[..., 0] < x1 - 0.5)
              & (where[..., 1] >= y0 - 0.5) & (where[..., 1] < y1 - 0.5))
    good = inside & np.isfinite(cal.data)
    single = np.sum(((cal.data - cal.meta["BKGLEVEL"]) * cal.area)[good]) * cal.meta["PIXAR_SR"]
    single *= inside.sum() / good.sum()  # outlier holes in the exposure
    assert mosaic / single == pytest.approx(1.0, abs=0.002)


# steps these tests do not look at (star finding is the slow part)
FAST = {"tweakreg": {"skip": True}, "outlier_detection": {"skip": True}, "source_catalog": {"skip": True}}


def test_grid_parameters_shape_the_mosaic(image3_data, tmp_path):
    base = read_product(run_image3(image3_data.aligned_asn, tmp_path / "a", FAST).i2d)
    half = read_product(run_image3(image3_data.aligned_asn, tmp_path / "b",
                                   {**FAST, "resample": {"pixel_scale_ratio": 0.5, "rotation": 0.0}}).i2d)
    ny, nx = base.arrays["SCI"].shape
    assert half.meta["PXSCLRT"] == 0.5
    assert half.meta["PIXAR_A2"] == pytest.approx(base.meta["PIXAR_A2"] / 4, rel=1e-3)
    assert abs(half.meta["PC1_1"]) == pytest.approx(1.0, abs=1e-9)  # North up
    assert half.arrays["SCI"].shape[0] > 1.8 * ny
    # surface brightness is preserved by the change of grid
    assert np.nanmedian(half.arrays["SCI"]) == pytest.approx(np.nanmedian(base.arrays["SCI"]), rel=0.003)
    shaped = read_product(run_image3(image3_data.aligned_asn, tmp_path / "c",
                                     {**FAST, "skymatch": {"skip": True},
                                      "resample": {"output_shape": "300,200"}}).i2d)
    assert shaped.arrays["SCI"].shape == (200, 300)
    assert shaped.meta["S_SKYMAT"] == "SKIPPED"
    # skymatch subtract=True: SCI changed in the mosaic inputs, no crf without outlier_detection
    result = run_image3(image3_data.aligned_asn, tmp_path / "d",
                        {**FAST, "skymatch": {"subtract": True}})
    subtracted = read_product(result.i2d)
    assert result.crf == [] and not list((tmp_path / "d").glob("*_crf.fits"))
    assert np.nanmedian(subtracted.arrays["SCI"]) == pytest.approx(np.nanmedian(base.arrays["SCI"]), rel=0.002)


def _broken_copy(image3_data, tmp_path, edit):
    folder = tmp_path / "broken"
    shutil.copytree(image3_data.aligned_asn.parent, folder)
    asn = folder / image3_data.aligned_asn.name
    edit(folder, asn)
    return asn


def _assert_no_products(folder):
    leftovers = [p.name for p in folder.iterdir() if p.name.endswith(("_crf.fits", "_i2d.fits"))
                 or p.name.startswith(".webbcal")]
    assert leftovers == []


def test_missing_member_is_reported(image3_data, tmp_path):
    asn = _broken_copy(image3_data, tmp_path,
                       lambda folder, asn: (folder / f"{image3_data.names[2]}_cal.fits").unlink())
    with pytest.raises(WebbcalError, match="not found"):
        run_image3(asn)
    _assert_no_products(asn.parent)


def test_members_of_different_filters_are_refused(image3_data, tmp_path):
    from astropy.io import fits

    def edit(folder, asn):
        fits.setval(folder / f"{image3_data.names[1]}_cal.fits", "FILTER", value="F200W", ext=0)

    asn = _broken_copy(image3_data, tmp_path, edit)
    with pytest.raises(WebbcalError, match="FILTER"):
        run_image3(asn)
    _assert_no_products(asn.parent)


def test_member_without_wcs_is_refused(image3_data, tmp_path):
    from webbcal.io.product import write_product

    def edit(folder, asn):
        path = folder / f"{image3_data.names[0]}_cal.fits"
        product = read_product(path, lazy=False)
        product.tree["meta"].pop("wcs")
        write_product(product, path)

    asn = _broken_copy(image3_data, tmp_path, edit)
    with pytest.raises(WebbcalError, match="no WCS"):
        run_image3(asn)
    _assert_no_products(asn.parent)


def test_failure_late_in_the_chain_leaves_no_partial_products(image3_data, tmp_path):
    asn = _broken_copy(image3_data, tmp_path, lambda folder, asn: None)
    with pytest.raises(WebbcalError, match="output_shape"):
        run_image3(asn, params={"tweakreg": {"skip": True},  # fails after outlier_detection
                                "resample": {"output_shape": "bad"}})
    _assert_no_products(asn.parent)
    with pytest.raises(WebbcalError, match="unknown image3 step"):
        run_image3(asn, params={"jump": {}})


def test_command_line(image3_data, tmp_path):
    from click.testing import CliRunner

    from webbcal.commands.image3 import image3

    out = tmp_path / "cli"
    result = CliRunner().invoke(image3, [str(image3_data.aligned_asn), "-o", str(out), "--skip",
                                         "outlier_detection", "--skip", "tweakreg", "--skip", "source_catalog",
                                         "--set", "resample.pixfrac=0.8"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert f"{PRODUCT}_i2d.fits" in result.output
    i2d = read_product(out / f"{PRODUCT}_i2d.fits")
    assert i2d.meta["PIXFRAC"] == 0.8
    assert not list(out.glob("*_crf.fits"))  # crf products come from outlier_detection
    assert json.loads(image3_data.aligned_asn.read_text())["asn_id"] == "o001"


def test_mosaic_fed_during_outlier_detection_equals_one_drizzled_from_the_crfs(image3_data, tmp_path,
                                                                            monkeypatch):
    from webbcal.pipeline import image3 as pipeline

    steps = {"tweakreg": {"skip": True}, "source_catalog": {"skip": True}}
    added = []
    original_add = pipeline.MosaicFeed.add
    monkeypatch.setattr(pipeline.MosaicFeed, "add",
                        lambda self, exposure, *a: (added.append(exposure.name), original_add(self, exposure, *a)))
    fed = run_image3(image3_data.outlier_asn, tmp_path / "fed", steps)
    assert added == image3_data.names  # every exposure drizzled from memory, in order
    assert fed.seconds["resample"] > 0
    monkeypatch.setattr(pipeline.MosaicFeed, "for_grid", classmethod(lambda cls, *a: None))
    separate = run_image3(image3_data.outlier_asn, tmp_path / "separate", steps)
    a, b = read_product(fed.i2d), read_product(separate.i2d)
    for name in ("SCI", "ERR", "CON", "WHT", "VAR_POISSON", "VAR_RNOISE", "VAR_FLAT"):
        np.testing.assert_array_equal(np.asarray(a.arrays[name]), np.asarray(b.arrays[name]), err_msg=name)
    for key in ("NDRIZ", "EFFEXPTM", "S_OUTLIR", "S_RESAMP"):
        assert a.meta[key] == b.meta[key]


def test_a_different_final_pixel_map_is_not_fed_from_the_outlier_step(image3_data):
    from webbcal.image3.exposures import open_exposure
    from webbcal.pipeline.image3 import MosaicFeed, resolve_settings
    from webbcal.steps import outlier_detection, resample

    asn = json.loads(image3_data.outlier_asn.read_text())
    exposures = [open_exposure(image3_data.outlier_asn.parent / m["expname"])
                 for m in asn["products"][0]["members"]]
    grid = resample.output_grid(exposures, resample.SPEC.defaults())
    outlier = outlier_detection.SPEC.defaults()
    assert MosaicFeed.for_grid(exposures, resolve_settings({})["resample"], grid, outlier) is not None
    other_order = resolve_settings({"resample": {"pixmap_order": 1}})["resample"]
    assert MosaicFeed.for_grid(exposures, other_order, grid, outlier) is None
    rotated = resolve_settings({"resample": {"rotation": 30.0}})["resample"]
    assert MosaicFeed.for_grid(exposures, rotated, grid, outlier) is None
