"""ramp_fit: spec numbers, agreement with stcal OLS_C, accuracy against truth, DQ rules."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from webbcal import dqflags
from webbcal.errors import WebbcalError
from webbcal.io.product import Product
from webbcal.steps import ramp_fit
from webbcal.steps.containers import Ramp
from webbcal.steps.ramp_fit import fit_ramps, mask_group_range

TGROUP = 10.73677
TFRAME = 5.36838
DNU, SAT, JUMP = dqflags.DO_NOT_USE, dqflags.SATURATED, dqflags.JUMP_DET


def stcal_fit(data, gdq, pdq, read_noise, gain, *, nframes, dark=None, zeroframe=None,
              suppress=True):
    """The official OLS_C fit of the same arrays (stcal ``ramp_fit_data``, as jwst calls it)."""
    from stcal.ramp_fitting import ramp_fit as official
    from stcal.ramp_fitting.ramp_fit_class import RampData
    from stdatamodels.jwst.datamodels import dqflags as official_flags

    nints, ngroups, ny, nx = data.shape
    if suppress and ngroups == 1:
        suppress = False
    ramp_data = RampData()
    orig = gdq.copy() if np.any(gdq & dqflags.CHARGELOSS) else None
    ramp_data.set_arrays(data.copy(), gdq.copy(), pdq.copy(),
                         np.zeros((ny, nx), np.float32) if dark is None else dark,
                         orig_gdq=orig, zeroframe=zeroframe)
    ramp_data.set_meta(name="NIRCAM", frame_time=TFRAME, group_time=TGROUP, groupgap=0,
                       nframes=nframes, drop_frames1=None)
    ramp_data.algorithm = "OLS_C"
    ramp_data.set_dqflags(official_flags.pixel)
    ramp_data.start_row, ramp_data.num_rows = 0, ny
    ramp_data.suppress_one_group_ramps = suppress
    image, cube, _ = official.ramp_fit_data(ramp_data, False, read_noise.copy(), gain.copy(),
                                            "OLS_C", "optimal", "1")
    return image, cube


def random_exposure(rng, *, nints=2, ngroups=8, ny=48, nx=48):
    """Ramps with every pixel class: jumps, saturation at any group, DNU groups and pixels,
    persistence, charge loss, bad gain, NaN data, bright and negative rates."""
    rate = rng.uniform(-1.0, 300.0, (ny, nx))
    rate[:4] = rng.uniform(1000.0, 6000.0, (4, nx))  # high SNR: every weighting exponent
    gain = rng.uniform(1.5, 2.5, (ny, nx)).astype(np.float32)
    read_noise = rng.uniform(6.0, 14.0, (ny, nx)).astype(np.float32)
    times = (np.arange(ngroups) + 1) * TGROUP
    data = (1000.0 + rate * times[:, None, None]
            + rng.normal(0.0, 1.0, (nints, ngroups, ny, nx)) * read_noise / np.sqrt(2))
    gdq = np.zeros(data.shape, np.uint8)
    for i, g, y, x in zip(*np.nonzero(rng.random(data.shape) < 0.03)):
        data[i, g:, y, x] += rng.uniform(50.0, 3000.0)
        gdq[i, g, y, x] |= JUMP
    for _ in range(ny * nx // 8):
        i, y, x = rng.integers(nints), rng.integers(ny), rng.integers(nx)
        gdq[i, rng.integers(0, ngroups):, y, x] |= SAT
    gdq[rng.random(data.shape) < 0.02] |= DNU
    gdq[rng.random(data.shape) < 0.01] |= dqflags.PERSISTENCE
    gdq[rng.random(data.shape) < 0.005] |= dqflags.CHARGELOSS | DNU
    pdq = np.zeros((ny, nx), np.uint32)
    pdq[rng.random((ny, nx)) < 0.02] |= DNU
    pdq[rng.random((ny, nx)) < 0.02] |= dqflags.HOT
    gain[0, :3] = 0.0
    gain[1, 1] = np.nan
    data[0, ngroups // 2, 10, 10] = np.nan
    return data.astype(np.float32), gdq, pdq, read_noise, gain


def assert_same(ours, official, name):
    ours = np.asarray(ours, np.float64)
    official = np.asarray(official, np.float64)
    assert np.array_equal(np.isnan(ours), np.isnan(official)), f"{name}: NaN pattern differs"
    finite = ~np.isnan(ours)
    np.testing.assert_allclose(ours[finite], official[finite], rtol=1e-5, atol=1e-7, err_msg=name)


# --- the spec's worked example (detector1.md §7) ------------------------------------------

def _five_group_ramp(jump_at=None):
    data = (1000.0 + 10.0 * TGROUP * np.arange(5, dtype=np.float64))
    data = data.astype(np.float32).reshape(1, 5, 1, 1)
    gdq = np.zeros(data.shape, np.uint8)
    if jump_at is not None:
        gdq[0, jump_at] = JUMP
    one = np.ones((1, 1), np.float32)
    return fit_ramps(data, gdq, np.zeros((1, 1), np.uint32), 10.0 * one, 2.0 * one,
                     nframes=1, tgroup=TGROUP, tframe=TGROUP)


def test_spec_variances_of_a_five_group_ramp():
    res = _five_group_ramp()
    assert res.int_slope[0, 0, 0] == pytest.approx(10.0, rel=1e-5)
    assert res.int_var_poisson[0, 0, 0] == pytest.approx(0.11642, abs=1e-5)
    assert res.int_var_rnoise[0, 0, 0] == pytest.approx(0.04337, abs=1e-5)
    assert res.int_err[0, 0, 0] == pytest.approx(0.39974, abs=1e-5)


def test_spec_variances_with_a_jump_split_into_two_and_three_groups():
    res = _five_group_ramp(jump_at=2)
    assert res.int_var_rnoise[0, 0, 0] == pytest.approx(0.17349, abs=1e-5)
    # stcal gives 0.5798930 on these inputs; the spec quotes it truncated to 0.57988
    assert res.int_err[0, 0, 0] == pytest.approx(0.57988, abs=2e-5)
    # ERR is not sqrt(VAR_POISSON + VAR_RNOISE) per integration, but is for the exposure
    assert res.err[0, 0] == pytest.approx(
        np.sqrt(res.var_poisson[0, 0] + res.var_rnoise[0, 0]), rel=1e-6)
    assert res.dq[0, 0] & JUMP


# --- agreement with stcal ---------------------------------------------------------------

@pytest.mark.parametrize("nints,ngroups,nframes", [(2, 8, 2), (3, 3, 1), (2, 2, 2), (2, 1, 1),
                                                    (1, 10, 1)])
@pytest.mark.parametrize("suppress", [True, False])
def test_matches_stcal_ols_c(nints, ngroups, nframes, suppress):
    rng = np.random.default_rng(100 * ngroups + nints)
    data, gdq, pdq, read_noise, gain = random_exposure(rng, nints=nints, ngroups=ngroups)
    zeroframe = (0.5 * data[:, 0]).astype(np.float32)
    zeroframe[:, ::7] = 0.0
    dark = np.full(pdq.shape, 0.01, np.float32)
    image, cube = stcal_fit(data, gdq, pdq, read_noise, gain, nframes=nframes, dark=dark,
                            zeroframe=zeroframe, suppress=suppress)
    inputs = (data.copy(), gdq.copy(), pdq.copy())
    res = fit_ramps(data, gdq, pdq, read_noise, gain, nframes=nframes, tgroup=TGROUP,
                    tframe=TFRAME, dark_current=dark, zeroframe=zeroframe,
                    suppress_one_group=suppress)
    for before, after in zip(inputs, (data, gdq, pdq)):
        np.testing.assert_array_equal(before, after)  # inputs untouched
    for ours, key in ((res.slope, "slope"), (res.err, "err"), (res.var_poisson, "var_poisson"),
                      (res.var_rnoise, "var_rnoise")):
        assert_same(ours, image[key], f"rate {key}")
    for ours, key in ((res.int_slope, "slope"), (res.int_err, "err"),
                      (res.int_var_poisson, "var_poisson"), (res.int_var_rnoise, "var_rnoise")):
        assert_same(ours, cube[key], f"rateints {key}")
    np.testing.assert_array_equal(res.dq, image["dq"])
    np.testing.assert_array_equal(res.int_dq, cube["dq"])


def test_row_blocks_give_the_same_result(monkeypatch):
    rng = np.random.default_rng(7)
    data, gdq, pdq, read_noise, gain = random_exposure(rng, nints=1, ngroups=6)
    kwargs = dict(nframes=2, tgroup=TGROUP, tframe=TFRAME)
    whole = fit_ramps(data, gdq, pdq, read_noise, gain, **kwargs)
    monkeypatch.setattr(ramp_fit, "_BLOCK_PIXELS", 100)  # blocks of 2 rows
    blocks = fit_ramps(data, gdq, pdq, read_noise, gain, **kwargs)
    np.testing.assert_array_equal(whole.slope, blocks.slope)
    np.testing.assert_array_equal(whole.int_err, blocks.int_err)


# --- accuracy against known truth ---------------------------------------------------------

def simulate_ramps(rng, truth, *, ngroups, nframes, gain, read_noise_cds):
    """Frames with Poisson electrons and white read noise, averaged NFRAMES per group."""
    tframe = TGROUP / nframes
    electrons = rng.poisson(truth * gain * tframe, (ngroups * nframes,) + truth.shape)
    frames = np.cumsum(electrons, axis=0) / gain
    frames += rng.normal(0.0, read_noise_cds / np.sqrt(2), frames.shape)
    groups = frames.reshape(ngroups, nframes, *truth.shape).mean(axis=1)
    return (1000.0 + groups[None]).astype(np.float32), tframe


def robust_sigma(values):
    q25, q75 = np.percentile(values, [25, 75])
    return (q75 - q25) / 1.349


def test_unbiased_slopes_and_errors_that_describe_the_scatter():
    rng = np.random.default_rng(11)
    truth = rng.uniform(0.0, 100.0, (96, 96))
    data, tframe = simulate_ramps(rng, truth, ngroups=10, nframes=2, gain=2.0,
                                  read_noise_cds=10.0)
    ones = np.ones(truth.shape, np.float32)
    res = fit_ramps(data, np.zeros(data.shape, np.uint8), np.zeros(truth.shape, np.uint32),
                    10.0 * ones, 2.0 * ones, nframes=2, tgroup=TGROUP, tframe=tframe)
    residual = res.slope - truth
    assert abs(np.median(residual)) < 0.01
    assert robust_sigma(residual / res.err) == pytest.approx(1.0, abs=0.04)


def test_two_good_groups_before_saturation_give_a_finite_rate():
    rng = np.random.default_rng(3)
    truth = np.full((8, 8), 500.0)
    data, tframe = simulate_ramps(rng, truth, ngroups=6, nframes=1, gain=2.0,
                                  read_noise_cds=10.0)
    gdq = np.zeros(data.shape, np.uint8)
    gdq[0, 2:] = SAT  # only groups 0 and 1 usable
    ones = np.ones(truth.shape, np.float32)
    res = fit_ramps(data, gdq, np.zeros(truth.shape, np.uint32), 10.0 * ones, 2.0 * ones,
                    nframes=1, tgroup=TGROUP, tframe=tframe)
    assert np.all(np.isfinite(res.slope))
    assert np.all(res.dq == SAT)  # partial saturation flagged, slope kept
    np.testing.assert_allclose(res.slope, (data[0, 1] - data[0, 0]) / TGROUP, rtol=1e-6)
    assert np.all(np.abs(res.slope - 500.0) < 5 * res.err)


# --- DQ rules (spec §1.3-1.4) -------------------------------------------------------------

def _flat_exposure(ngroups=5, ny=2, nx=3):
    data = (100.0 + 20.0 * TGROUP * np.arange(ngroups, dtype=np.float32))
    data = np.broadcast_to(data[None, :, None, None], (1, ngroups, ny, nx)).astype(np.float32)
    ones = np.ones((ny, nx), np.float32)
    return data, np.zeros(data.shape, np.uint8), np.zeros((ny, nx), np.uint32), 10 * ones, 2 * ones


def test_dq_rules_for_unusable_and_saturated_pixels():
    data, gdq, pdq, rn, gain = _flat_exposure()
    pdq[0, 0] = DNU | dqflags.DEAD                 # masked pixel
    gdq[0, 0, 0, 1] = SAT; gdq[0, 1:, 0, 1] = SAT  # saturated from group 0
    gdq[0, :, 0, 2] = DNU                          # every group unusable
    gdq[0, 0, 1, 0] = SAT | DNU                    # group 0 saturated only
    gain[1, 1] = 0.0                               # bad gain
    gdq[0, 2, 1, 2] = dqflags.PERSISTENCE          # persistence does not stop the fit
    res = fit_ramps(data, gdq, pdq, rn, gain, nframes=1, tgroup=TGROUP, tframe=TGROUP)
    for y, x in ((0, 0), (0, 1), (0, 2), (1, 0), (1, 1)):
        assert np.isnan(res.slope[y, x]) and res.err[y, x] == 0 and res.var_rnoise[y, x] == 0
        assert res.dq[y, x] & DNU
    assert res.dq[0, 0] == DNU | dqflags.DEAD
    assert res.dq[0, 1] == DNU | SAT
    assert res.dq[1, 0] == DNU | SAT
    assert res.dq[1, 1] == DNU | dqflags.NO_GAIN_VALUE
    assert res.slope[1, 2] == pytest.approx(20.0, rel=1e-5)
    assert res.dq[1, 2] == dqflags.PERSISTENCE


def test_one_good_group_is_suppressed_or_uses_the_one_group_time():
    data, gdq, pdq, rn, gain = _flat_exposure(ngroups=4)
    gdq[0, 1:] = SAT
    kwargs = dict(nframes=1, tgroup=TGROUP, tframe=TGROUP)
    suppressed = fit_ramps(data, gdq, pdq, rn, gain, suppress_one_group=True, **kwargs)
    assert np.all(np.isnan(suppressed.slope)) and np.all(suppressed.dq == DNU | SAT)
    kept = fit_ramps(data, gdq, pdq, rn, gain, suppress_one_group=False, **kwargs)
    np.testing.assert_allclose(kept.slope, data[0, 0] / TGROUP, rtol=1e-6)  # (1+1)/2 * TFRAME


def test_all_saturated_in_group_zero_returns_none():
    data, gdq, pdq, rn, gain = _flat_exposure()
    gdq[:, 0] = SAT
    assert fit_ramps(data, gdq, pdq, rn, gain, nframes=1, tgroup=TGROUP, tframe=TGROUP) is None


def test_group_range_masks_outside_groups():
    gdq = np.zeros((1, 6, 2, 2), np.uint8)
    mask_group_range(gdq, 1, 3)
    assert np.all(gdq[0, [0, 4, 5]] == DNU) and np.all(gdq[0, 1:4] == 0)
    untouched = np.zeros_like(gdq)
    mask_group_range(untouched, 4, 2)  # ignored, as jwst does
    assert not untouched.any()


# --- the step ---------------------------------------------------------------------------

def _ramp_and_refs(data, gdq, pdq, rn, gain):
    meta = fits.Header({"NFRAMES": 1, "TGROUP": TGROUP, "TFRAME": TGROUP, "FILENAME": "x"})
    refs = {"gain": Product(model="GainModel", meta=fits.Header({"GAINFACT": 1.0}),
                            arrays={"SCI": gain}),
            "readnoise": Product(model="ReadnoiseModel", meta=fits.Header(), arrays={"SCI": rn})}
    return Ramp(data=data, groupdq=gdq, pixeldq=pdq, meta=meta), refs


def test_apply_returns_rate_and_rateints():
    ramp, refs = _ramp_and_refs(*_flat_exposure())
    params = ramp_fit.SPEC.defaults()
    rate, rateints = ramp_fit.apply(ramp, refs, {**params, "lastgroup": 2})
    assert rate.data.shape == (2, 3) and rateints.data.shape == (1, 2, 3)
    np.testing.assert_allclose(rate.data, 20.0, rtol=1e-5)
    assert rate.meta["BUNIT"] == "DN/s" and rate.meta["GAINFACT"] == 1.0
    assert not (ramp.groupdq & DNU).any()  # the group range does not touch the ramp


def test_apply_rejects_unimplemented_options_and_bad_references():
    ramp, refs = _ramp_and_refs(*_flat_exposure())
    params = ramp_fit.SPEC.defaults()
    with pytest.raises(WebbcalError, match="OLS_C"):
        ramp_fit.apply(ramp, refs, {**params, "algorithm": "LIKELY"})
    refs["gain"].arrays["SCI"] = np.ones((4, 4), np.float32)
    with pytest.raises(WebbcalError, match="shape"):
        ramp_fit.apply(ramp, refs, params)


# --- the official pipeline on its own intermediate ---------------------------------------

@pytest.mark.slow
def test_jump_and_ramp_fit_reproduce_the_official_steps(tmp_path):
    """jwst's JumpStep and RampFitStep outputs from webbcal's steps on jwst's dark output."""
    pytest.importorskip("jwst")
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from oracle.jwst_offline import run_official_detector1
    from oracle.tiny_exposure import write_tiny_exposure

    from webbcal.io.product import read_product
    from webbcal.pipeline.ramp_io import ramp_from_product
    from webbcal.refs import load_reference
    from webbcal.steps import jump

    tiny = write_tiny_exposure(tmp_path / "tiny", nx=48, ny=48, ngroups=6, nints=2)
    run = run_official_detector1(tiny.uncal, tiny.refs, tmp_path / "official",
                                 save_intermediates=True)
    product = read_product(run.outputs["dark_current"])
    ramp = ramp_from_product(product)
    refs = {r: load_reference(tiny.refs[r], r, product.meta) for r in ("gain", "readnoise")}

    # webbcal extensions off: the official noise model (see the SPEC help of both steps)
    assert jump.apply(ramp, refs, {**jump.SPEC.defaults(), "use_row_noise": False,
                                   "leave_one_out": False}) == "COMPLETE"
    official_jump = run.outputs["jump"]
    np.testing.assert_array_equal(ramp.groupdq, fits.getdata(official_jump, "GROUPDQ"))
    np.testing.assert_array_equal(ramp.pixeldq, fits.getdata(official_jump, "PIXELDQ"))
    assert ramp.meta["PRIMECRS"] == pytest.approx(fits.getheader(official_jump)["PRIMECRS"])

    rate, rateints = ramp_fit.apply(ramp, refs, {**ramp_fit.SPEC.defaults(), "use_row_noise": False,
                                                 "exact_variance": False})
    for ours, path in ((rate, run.outputs["rate"]), (rateints, run.outputs["rateints"])):
        for ext, array in (("SCI", ours.data), ("ERR", ours.err),
                           ("VAR_POISSON", ours.var_poisson), ("VAR_RNOISE", ours.var_rnoise)):
            assert_same(array, fits.getdata(path, ext), ext)
        np.testing.assert_array_equal(ours.dq, fits.getdata(path, "DQ"))
