"""jump: identical flags to stcal in every detection mode, CR detection against truth."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from webbcal import dqflags
from webbcal.errors import WebbcalError
from webbcal.io.product import Product
from webbcal.steps import jump
from webbcal.steps.containers import Ramp
from webbcal.steps.jump import (SPEC, choose_mode, find_jumps, settings_from_params,
                                snowball_settings_from_params)

# The official algorithm: webbcal's extensions (SPEC help "webbcal extension") switched off.
OFFICIAL = {**SPEC.defaults(), "leave_one_out": False, "use_row_noise": False}

TGROUP = 10.73677
DNU, SAT, JUMP = dqflags.DO_NOT_USE, dqflags.SATURATED, dqflags.JUMP_DET


def stcal_jumps(data, gdq, pdq, gain, read_noise, nframes, params):
    """The official detection of the same arrays (stcal ``detect_jumps_data``, set up as jwst)."""
    from stcal.jump.jump import detect_jumps_data
    from stcal.jump.jump_class import JumpData
    from stdatamodels.jwst.datamodels import dqflags as official_flags

    p = params
    jd = JumpData(gain2d=gain.copy(), rnoise2d=read_noise.copy(), dqflags=official_flags.pixel)
    jd.init_arrays_from_arrays(data.copy(), gdq.copy(), pdq.copy())
    jd.nframes = nframes
    jd.dt_group = np.ones(1)
    jd.n_reads_groupdiff = np.ones(1) * 2 * nframes
    jd.set_detection_settings(p["rejection_threshold"], p["three_group_rejection_threshold"],
                              p["four_group_rejection_threshold"],
                              p["max_jump_to_flag_neighbors"], p["min_jump_to_flag_neighbors"],
                              p["flag_4_neighbors"])
    jd.set_after_jump(p["after_jump_flag_dn1"], int(p["after_jump_flag_time1"] // TGROUP),
                      p["after_jump_flag_dn2"], int(p["after_jump_flag_time2"] // TGROUP))
    jd.set_snowball_info(p["expand_large_events"], p["min_jump_area"], p["min_sat_area"],
                         p["expand_factor"],
                         p["sat_required_snowball"], p["min_sat_radius_extend"],
                         2 * p["sat_expand"], p["edge_size"])
    jd.set_shower_info(False, p["extend_snr_threshold"], p["extend_min_area"],
                       p["extend_inner_radius"], p["extend_outer_radius"],
                       p["extend_ellipse_expand_ratio"], p["min_diffs_single_pass"],
                       2 * p["max_extended_radius"])
    jd.set_sigma_clipping_info(p["minimum_groups"], p["minimum_sigclip_groups"],
                               p["only_use_ints"])
    jd.max_cores = "1"
    jd.mask_persist_grps_next_int = p["mask_snowball_core_next_int"]
    jd.persist_grps_flagged = int(p["snowball_time_masked_next_int"] // TGROUP)
    gdq_out, pdq_out, ncrs, nevents = detect_jumps_data(jd)
    if p["expand_large_events"]:
        return gdq_out, pdq_out, ncrs, nevents
    return gdq_out, pdq_out, ncrs


def random_exposure(rng, *, nints=2, ngroups=8, ny=40, nx=40, quantized=False):
    """Ramps with jumps of every size, saturation, DNU groups, old jump flags, bad gain."""
    rate = rng.uniform(0.0, 30.0, (ny, nx))
    gain = rng.uniform(1.5, 2.5, (ny, nx)).astype(np.float32)
    read_noise = rng.uniform(6.0, 14.0, (ny, nx)).astype(np.float32)
    times = (np.arange(ngroups) + 1) * TGROUP
    data = (1000.0 + rate * times[:, None, None]
            + rng.normal(0.0, 1.0, (nints, ngroups, ny, nx)) * read_noise / np.sqrt(2))
    for i, g, y, x in zip(*np.nonzero(rng.random(data.shape) < 0.02)):
        data[i, g:, y, x] += rng.uniform(10.0, 3000.0)
    gdq = np.zeros(data.shape, np.uint8)
    for _ in range(ny * nx // 8):
        i, y, x = rng.integers(nints), rng.integers(ny), rng.integers(nx)
        gdq[i, rng.integers(0, ngroups):, y, x] |= SAT
    gdq[rng.random(data.shape) < 0.02] |= DNU
    gdq[rng.random(data.shape) < 0.005] |= JUMP
    gain[0, :3] = 0.0
    if quantized:
        data = np.round(data)  # integer DN: ties between differences
    return data.astype(np.float32), gdq, np.zeros((ny, nx), np.uint32), gain, read_noise


CASES = {
    "iterative": (dict(nints=2, ngroups=8), {}),
    "three_groups": (dict(nints=1, ngroups=3), {}),
    "four_groups": (dict(nints=1, ngroups=4), {}),
    "quantized_ties": (dict(nints=3, ngroups=5, quantized=True), {}),
    "single_pass": (dict(nints=1, ngroups=12), {}),
    "sigma_clip": (dict(nints=110, ngroups=4, ny=12, nx=12), {}),
    "sigma_clip_all_groups": (dict(nints=40, ngroups=5, ny=12, nx=12), {"only_use_ints": False}),
    "after_jump": (dict(nints=2, ngroups=6), {"after_jump_flag_dn1": 100.0,
                                              "after_jump_flag_time1": 25.0,
                                              "after_jump_flag_dn2": 1000.0,
                                              "after_jump_flag_time2": 50.0}),
    "no_neighbours": (dict(nints=2, ngroups=6), {"flag_4_neighbors": False,
                                                 "after_jump_flag_dn1": 100.0,
                                                 "after_jump_flag_time1": 25.0}),
}


@pytest.mark.parametrize("nframes", [1, 2])
@pytest.mark.parametrize("case", sorted(CASES))
def test_flags_identical_to_stcal(case, nframes):
    shape, overrides = CASES[case]
    rng = np.random.default_rng(sorted(CASES).index(case))
    data, gdq, pdq, gain, read_noise = random_exposure(rng, **shape)
    params = {**OFFICIAL, **overrides}
    official_gdq, official_pdq, official_crs = stcal_jumps(data, gdq, pdq, gain, read_noise,
                                                           nframes, params)
    ours_gdq, ours_pdq = gdq.copy(), pdq.copy()
    result = find_jumps(data, ours_gdq, ours_pdq, gain, read_noise,
                        settings_from_params(params, nframes, TGROUP, gain))
    assert np.count_nonzero(ours_gdq & JUMP) > 0
    np.testing.assert_array_equal(ours_gdq, official_gdq)
    np.testing.assert_array_equal(ours_pdq, official_pdq)
    assert result.primary_crs == official_crs


def snowball_exposure(rng, *, nints=2, ngroups=6, ny=90, nx=90, events=10):
    """Elliptical events: a jump halo of 400 DN around a saturated core of random size."""
    times = (np.arange(ngroups) + 1) * TGROUP
    data = 1000.0 + 5.0 * times[None, :, None, None] + rng.normal(0, 6, (nints, ngroups, ny, nx))
    gdq = np.zeros(data.shape, np.uint8)
    yy, xx = np.mgrid[:ny, :nx]
    for _ in range(events):
        i, g = rng.integers(nints), rng.integers(1, ngroups)
        cy, cx = rng.uniform(0, ny), rng.uniform(0, nx)
        a, b, theta = rng.uniform(3, 12), rng.uniform(3, 12), rng.uniform(0, np.pi)
        u = ((xx - cx) * np.cos(theta) + (yy - cy) * np.sin(theta)) / a
        v = (-(xx - cx) * np.sin(theta) + (yy - cy) * np.cos(theta)) / b
        radius = np.hypot(u, v)
        data[i, g:, radius < 1.0] += 400.0
        gdq[i, g:, radius < rng.uniform(0.0, 0.6)] |= SAT
    ones = np.ones((ny, nx), np.float32)
    return data.astype(np.float32), gdq, np.zeros((ny, nx), np.uint32), 2 * ones, 8 * ones


@pytest.mark.parametrize("size,overrides", [(90, {}), (90, {"sat_required_snowball": False}),
                                            (90, {"edge_size": 0, "expand_factor": 3.0}),
                                            (200, {"min_sat_radius_extend": 1.5})])
def test_snowballs_identical_to_stcal(size, overrides):
    rng = np.random.default_rng(len(overrides) + size)
    data, gdq, pdq, gain, read_noise = snowball_exposure(rng, ny=size, nx=size,
                                                         events=size // 8)
    params = {**OFFICIAL, "expand_large_events": True, **overrides}
    official_gdq, _, _, official_events = stcal_jumps(data, gdq, pdq, gain, read_noise, 1, params)
    ours = gdq.copy()
    result = find_jumps(data, ours, pdq.copy(), gain, read_noise,
                        settings_from_params(params, 1, TGROUP, gain),
                        snowball_settings_from_params(params, TGROUP))
    assert result.extended_events == official_events >= 5
    np.testing.assert_array_equal(ours, official_gdq)
    if params["sat_required_snowball"]:  # big cores are masked in the next integration
        assert np.count_nonzero(ours[1, 1] & JUMP) > 0


def test_detection_modes_follow_the_group_counts():
    s = settings_from_params(OFFICIAL, 1, TGROUP, np.ones((2, 2)))
    assert choose_mode(np.zeros((1, 10, 2, 2), np.uint8), s) == "iterative"
    assert choose_mode(np.zeros((1, 11, 2, 2), np.uint8), s) == "single_pass"
    assert choose_mode(np.zeros((100, 3, 2, 2), np.uint8), s) == "sigma_clip"
    too_few = np.zeros((1, 4, 2, 2), np.uint8)
    too_few[:, 1:3] = DNU  # two groups unusable everywhere: 2 usable < minimum_groups
    assert choose_mode(too_few, s) is None


def test_cosmic_rays_found_and_few_false_jumps():
    """>= 99.9% of CRs above 8 sigma flagged in the right group; <= 0.1% false flags."""
    rng = np.random.default_rng(21)
    nints, ngroups, ny, nx, nframes = 1, 10, 160, 160, 2
    gain, read_noise_cds = 2.0, 10.0
    rate = rng.uniform(0.0, 50.0, (ny, nx))
    tframe = TGROUP / nframes
    electrons = rng.poisson(rate * gain * tframe, (ngroups * nframes, ny, nx))
    frames = np.cumsum(electrons, axis=0) / gain
    frames += rng.normal(0.0, read_noise_cds / np.sqrt(2), frames.shape)
    data = frames.reshape(ngroups, nframes, ny, nx).mean(axis=1)[None] + 1000.0
    # one CR in a quarter of the pixels (on a grid: no neighbours hit), 8-100 sigma
    hit = np.zeros((ny, nx), bool)
    hit[::2, ::2] = True
    ys, xs = np.nonzero(hit)
    cr_group = rng.integers(1, ngroups, ys.size)
    sigma_e = np.sqrt(rate[ys, xs] * gain * TGROUP + (read_noise_cds * gain) ** 2 / nframes)
    amplitude = rng.uniform(8.0, 100.0, ys.size) * sigma_e / gain
    for y, x, g, a in zip(ys, xs, cr_group, amplitude):
        data[0, g:, y, x] += a
    gdq = np.zeros(data.shape, np.uint8)
    ones = np.ones((ny, nx), np.float32)
    params = {**OFFICIAL, "flag_4_neighbors": False}
    find_jumps(data.astype(np.float32), gdq, np.zeros((ny, nx), np.uint32), gain * ones,
               read_noise_cds * ones, settings_from_params(params, nframes, TGROUP, gain * ones))
    flagged = (gdq[0] & JUMP) != 0
    assert flagged[cr_group, ys, xs].mean() >= 0.999
    clean = ~hit
    assert flagged[:, clean].any(axis=0).mean() <= 0.001
    assert np.count_nonzero(flagged[:, ys, xs]) <= 1.002 * ys.size  # not spread to other groups


def test_neighbours_flagged_but_not_on_saturated_groups():
    ny = nx = 9
    data = np.zeros((1, 5, ny, nx), np.float32)
    data += np.arange(5, dtype=np.float32)[None, :, None, None]
    data[0, 3:, 4, 4] += 5000.0  # huge jump in group 3 at the centre
    gdq = np.zeros(data.shape, np.uint8)
    gdq[0, 3:, 4, 5] = SAT
    ones = np.ones((ny, nx), np.float32)
    params = {**OFFICIAL, "max_jump_to_flag_neighbors": 1e6}
    find_jumps(data, gdq, np.zeros((ny, nx), np.uint32), ones, 5 * ones,
               settings_from_params(params, 1, TGROUP, ones))
    jumped = (gdq[0, 3] & JUMP) != 0
    assert jumped[4, 4] and jumped[3, 4] and jumped[5, 4] and jumped[4, 3]
    assert not jumped[4, 5]  # saturated neighbour
    assert np.count_nonzero(gdq & JUMP) == 4


def _ramp(ngroups=6, shape=(8, 8)):
    rng = np.random.default_rng(1)
    data = (np.arange(ngroups, dtype=np.float32)[None, :, None, None] * 50.0
            + rng.normal(0, 5, (1, ngroups) + shape)).astype(np.float32)
    data[0, 3:, 2, 2] += 3000.0
    meta = fits.Header({"NFRAMES": 1, "TGROUP": TGROUP})
    ones = np.ones(shape, np.float32)
    refs = {"gain": Product(model="GainModel", meta=fits.Header(), arrays={"SCI": 2 * ones}),
            "readnoise": Product(model="ReadnoiseModel", meta=fits.Header(),
                                 arrays={"SCI": 7 * ones})}
    ramp = Ramp(data=data, groupdq=np.zeros(data.shape, np.uint8),
                pixeldq=np.zeros(shape, np.uint32), meta=meta)
    return ramp, refs


def test_apply_flags_in_place_and_writes_cr_rates():
    ramp, refs = _ramp()
    assert jump.apply(ramp, refs, OFFICIAL) == "COMPLETE"
    assert ramp.groupdq[0, 3, 2, 2] & JUMP
    assert np.count_nonzero(ramp.groupdq & JUMP) == 5  # the jump and its 4 neighbours
    expected = 1000.0 * 1 / (TGROUP * (6 - 1) * 64)  # neighbours are not primary CRs
    assert ramp.meta["PRIMECRS"] == pytest.approx(expected)
    assert ramp.meta["EXTNCRS"] == 0.0


def test_apply_skips_short_ramps_and_rejects_showers():
    ramp, refs = _ramp(ngroups=2)
    assert jump.apply(ramp, refs, {}) == "SKIPPED"
    ramp, refs = _ramp()
    with pytest.raises(WebbcalError, match="not implemented"):
        jump.apply(ramp, refs, {"find_showers": True})


def test_bad_gain_marks_pixel_unusable():
    ramp, refs = _ramp()
    refs["gain"].arrays["SCI"][1, 1] = np.nan
    jump.apply(ramp, refs, {})
    assert ramp.pixeldq[1, 1] == dqflags.NO_GAIN_VALUE | DNU
