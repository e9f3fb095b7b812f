"""group_scale: official skip rules and scaling (jwst.group_scale on the same model)."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from webbcal.steps import group_scale
from webbcal.steps.containers import Ramp


def ramp_with(**keywords):
    data = np.random.default_rng(2).normal(1000, 50, (2, 3, 8, 9)).astype(np.float32)
    return Ramp(data=data, groupdq=np.zeros(data.shape, np.uint8),
                pixeldq=np.zeros((8, 9), np.uint32), meta=fits.Header(keywords))


@pytest.mark.parametrize("keywords,status", [({}, "SKIPPED"), ({"NFRAMES": 4}, "SKIPPED"),
                                              ({"NFRAMES": 3}, "SKIPPED"),
                                              ({"NFRAMES": 4, "FRMDIVSR": 4}, "SKIPPED"),
                                              ({"NFRAMES": 5, "FRMDIVSR": 8}, "COMPLETE")])
def test_skip_rules(keywords, status):
    ramp = ramp_with(**keywords)
    before = ramp.data.copy()
    assert group_scale.apply(ramp, {}, {}) == status
    if status == "SKIPPED":
        np.testing.assert_array_equal(ramp.data, before)


def test_scaling_matches_jwst():
    from jwst.group_scale import group_scale as official
    from stdatamodels.jwst import datamodels

    ramp = ramp_with(NFRAMES=5, FRMDIVSR=8)
    model = datamodels.RampModel(data=ramp.data.copy())
    model.meta.exposure.nframes, model.meta.exposure.frame_divisor = 5, 8
    official.do_correction(model)
    assert group_scale.apply(ramp, {}, {}) == "COMPLETE"
    np.testing.assert_array_equal(ramp.data, model.data)
