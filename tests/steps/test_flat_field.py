"""flat_field against the official ``apply_flat_field`` on the same arrays (bit for bit),
the bad-flat rules, the NaN/DQ rule, and the inverse."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from webbcal import dqflags
from webbcal.steps.flat_field import apply_flat
from webbcal.steps.image_model import CalImage, match_nans_and_flags

SHAPE = (40, 50)


def science(rng) -> CalImage:
    data = rng.normal(5.0, 1.0, SHAPE).astype(np.float32)
    vp = rng.uniform(0.01, 0.05, SHAPE).astype(np.float32)
    vr = rng.uniform(0.01, 0.02, SHAPE).astype(np.float32)
    dq = np.zeros(SHAPE, np.uint32)
    dq[3, 4] = dqflags.JUMP_DET
    dq[5, 6] = dqflags.DO_NOT_USE | dqflags.SATURATED
    data[5, 6] = np.nan
    return CalImage(data=data, err=np.sqrt(vp + vr), dq=dq, meta=fits.Header(), var_poisson=vp, var_rnoise=vr)


def flat_arrays(rng):
    flat = rng.normal(1.0, 0.05, SHAPE).astype(np.float32)
    err = rng.uniform(0.001, 0.01, SHAPE).astype(np.float32)
    dq = np.zeros(SHAPE, np.uint32)
    flat[10, 10] = np.nan           # NaN flat → DO_NOT_USE | NO_FLAT_FIELD
    flat[11, 11] = 0.0              # zero flat → same
    dq[12, 12] = dqflags.NO_FLAT_FIELD  # → DO_NOT_USE too
    dq[13, 13] = dqflags.UNRELIABLE_FLAT
    return flat, err, dq


def test_matches_official_apply_flat_field():
    from jwst.flatfield.flat_field import apply_flat_field
    from stdatamodels.jwst import datamodels

    rng = np.random.default_rng(3)
    image = science(rng)
    flat, flat_err, flat_dq = flat_arrays(rng)
    model = datamodels.ImageModel(data=image.data.copy(), err=image.err.copy(), dq=image.dq.copy(),
                                  var_poisson=image.var_poisson.copy(), var_rnoise=image.var_rnoise.copy())
    ref = datamodels.FlatModel(data=flat.copy(), err=flat_err.copy(), dq=flat_dq.copy())
    for m in (model, ref):  # same pixels: the official code compares subarray keywords
        m.meta.instrument.name = "NIRCAM"
        m.meta.subarray.xstart, m.meta.subarray.ystart = 1, 1
        m.meta.subarray.xsize, m.meta.subarray.ysize = SHAPE[1], SHAPE[0]
    apply_flat_field(model, ref)
    apply_flat(image, flat, flat_err, flat_dq)
    for ours, theirs in ((image.data, model.data), (image.err, model.err), (image.var_flat, model.var_flat),
                         (image.var_poisson, model.var_poisson), (image.var_rnoise, model.var_rnoise)):
        np.testing.assert_array_equal(ours, theirs)
    np.testing.assert_array_equal(image.dq, model.dq)
    bad = dqflags.DO_NOT_USE | dqflags.NO_FLAT_FIELD
    for yx in ((10, 10), (11, 11), (12, 12)):
        assert image.dq[yx] & bad == bad and np.isnan(image.data[yx])
    assert image.dq[13, 13] & dqflags.UNRELIABLE_FLAT and np.isfinite(image.data[13, 13])


def test_inverse_restores_the_data():
    rng = np.random.default_rng(4)
    image = science(rng)
    before = image.data.copy()
    flat, flat_err, _ = flat_arrays(np.random.default_rng(5))
    flat = np.abs(np.nan_to_num(flat, nan=1.0)) + 0.5
    apply_flat(image, flat, flat_err, None)
    apply_flat(image, flat, flat_err, None, inverse=True)
    good = np.isfinite(before)
    np.testing.assert_allclose(image.data[good], before[good], rtol=1e-6)
    assert np.all(image.var_flat[good] == 0)


def test_nan_dq_rule_matches_official():
    from jwst.lib.pipe_utils import match_nans_and_flags as official
    from stdatamodels.jwst import datamodels

    rng = np.random.default_rng(6)
    image = science(rng)
    image.var_flat = np.zeros(SHAPE, np.float32)
    image.err[1, 1] = np.nan
    image.var_rnoise[2, 2] = np.nan
    image.dq[7, 7] |= dqflags.DO_NOT_USE
    model = datamodels.ImageModel(data=image.data.copy(), err=image.err.copy(), dq=image.dq.copy(),
                                  var_poisson=image.var_poisson.copy(), var_rnoise=image.var_rnoise.copy(),
                                  var_flat=image.var_flat.copy())
    official(model)
    match_nans_and_flags(image)
    np.testing.assert_array_equal(image.dq, model.dq)
    for name in ("data", "err", "var_poisson", "var_rnoise", "var_flat"):
        np.testing.assert_array_equal(np.isnan(getattr(image, name)), np.isnan(getattr(model, name)))
    assert np.isnan(image.data[[1, 2, 5, 7], [1, 2, 6, 7]]).all()


def test_wrong_shape_flat_is_an_error():
    from webbcal.errors import WebbcalError
    from webbcal.io.product import Product
    from webbcal.steps import flat_field

    image = science(np.random.default_rng(1))
    ref = Product("FlatModel", arrays={"SCI": np.ones((10, 10), np.float32)}, path="f.fits")
    with pytest.raises(WebbcalError, match="flat is 10x10 pixels"):
        flat_field.apply(image, {"flat": ref}, flat_field.SPEC.defaults())
