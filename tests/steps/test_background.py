"""background (bkg_subtract): the combined background against the official
``average_background`` on the same files, subarray placement, and the subtraction."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from webbcal import dqflags
from webbcal.steps import background
from webbcal.steps.image_model import CalImage

SHAPE = (20, 30)


def image(data, err=None, dq=None, **keys) -> CalImage:
    h = fits.Header()
    for k, v in {"SUBSTRT1": 1, "SUBSTRT2": 1, "SUBSIZE1": data.shape[1], "SUBSIZE2": data.shape[0], **keys}.items():
        h[k] = v
    return CalImage(data=data.astype(np.float32), meta=h,
                    err=np.full(data.shape, 0.1, np.float32) if err is None else err.astype(np.float32),
                    dq=np.zeros(data.shape, np.uint32) if dq is None else dq)


def backgrounds(rng):
    out = []
    for k in range(10):
        data = rng.normal(1.0, 0.01, SHAPE)
        dq = np.zeros(SHAPE, np.uint32)
        if k == 2:
            data[5, 5] = 50.0  # an outlier the clipping must reject
            dq[7, 7] = dqflags.HOT
        out.append(image(data, err=rng.uniform(0.05, 0.1, SHAPE), dq=dq))
    return out


def test_combination_matches_official(tmp_path):
    from jwst.background.background_sub import average_background
    from stdatamodels.jwst import datamodels

    rng = np.random.default_rng(11)
    bkgs = backgrounds(rng)
    paths = []
    for k, b in enumerate(bkgs):
        model = datamodels.ImageModel(data=b.data, err=b.err, dq=b.dq)
        model.meta.subarray.xstart = model.meta.subarray.ystart = 1
        model.meta.subarray.xsize, model.meta.subarray.ysize = SHAPE[1], SHAPE[0]
        path = tmp_path / f"b{k}_rate.fits"
        model.save(path)
        paths.append(str(path))
    sci = datamodels.ImageModel(data=np.zeros(SHAPE, np.float32))
    sci.meta.subarray.xstart = sci.meta.subarray.ystart = 1
    sci.meta.subarray.xsize, sci.meta.subarray.ysize = SHAPE[1], SHAPE[0]
    official = average_background(sci, paths, 3.0, None)

    science = image(np.full(SHAPE, 5.0))
    combined = background.subtract_backgrounds(science, bkgs, sigma=3.0, maxiters=None)
    np.testing.assert_allclose(combined.data, official.data, rtol=1e-6)
    np.testing.assert_allclose(combined.err, official.err, rtol=1e-6)
    np.testing.assert_array_equal(combined.dq, official.dq)
    assert combined.data[5, 5] == pytest.approx(1.0, abs=0.05)  # outlier clipped
    np.testing.assert_allclose(science.data, 5.0 - combined.data, rtol=1e-6)
    assert science.dq[7, 7] & dqflags.HOT
    assert np.all(science.err == 0.1)  # ERR untouched, as officially


def test_subarray_background_is_placed_by_substrt():
    science = image(np.zeros((10, 10)), SUBSTRT1=101, SUBSTRT2=201)
    bkg = image(np.arange(400.0).reshape(20, 20), SUBSTRT1=96, SUBSTRT2=196)
    data, err, dq = background.place(science.meta, science.shape, bkg)
    np.testing.assert_array_equal(data, bkg.data[5:15, 5:15])
    off = image(np.ones((5, 5)), SUBSTRT1=1, SUBSTRT2=1)
    data, _, _ = background.place(science.meta, science.shape, off)
    assert np.isnan(data).all()


def test_no_background_means_skipped():
    science = image(np.ones(SHAPE))
    assert background.apply(science, [], background.SPEC.defaults()) == "SKIPPED"
    assert np.all(science.data == 1)
