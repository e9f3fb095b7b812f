"""superbias against jwst.superbias.bias_sub on identical arrays."""

from __future__ import annotations

import numpy as np
from astropy.io import fits

from webbcal import dqflags
from webbcal.steps import superbias
from webbcal.steps.containers import Ramp


def test_matches_jwst_bias_sub():
    from jwst.superbias import bias_sub
    from stdatamodels.jwst import datamodels

    rng = np.random.default_rng(5)
    data = rng.normal(12000, 300, (2, 6, 32, 40)).astype(np.float32)
    bias = rng.normal(11000, 300, (32, 40)).astype(np.float32)
    bias[2, 3] = np.nan
    bias_dq = np.zeros((32, 40), np.uint32)
    bias_dq[4, 5] = dqflags.PIXEL["UNRELIABLE_BIAS"]
    zf = data[:, 0].copy()
    zf[1, 6, 7] = 0.0

    model = datamodels.RampModel(data=data.copy(), pixeldq=np.zeros((32, 40), np.uint32),
                                 groupdq=np.zeros(data.shape, np.uint8), zeroframe=zf.copy())
    model.meta.exposure.zero_frame = True
    bias_model = datamodels.SuperBiasModel(data=bias.copy(), dq=bias_dq.copy())
    bias_model.data[np.isnan(bias_model.data)] = 0.0
    expected = bias_sub.subtract_bias(model, bias_model)

    ramp = Ramp(data=data.copy(), groupdq=np.zeros(data.shape, np.uint8),
                pixeldq=np.zeros((32, 40), np.uint32), meta=fits.Header({"ZEROFRAM": True}),
                zeroframe=zf.copy())
    ref = type("Ref", (), {})()
    ref.arrays, ref.meta = {"SCI": bias, "DQ": bias_dq}, fits.Header()
    assert superbias.apply(ramp, {"superbias": ref}, {}) == "COMPLETE"
    np.testing.assert_array_equal(ramp.data, expected.data)
    np.testing.assert_array_equal(ramp.pixeldq, expected.pixeldq)
    np.testing.assert_array_equal(ramp.zeroframe, expected.zeroframe)
    assert ramp.zeroframe[1, 6, 7] == 0.0
    np.testing.assert_array_equal(ramp.data[:, :, 2, 3], data[:, :, 2, 3])  # NaN bias = 0
    assert superbias.apply(ramp, {}, {}) == "SKIPPED"
