"""dark_current against stcal's dark_sub on identical arrays, and the AVDRKCUR priority."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from webbcal import dqflags
from webbcal.steps import dark_current
from webbcal.steps.containers import Ramp


@pytest.fixture
def rng():
    return np.random.default_rng(3)


def official(data, pdq, dark, dark_dq, nframes, groupgap):
    from stcal.dark_current import dark_class
    from stcal.dark_current.dark_sub import do_correction_data

    sci = dark_class.ScienceData()
    sci.data, sci.groupdq, sci.pixeldq = data.copy(), np.zeros(data.shape, np.uint8), pdq.copy()
    sci.err = np.zeros(data.shape, np.float32)
    sci.exp_nframes, sci.exp_groupgap, sci.exp_intstart = nframes, groupgap, None
    sci.cal_step = None
    drk = dark_class.DarkData()
    drk.data, drk.groupdq = dark.copy(), dark_dq.copy()
    drk.err = np.zeros(dark.shape, np.float32)
    drk.exp_nframes, drk.exp_ngroups, drk.exp_groupgap = 1, dark.shape[0], 0
    out, _ = do_correction_data(sci, drk)
    return out


@pytest.mark.parametrize("nframes,groupgap,ndark", [(1, 0, 10), (4, 1, 40), (2, 3, 12),
                                                    (1, 1, 8)])
def test_matches_stcal(rng, nframes, groupgap, ndark):
    data = rng.normal(100, 10, (2, 6, 32, 40)).astype(np.float32)
    dark = np.cumsum(rng.normal(0.5, 0.1, (ndark, 32, 40)), axis=0).astype(np.float32)
    dark[3, 4, 5] = np.nan
    dark_dq = np.zeros((32, 40), np.uint32)
    dark_dq[1, 2] = dqflags.HOT
    pdq = np.zeros((32, 40), np.uint32)
    expected = official(data, pdq, dark, dark_dq, nframes, groupgap)
    resampled = dark_current.dark_for_pattern(dark, 6, nframes, groupgap)
    got = data.copy()
    dark_current.subtract_dark(got, resampled)
    assert expected.cal_step == "COMPLETE"
    np.testing.assert_array_equal(got, expected.data)


def test_dark_averaging_more_frames_is_skipped(rng):
    dark = np.zeros((10, 4, 4), np.float32)
    assert dark_current.dark_for_pattern(dark, 3, 1, 0, dark_nframes=2) is None
    assert dark_current.dark_for_pattern(dark, 3, 2, 0, dark_groupgap=1) is None


def test_apply_flags_and_avdrkcur_priority(rng):
    data = np.zeros((1, 3, 4, 5), np.float32)
    dark = np.stack([np.full((4, 5), v, np.float32) for v in (0.0, 1.0, 2.0)])
    dark_dq = np.zeros((4, 5), np.uint32)
    dark_dq[0, 0] = dqflags.WARM

    def run(params, arrays=None, keyword=None):
        ref = type("Ref", (), {})()
        ref.arrays = {"SCI": dark, "DQ": dark_dq, **(arrays or {})}
        ref.meta = fits.Header({"NFRAMES": 1, "GROUPGAP": 0})
        if keyword is not None:
            ref.meta["AVDRKCUR"] = keyword
        ramp = Ramp(data=data.copy(), groupdq=np.zeros(data.shape, np.uint8),
                    pixeldq=np.zeros((4, 5), np.uint32), meta=fits.Header({"NFRAMES": 1}))
        status = dark_current.apply(ramp, {"dark": ref}, dark_current.SPEC.resolve(params))
        return status, ramp

    status, ramp = run({}, keyword=0.02)
    assert status == "COMPLETE"
    np.testing.assert_array_equal(ramp.data[0, :, 1, 1], [0.0, -1.0, -2.0])
    assert ramp.pixeldq[0, 0] == dqflags.WARM
    np.testing.assert_array_equal(ramp.avdrkcur, np.full((4, 5), 0.02, np.float32))
    image = np.full((4, 5), 0.5, np.float32)
    assert run({}, {"AVDRKCUR": image}, 0.02)[1].avdrkcur[0, 0] == 0.5
    assert run({"average_dark_current": 0.1}, {"AVDRKCUR": image}, 0.02)[1].avdrkcur[0, 0] == np.float32(0.1)
    assert run({})[1].avdrkcur.sum() == 0.0


def test_dark_output_is_an_official_dark_model(tmp_path):
    from stdatamodels.jwst import datamodels

    ref = type("Ref", (), {})()
    ref.arrays = {"SCI": np.arange(10, dtype=np.float32)[:, None, None] * np.ones((10, 4, 5), np.float32),
                  "DQ": np.zeros((4, 5), np.uint32)}
    ref.meta = fits.Header({"NFRAMES": 1, "GROUPGAP": 0, "REFTYPE": "DARK", "DETECTOR": "NRCA1"})
    ramp = Ramp(data=np.ones((1, 3, 4, 5), np.float32), groupdq=np.zeros((1, 3, 4, 5), np.uint8),
                pixeldq=np.zeros((4, 5), np.uint32), meta=fits.Header({"NFRAMES": 2, "GROUPGAP": 1}))
    path = tmp_path / "averaged_dark.fits"
    params = dark_current.SPEC.resolve({"dark_output": str(path)})
    assert dark_current.apply(ramp, {"dark": ref}, params) == "COMPLETE"
    with datamodels.open(path) as model:
        assert isinstance(model, datamodels.DarkModel)
        # groups average frames (0,1), (3,4), (6,7): NFRAMES=2, GROUPGAP=1
        np.testing.assert_array_equal(model.data[:, 0, 0], [0.5, 3.5, 6.5])
        assert model.meta.exposure.nframes == 2 and model.meta.exposure.groupgap == 1
    np.testing.assert_array_equal(ramp.data[0, :, 0, 0], [0.5, -2.5, -5.5])
