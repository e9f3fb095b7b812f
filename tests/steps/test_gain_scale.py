"""gain_scale against jwst.gain_scale on identical slope arrays."""

from __future__ import annotations

import numpy as np
from astropy.io import fits

from webbcal.steps import gain_scale
from webbcal.steps.containers import SlopeImage


def slopes(shape, header):
    rng = np.random.default_rng(8)
    arrays = [rng.random(shape).astype(np.float32) for _ in range(4)]
    return SlopeImage(data=arrays[0], err=arrays[1], dq=np.zeros(shape, np.uint32),
                      var_poisson=arrays[2], var_rnoise=arrays[3], meta=header)


def test_matches_jwst_for_rate_and_rateints():
    from jwst.gain_scale import gain_scale as official
    from stdatamodels.jwst import datamodels

    for shape, model_class in (((8, 9), datamodels.ImageModel), ((3, 8, 9), datamodels.CubeModel)):
        slope = slopes(shape, fits.Header({"GAINFACT": 1.8}))
        model = model_class(data=slope.data.copy(), err=slope.err.copy(),
                            var_poisson=slope.var_poisson.copy(), var_rnoise=slope.var_rnoise.copy())
        official.do_correction(model, 1.8)
        assert gain_scale.apply_to_slopes(slope, {}, {}) == "COMPLETE"
        for name in ("data", "err", "var_poisson", "var_rnoise"):
            np.testing.assert_array_equal(getattr(slope, name), getattr(model, name))


def test_factor_from_reference_or_skip():
    slope = slopes((4, 4), fits.Header())
    before = slope.data.copy()
    assert gain_scale.apply_to_slopes(slope, {}, {}) == "SKIPPED"
    ref = type("Ref", (), {})()
    ref.arrays, ref.meta = {}, fits.Header()
    assert gain_scale.apply_to_slopes(slope, {"gain": ref}, {}) == "SKIPPED"
    ref.meta["GAINFACT"] = 2.0
    assert gain_scale.apply_to_slopes(slope, {"gain": ref}, {}) == "COMPLETE"
    np.testing.assert_array_equal(slope.data, before * 2)
    assert slope.meta["GAINFACT"] == 2.0
