"""Detector1 restarted from a calibrated ramp: jump (flags cleared), ramp_fit and gain_scale
run again; the detector corrections do not."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from oracle.tiny_exposure import write_tiny_exposure  # noqa: E402

from webbcal.pipeline.detector1 import is_calibrated_ramp, run_detector1  # noqa: E402
from webbcal.steps import registry  # noqa: E402

SLOPE_EXTENSIONS = ("SCI", "ERR", "DQ", "VAR_POISSON", "VAR_RNOISE")


def _params(refs: dict, **extra) -> dict:
    params = {name: {f"override_{r}": str(refs[r]) for r in registry.spec(name).reftypes
                     if r in refs}
              for name in registry.STAGES["detector1"]}
    for step, values in extra.items():
        params[step] = {**params[step], **values}
    return {k: v for k, v in params.items() if v}


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    """The whole stage on a tiny exposure, saving the calibrated ramp."""
    tmp = tmp_path_factory.mktemp("restart")
    tiny = write_tiny_exposure(tmp / "tiny", nx=48, ny=48, ngroups=6, nints=2)
    paths = {name: tmp / f"tiny_{name}.fits" for name in ("rate", "rateints", "ramp")}
    result = run_detector1(tiny.uncal, rate_path=paths["rate"], rateints_path=paths["rateints"],
                           ramp_path=paths["ramp"], params=_params(tiny.refs))
    return tiny, paths, result


def test_references_released_early_are_still_recorded(first_run):
    """References are dropped once no later step needs them, but every one used is named."""
    tiny, paths, first = first_run
    used = {"mask", "saturation", "superbias", "linearity", "dark", "gain", "readnoise"}
    assert used <= set(first.references)
    header = fits.getheader(paths["rate"])
    for keyword, reftype in (("R_MASK", "mask"), ("R_DARK", "dark"), ("R_GAIN", "gain")):
        assert header[keyword] == Path(tiny.refs[reftype]).name


def test_saved_ramp_is_recognised_and_the_uncal_is_not(first_run):
    tiny, paths, _ = first_run
    assert is_calibrated_ramp("RampModel", fits.getheader(paths["ramp"]))
    assert not is_calibrated_ramp("Level1bModel", fits.getheader(tiny.uncal))
    assert not is_calibrated_ramp("RampModel", fits.Header())  # a raw ramp: every step runs


def test_restart_reproduces_the_rates_and_keeps_the_step_record(first_run, tmp_path):
    tiny, paths, first = first_run
    rate, rateints = tmp_path / "again_rate.fits", tmp_path / "again_rateints.fits"
    # the same parameters: jump finds the same jumps again, the rates are bit-identical
    again = run_detector1(paths["ramp"], rate_path=rate, rateints_path=rateints,
                          params=_params(tiny.refs))
    assert set(again.statuses) == {"jump", "persistence", "ramp_fit", "gain_scale"}
    for new, old in ((rate, paths["rate"]), (rateints, paths["rateints"])):
        for ext in SLOPE_EXTENSIONS:
            np.testing.assert_array_equal(fits.getdata(new, ext), fits.getdata(old, ext), ext)
        header = fits.getheader(new)
        for step in ("dq_init", "saturation", "refpix", "linearity", "dark_current", "jump"):
            key = registry.spec(step).status_key
            assert header[key] == first.statuses[step] == "COMPLETE", key
    assert fits.getheader(rate)["S_RAMP"] == "COMPLETE"


def test_restart_applies_new_ramp_fit_parameters(first_run, tmp_path):
    tiny, paths, _ = first_run
    rate, rateints = tmp_path / "official_rate.fits", tmp_path / "official_rateints.fits"
    run_detector1(paths["ramp"], rate_path=rate, rateints_path=rateints,
                  params=_params(tiny.refs, ramp_fit={"exact_variance": False}))
    # one-segment ramps (no flag at all): the same slopes, the official Poisson variances
    one_segment = fits.getdata(paths["rateints"], "DQ") == 0
    np.testing.assert_allclose(fits.getdata(rateints, "SCI")[one_segment],
                               fits.getdata(paths["rateints"], "SCI")[one_segment], rtol=1e-6)
    usable = (fits.getdata(rate, "DQ") & 1) == 0
    changed = (fits.getdata(rate, "VAR_POISSON")[usable]
               != fits.getdata(paths["rate"], "VAR_POISSON")[usable])
    assert changed.mean() > 0.9


def test_restart_applies_new_jump_parameters(first_run, tmp_path):
    """A lower threshold flags more, and what the first jump flagged is found afresh (its
    flags were cleared, not kept): a higher one flags fewer."""
    tiny, paths, _ = first_run
    jumps = {}
    for threshold in (3.0, 100.0):
        rateints = tmp_path / f"t{threshold:g}_rateints.fits"
        run_detector1(paths["ramp"], rateints_path=rateints,
                      params=_params(tiny.refs, jump={"rejection_threshold": threshold}))
        jumps[threshold] = int(((fits.getdata(rateints, "DQ") & 4) != 0).sum())
    first = int(((fits.getdata(paths["rateints"], "DQ") & 4) != 0).sum())
    assert jumps[3.0] > first > jumps[100.0]
