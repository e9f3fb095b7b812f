"""dq_init against jwst.dq_init.dq_initialization on identical arrays."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from webbcal import dqflags
from webbcal.errors import WebbcalError
from webbcal.steps import dq_init
from webbcal.steps.containers import Ramp


def make_mask():
    mask = np.zeros((32, 40), np.uint32)
    mask[:4] = dqflags.REFERENCE_PIXEL
    mask[10, 11] = dqflags.DO_NOT_USE | dqflags.DEAD
    mask[12, 13] = dqflags.HOT
    return mask


def test_matches_jwst(tmp_path):
    from jwst.dq_init import dq_initialization
    from stdatamodels.jwst import datamodels

    data = np.zeros((2, 6, 32, 40), np.float32)
    mask = make_mask()
    user = np.zeros((32, 40), np.int16)
    user[20, 21] = dqflags.DO_NOT_USE
    model = datamodels.RampModel(data=data.copy())
    model.meta.exposure.type = "NRC_IMAGE"
    model.meta.subarray.xstart, model.meta.subarray.ystart = 1, 1
    model.meta.subarray.xsize, model.meta.subarray.ysize = 40, 32
    mask_model = datamodels.MaskModel(dq=mask.copy())
    mask_model.meta.subarray.xstart, mask_model.meta.subarray.ystart = 1, 1
    mask_model.meta.subarray.xsize, mask_model.meta.subarray.ysize = 40, 32
    expected = dq_initialization.do_dqinit(model, mask_model, user_dq=user.copy())

    user_path = tmp_path / "user_dq.fits"
    fits.PrimaryHDU(user).writeto(user_path)
    ramp = Ramp(data=data, groupdq=None, pixeldq=None, meta=fits.Header())
    ref = type("Ref", (), {})()
    ref.arrays, ref.meta = {"DQ": mask}, fits.Header()
    params = dq_init.SPEC.resolve({"user_supplied_dq": str(user_path)})
    assert dq_init.apply(ramp, {"mask": ref}, params) == "COMPLETE"
    np.testing.assert_array_equal(ramp.pixeldq, expected.pixeldq)
    np.testing.assert_array_equal(ramp.groupdq, expected.groupdq)
    assert ramp.groupdq.dtype == np.uint8 and ramp.pixeldq.dtype == np.uint32
    assert (ramp.groupdq[:, :, 10, 11] == dqflags.DO_NOT_USE).all()
    assert (ramp.groupdq[:, :, 12, 13] == 0).all()


def test_bad_user_dq_shape(tmp_path):
    path = tmp_path / "bad.fits"
    fits.PrimaryHDU(np.zeros((3, 3), np.int16)).writeto(path)
    with pytest.raises(WebbcalError, match="shape"):
        dq_init.read_user_dq(str(path), (32, 40))


def test_skipped_without_mask():
    ramp = Ramp(data=np.zeros((1, 2, 3, 3), np.float32), groupdq=None, pixeldq=None,
                meta=fits.Header())
    assert dq_init.apply(ramp, {}, dq_init.SPEC.resolve()) == "SKIPPED"
