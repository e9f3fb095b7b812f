"""photom against the official ``DataSet.apply_photom`` on the same arrays and reference
files (bit for bit, with and without a time-dependent correction)."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from webbcal.refs import load_reference
from webbcal.refs.formats import write_reference
from webbcal.steps import photom
from webbcal.steps.image_model import CalImage

SHAPE = (30, 40)
USEAFTER = "2022-01-01T00:00:00"


def header():
    h = fits.Header()
    for k, v in {"INSTRUME": "NIRCAM", "DETECTOR": "NRCA1", "FILTER": "F150W", "PUPIL": "CLEAR",
                 "EXP_TYPE": "NRC_IMAGE", "SUBARRAY": "GENERIC", "SUBSTRT1": 11, "SUBSTRT2": 21,
                 "SUBSIZE1": SHAPE[1], "SUBSIZE2": SHAPE[0], "EXPMID": 60500.0,
                 "DATE-OBS": "2024-07-01", "TIME-OBS": "00:00:00"}.items():
        h[k] = v
    return h


def write_refs(tmp_path, linear_loss=None):
    photom_table = {"filter": ["F150W", "F200W"], "pupil": ["CLEAR", "CLEAR"],
                    "photmjsr": np.array([0.2437, 0.19], "f4"), "uncertainty": np.array([0.001, 0.001], "f4")}
    tables = {"PHOTOM": photom_table}
    if linear_loss is not None:
        tables["TIMECOEFF_LINEAR"] = {"filter": ["F150W", "F200W"], "pupil": ["CLEAR", "CLEAR"],
                                      "t0": np.array([59800.0, 59800.0], "f4"),
                                      "lossperyear": np.array([linear_loss, 0.0], "f4")}
    meta = {"DETECTOR": "NRCA1", "USEAFTER": USEAFTER, "PIXAR_SR": 2.3e-14, "PIXAR_A2": 0.000978}
    p = write_reference(tmp_path / "photom.fits", "photom", meta, tables=tables)
    area = np.random.default_rng(2).normal(1.0, 0.01, (100, 100)).astype(np.float32)
    a = write_reference(tmp_path / "area.fits", "area",
                        {"DETECTOR": "NRCA1", "USEAFTER": USEAFTER, "PIXAR_SR": 2.25e-14, "PIXAR_A2": 0.000957,
                         "SUBARRAY": "GENERIC", "SUBSTRT1": 1, "SUBSTRT2": 1},
                        arrays={"SCI": area})
    return p, a


@pytest.mark.parametrize("loss", [None, 0.02])
def test_matches_official_photom(tmp_path, loss):
    from jwst.photom.photom import DataSet
    from stdatamodels.jwst import datamodels

    photom_path, area_path = write_refs(tmp_path, loss)
    rng = np.random.default_rng(7)
    arrays = {name: rng.uniform(0.1, 2.0, SHAPE).astype(np.float32)
              for name in ("data", "err", "var_poisson", "var_rnoise", "var_flat")}
    arrays["data"][3, 3] = np.nan
    dq = np.zeros(SHAPE, np.uint32)
    dq[3, 3] = 1
    image = CalImage(dq=dq.copy(), meta=header(), **{k: v.copy() for k, v in arrays.items()})
    refs = {"photom": load_reference(photom_path, "photom", image.meta),
            "area": load_reference(area_path, "area", image.meta, sci_shape=SHAPE)}
    assert photom.apply(image, refs, photom.SPEC.defaults()) == "COMPLETE"

    model = datamodels.ImageModel(dq=dq.copy(), **{k: v.copy() for k, v in arrays.items()})
    model.meta.instrument.name, model.meta.instrument.detector = "NIRCAM", "NRCA1"
    model.meta.instrument.filter, model.meta.instrument.pupil = "F150W", "CLEAR"
    model.meta.exposure.type, model.meta.exposure.mid_time = "NRC_IMAGE", 60500.0
    model.meta.subarray.name = "GENERIC"
    model.meta.subarray.xstart, model.meta.subarray.ystart = 11, 21
    model.meta.subarray.xsize, model.meta.subarray.ysize = SHAPE[1], SHAPE[0]
    out = DataSet(model).apply_photom(str(photom_path), str(area_path))
    for name in ("data", "err", "var_poisson", "var_rnoise", "var_flat"):
        np.testing.assert_array_equal(getattr(image, name), getattr(out, name), err_msg=name)
    np.testing.assert_array_equal(image.dq, out.dq)
    np.testing.assert_array_equal(image.area, out.area)
    assert image.meta["PHOTMJSR"] == pytest.approx(out.meta.photometry.conversion_megajanskys, rel=1e-12)
    assert image.meta["PHOTUJA2"] == pytest.approx(out.meta.photometry.conversion_microjanskys, rel=1e-7)
    assert image.meta["PIXAR_SR"] == out.meta.photometry.pixelarea_steradians == 2.25e-14
    assert image.bunit == out.meta.bunit_data == "MJy/sr"
    if loss:
        assert image.meta["PHOTMJSR"] > 0.2437 * 1.01  # throughput loss corrected


def test_no_matching_row_leaves_data_alone(tmp_path):
    photom_path, _ = write_refs(tmp_path)
    h = header()
    h["FILTER"] = "F090W"
    image = CalImage(data=np.ones(SHAPE, np.float32), err=np.ones(SHAPE, np.float32),
                     dq=np.zeros(SHAPE, np.uint32), meta=h)
    refs = {"photom": load_reference(photom_path, "photom", h)}
    assert photom.apply(image, refs, photom.SPEC.defaults()) == "COMPLETE"
    assert np.all(image.data == 1) and "PHOTMJSR" not in image.meta
    assert image.meta["PIXAR_SR"] == 2.3e-14  # from the PHOTOM header without an AREA file
