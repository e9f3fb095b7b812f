"""Property-based tests (hypothesis) of DQ propagation through every step that combines DQ.

Each test draws the shape and the mix of flags, and a seed from which numpy builds the
arrays (fast, and hypothesis still shrinks towards small shapes and few flags). Two kinds
of check:

* agreement with the official function on the same random arrays, where the algorithm is
  the same (stcal saturation, linearity and ramp_fit; stdatamodels DQ_DEF expansion; jwst
  charge migration, ``match_nans_and_flags`` and flat fielding; stcal drizzle weights;
  astropy bit masks);
* rules that must hold whatever the inputs: no input bit is ever cleared (except JUMP_DET on
  unusable groups, which jump removes on purpose, as stcal does), the output DQ is exactly
  the OR the spec gives, a pixel is NaN iff DO_NOT_USE after the NaN/DQ rule, saturation
  growth only flags pixels next to a saturated one, the values of unusable pixels never
  reach a resampled image.
"""

from __future__ import annotations

from types import SimpleNamespace
from unittest import mock

import numpy as np
import pytest
from astropy.io import fits
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from webbcal import dqflags
from webbcal.steps import dark_current, linearity, saturation, superbias
from webbcal.steps._ramp_jump import JumpSettings, flag_neighbours
from webbcal.steps.containers import Ramp
from webbcal.steps.dq_init import initialize_dq
from webbcal.steps.image_model import CalImage, match_nans_and_flags
from webbcal.steps.jump import find_jumps
from webbcal.refs.load import expand_dq

official_flags = pytest.importorskip("stdatamodels.jwst.datamodels").dqflags

DNU, SAT, JUMP = dqflags.DO_NOT_USE, dqflags.SATURATED, dqflags.JUMP_DET
# Flag names webbcal and stdatamodels agree on (see test_flag_names_match_stdatamodels).
SHARED_NAMES = sorted(n for n, b in dqflags.PIXEL.items() if official_flags.pixel.get(n) == b)
GROUP_BITS = np.array(sorted(b for b in dqflags.GROUP.values() if b), dtype=np.uint8)
PIXEL_BITS = np.array(sorted(b for b in dqflags.PIXEL.values() if b), dtype=np.uint32)

# Modest example counts: the whole file runs in well under a minute on one core.
PROPERTY = settings(max_examples=30, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])
FEW = settings(PROPERTY, max_examples=15)

seeds = st.integers(0, 2**32 - 1)
fractions = st.sampled_from([0.0, 0.05, 0.3])


def random_flags(rng, shape, bits, fraction) -> np.ndarray:
    """Each element gets each of ``bits`` with probability ``fraction``."""
    out = np.zeros(shape, dtype=bits.dtype)
    for bit in bits:
        out[rng.random(shape) < fraction] |= bit
    return out


def assert_no_bit_cleared(before, after, what, allowed=0):
    lost = np.asarray(before) & ~np.asarray(after) & ~np.asarray(allowed, dtype=np.asarray(before).dtype)
    assert not lost.any(), f"{what}: bits cleared at {np.argwhere(lost)[:5].tolist()}"


@st.composite
def ramp_shapes(draw, max_ints=2, max_groups=6, min_side=1, max_side=7):
    return (draw(st.integers(1, max_ints)), draw(st.integers(2, max_groups)),
            draw(st.integers(min_side, max_side)), draw(st.integers(min_side, max_side)))


# ------------------------------------------------------------------------- dq_init, DQ_DEF


@given(shape=ramp_shapes(), seed=seeds, fraction=fractions, with_user=st.booleans())
@PROPERTY
def test_dq_init_is_exactly_the_or_of_mask_and_user_dq(shape, seed, fraction, with_user):
    rng = np.random.default_rng(seed)
    gdq = random_flags(rng, shape, GROUP_BITS, fraction)
    pdq = random_flags(rng, shape[2:], PIXEL_BITS, fraction)
    mask = random_flags(rng, shape[2:], PIXEL_BITS, 0.2)
    user = random_flags(rng, shape[2:], PIXEL_BITS, 0.1) if with_user else None
    got_gdq, got_pdq = gdq.copy(), pdq.copy()
    initialize_dq(got_gdq, got_pdq, mask, user)
    combined = mask | (0 if user is None else user)
    np.testing.assert_array_equal(got_pdq, pdq | combined)
    np.testing.assert_array_equal(got_gdq, gdq | (combined & DNU).astype(np.uint8))


dq_def_rows = st.lists(st.tuples(st.integers(1, 2**31 - 1) | st.sampled_from([1, 2, 4, 8, 16, 1 << 30]),
                                 st.sampled_from(SHARED_NAMES) | st.sampled_from(["BOGUS", "hot "])),
                       max_size=6)


@given(rows=dq_def_rows, seed=seeds)
@PROPERTY
def test_dq_def_expansion_matches_stdatamodels(rows, seed):
    from stdatamodels.dynamicdq import dynamic_mask

    rng = np.random.default_rng(seed)
    dq = rng.integers(0, 2**32, (4, 5), dtype=np.uint64).astype(np.uint32)
    dq &= rng.choice(np.array([0, 0xF, 0xFFFFFFFF], np.uint32), dq.shape)
    table = np.array(rows, dtype=[("VALUE", np.uint32), ("NAME", "U20")])
    expected = dynamic_mask(SimpleNamespace(dq=dq.copy(), dq_def=table), official_flags.pixel)
    if not rows:  # no DQ_DEF: the file's DQ is already standard
        expected = dq
    with mock.patch("webbcal.refs.load.log"):  # unknown names warn; not what is tested
        got = expand_dq(dq.copy(), table)
    np.testing.assert_array_equal(got, expected)
    if rows:
        named = np.uint32(0)
        for _, name in rows:
            named |= np.uint32(dqflags.PIXEL.get(name.strip(), 0))
        assert not (got & ~named).any(), "a flag that DQ_DEF does not name appeared"


def test_flag_names_match_stdatamodels():
    assert dqflags.PIXEL == dict(official_flags.pixel)


# ------------------------------------------------------------------------- saturation


def saturation_case(rng, shape, fraction):
    """Raw ramps around the thresholds, with NaN / NO_SAT_CHECK thresholds and input flags."""
    nints, ngroups, ny, nx = shape
    thresh = rng.uniform(20000, 60000, (ny, nx)).astype(np.float32)
    start = rng.uniform(-100, 40000, (nints, 1, ny, nx))
    slope = rng.uniform(0, 15000, (nints, 1, ny, nx))
    ramp = start + slope * np.arange(ngroups)[None, :, None, None]
    data = np.minimum(ramp, 65535).astype(np.float32)  # raw DN: 16 bits
    data[rng.random(data.shape) < 0.03] = 0.0  # A/D floor
    thresh[rng.random(thresh.shape) < 0.1] = np.nan
    sat_dq = random_flags(rng, (ny, nx), np.array([DNU, dqflags.NO_SAT_CHECK, dqflags.HOT], np.uint32), 0.1)
    gdq = random_flags(rng, shape, GROUP_BITS, fraction)
    pdq = random_flags(rng, (ny, nx), PIXEL_BITS, fraction)
    bias = rng.uniform(5000, 15000, (ny, nx)).astype(np.float32)
    zeroframe = (data[:, 0] * rng.uniform(0.5, 1.0, (nints, ny, nx))).astype(np.float32)
    return data, gdq, pdq, thresh, sat_dq, bias, zeroframe


# stcal's growth fails on images narrower than its box (2n+1): no detector is that small
@given(shape=ramp_shapes(min_side=5), seed=seeds, fraction=fractions, grow=st.integers(0, 2),
       nframes=st.sampled_from([None, 1, 2, 4]), use_bias=st.booleans())
@PROPERTY
def test_saturation_matches_stcal(shape, seed, fraction, grow, nframes, use_bias):
    from stcal.saturation.saturation import flag_saturated_pixels

    rng = np.random.default_rng(seed)
    data, gdq, pdq, thresh, sat_dq, bias, zf = saturation_case(rng, shape, fraction)
    frames = None if nframes is None else saturation.group_frames(shape[1], nframes)
    bias = bias if use_bias else None
    exp_gdq, exp_pdq, exp_zf = flag_saturated_pixels(
        data.copy(), gdq.copy(), pdq.copy(), thresh.copy(), sat_dq.copy(), 65535.0,
        official_flags.pixel, n_pix_grow_sat=grow, zframe=zf.copy(), read_pattern=frames,
        bias=None if bias is None else bias.copy())
    got_gdq, got_pdq, got_zf = gdq.copy(), pdq.copy(), zf.copy()
    saturation.flag_saturated(data, got_gdq, got_pdq, thresh, sat_dq, n_pix_grow_sat=grow,
                              frames=frames, bias=bias, zeroframe=got_zf, keep_two_groups=False)
    np.testing.assert_array_equal(got_gdq, exp_gdq)
    np.testing.assert_array_equal(got_pdq, exp_pdq)
    np.testing.assert_array_equal(got_zf, exp_zf)


def _box(mask2d: np.ndarray, n: int) -> np.ndarray:
    """Reference dilation by a (2n+1)² box, written the slow obvious way."""
    out = np.zeros_like(mask2d)
    for y, x in np.argwhere(mask2d):
        out[max(0, y - n):y + n + 1, max(0, x - n):x + n + 1] = True
    return out


@given(shape=ramp_shapes(max_groups=5, max_side=8), seed=seeds, fraction=fractions,
       grow=st.integers(0, 2), keep_two=st.booleans())
@PROPERTY
def test_saturation_growth_only_flags_neighbours_of_saturated_pixels(shape, seed, fraction, grow, keep_two):
    rng = np.random.default_rng(seed)
    data, gdq, pdq, thresh, sat_dq, _, _ = saturation_case(rng, shape, fraction)
    got_gdq, got_pdq = gdq.copy(), pdq.copy()
    saturation.flag_saturated(data, got_gdq, got_pdq, thresh, sat_dq, n_pix_grow_sat=grow,
                              frames=None, keep_two_groups=keep_two)

    assert_no_bit_cleared(gdq, got_gdq, "GROUPDQ")
    no_check = np.isnan(thresh) | ((sat_dq & dqflags.NO_SAT_CHECK) != 0)
    expected_pdq = pdq | sat_dq | np.where(np.isnan(thresh), np.uint32(dqflags.NO_SAT_CHECK), 0).astype(np.uint32)
    np.testing.assert_array_equal(got_pdq, expected_pdq)

    at_or_above = (data >= np.where(no_check, np.inf, thresh)) & ~no_check
    ever = np.logical_or.accumulate(at_or_above, axis=1)  # saturated stays saturated
    source = ever | ((gdq & SAT) != 0)                    # own saturation or given flags
    new_sat = ((got_gdq & SAT) != 0) & ((gdq & SAT) == 0)
    for i in range(shape[0]):
        for g in range(shape[1]):
            grown = _box(source[i, g], grow)
            stray = new_sat[i, g] & ~grown
            assert not stray.any(), f"SATURATED at {np.argwhere(stray).tolist()} (int {i}, group {g}) " \
                                    "has no saturated pixel within n_pix_grow_sat"
            if not keep_two or g >= 2:  # keep_two_groups may give groups 0 and 1 back
                missing = grown & ((got_gdq[i, g] & SAT) == 0)
                assert not missing.any(), f"growth missed {np.argwhere(missing).tolist()}"
    floor = data <= 0  # never given back by keep_two_groups (it needs positive groups)
    assert np.all(got_gdq[floor] & dqflags.AD_FLOOR) and np.all(got_gdq[floor] & DNU)


# ------------------------------------------------------------------------- superbias, dark, linearity


@given(shape=ramp_shapes(), seed=seeds, fraction=fractions)
@PROPERTY
def test_superbias_and_dark_or_their_dq_into_pixeldq(shape, seed, fraction):
    rng = np.random.default_rng(seed)
    nints, ngroups, ny, nx = shape
    pdq = random_flags(rng, (ny, nx), PIXEL_BITS, fraction)
    bias_dq = random_flags(rng, (ny, nx), PIXEL_BITS, 0.1)
    bias = rng.normal(10000, 100, (ny, nx)).astype(np.float32)
    bias[rng.random(bias.shape) < 0.1] = np.nan
    got = pdq.copy()
    superbias.subtract_bias(np.zeros(shape, np.float32), got, bias, bias_dq)
    np.testing.assert_array_equal(got, pdq | bias_dq)

    dark_dq = random_flags(rng, (ny, nx), PIXEL_BITS, 0.1)
    dark = SimpleNamespace(path="dark.fits", meta=fits.Header({"NFRAMES": 1, "GROUPGAP": 0}),
                           arrays={"SCI": rng.normal(0, 1, (ngroups + 1, ny, nx)).astype(np.float32),
                                   "DQ": dark_dq})
    gdq = random_flags(rng, shape, GROUP_BITS, fraction)
    ramp = Ramp(np.zeros(shape, np.float32), gdq.copy(), pdq.copy(),
                fits.Header({"NFRAMES": 1, "GROUPGAP": 0}))
    assert dark_current.apply(ramp, {"dark": dark}, {}) == "COMPLETE"
    np.testing.assert_array_equal(ramp.pixeldq, pdq | dark_dq)
    np.testing.assert_array_equal(ramp.groupdq, gdq)


@given(shape=ramp_shapes(), seed=seeds, fraction=fractions)
@PROPERTY
def test_linearity_pixeldq_matches_stcal(shape, seed, fraction):
    from stcal.linearity.linearity import linearity_correction

    rng = np.random.default_rng(seed)
    nints, ngroups, ny, nx = shape
    data = rng.uniform(0, 40000, shape).astype(np.float32)
    gdq = random_flags(rng, shape, GROUP_BITS, fraction)
    pdq = random_flags(rng, (ny, nx), PIXEL_BITS, fraction)
    coeffs = np.stack([rng.normal(0, 1, (ny, nx)), rng.normal(1, 0.01, (ny, nx)),
                       rng.normal(0, 1e-6, (ny, nx))]).astype(np.float32)
    coeffs[:, rng.random((ny, nx)) < 0.1] = np.nan
    coeffs[1, rng.random((ny, nx)) < 0.1] = 0.0
    lin_dq = random_flags(rng, (ny, nx), np.array([DNU, dqflags.NO_LIN_CORR, dqflags.DEAD], np.uint32), 0.15)

    _, exp_pdq, _ = linearity_correction(data.copy(), gdq.copy(), pdq.copy(), coeffs.copy(),
                                         lin_dq.copy(), official_flags.pixel)
    got_gdq = gdq.copy()
    got_pdq = linearity.correct_linearity(data.copy(), got_gdq, pdq.copy(), coeffs, lin_dq)
    np.testing.assert_array_equal(got_pdq, exp_pdq)
    np.testing.assert_array_equal(got_gdq, gdq)
    bad = np.isnan(coeffs).any(axis=0) | (coeffs[1] == 0)
    np.testing.assert_array_equal(got_pdq, pdq | lin_dq | np.where(bad, np.uint32(dqflags.NO_LIN_CORR), 0))


@given(shape=ramp_shapes(min_side=1), seed=seeds, fraction=fractions)
@FEW  # datamodels are slow to build
def test_charge_migration_matches_jwst(shape, seed, fraction):
    from jwst.charge_migration.charge_migration import charge_migration as official
    from stdatamodels.jwst.datamodels import RampModel

    from webbcal.steps.charge_migration import flag_charge_migration

    rng = np.random.default_rng(seed)
    shape = (shape[0], shape[1] + 1, *shape[2:])  # the step needs 3 groups
    data = np.cumsum(rng.uniform(0, 9000, shape), axis=1).astype(np.float32)
    gdq = random_flags(rng, shape, GROUP_BITS, fraction)
    gdq[rng.random(shape) < 0.1] = DNU  # exactly DO_NOT_USE: never a trigger
    with RampModel(data=data.copy(), groupdq=gdq.copy()) as model:
        expected = official(model, 25000.0).groupdq
    got = gdq.copy()
    flag_charge_migration(data, got, 25000.0)
    np.testing.assert_array_equal(got, expected)
    assert_no_bit_cleared(gdq, got, "GROUPDQ")


# ------------------------------------------------------------------------- jump


@given(seed=seeds, fraction=fractions, ngroups=st.integers(3, 8), nints=st.integers(1, 2))
@FEW
def test_jump_only_adds_jump_flags_and_never_on_unusable_groups(seed, fraction, ngroups, nints):
    rng = np.random.default_rng(seed)
    ny, nx = 6, 7
    shape = (nints, ngroups, ny, nx)
    data = (rng.normal(0, 5, shape) + 30.0 * np.arange(ngroups)[None, :, None, None]).astype(np.float32)
    hits = rng.random(shape) < 0.05
    data += np.cumsum(hits * rng.uniform(200, 5000, shape), axis=1).astype(np.float32)
    gdq = random_flags(rng, shape, GROUP_BITS, fraction)
    pdq = random_flags(rng, (ny, nx), PIXEL_BITS, fraction)
    gain = rng.uniform(1.5, 2.5, (ny, nx)).astype(np.float32)
    gain[rng.random(gain.shape) < 0.1] = rng.choice([0.0, -1.0, np.nan])
    read_noise = rng.uniform(5, 10, (ny, nx)).astype(np.float32)
    got_gdq, got_pdq = gdq.copy(), pdq.copy()
    find_jumps(data, got_gdq, got_pdq, gain, read_noise,
               JumpSettings(nframes=1, leave_one_out=bool(seed % 2)))

    unusable = (got_gdq & (DNU | SAT)) != 0
    assert not np.any(unusable & ((got_gdq & JUMP) != 0)), "JUMP_DET left on a DO_NOT_USE/SATURATED group"
    not_jump = np.uint8(0xFF ^ JUMP)
    np.testing.assert_array_equal(got_gdq & not_jump, gdq & not_jump)  # only JUMP_DET changes
    assert_no_bit_cleared(gdq, got_gdq, "GROUPDQ", allowed=np.where(unusable, JUMP, 0).astype(np.uint8))
    bad_gain = ~(gain > 0)
    expected = pdq | np.where(bad_gain, np.uint32(dqflags.NO_GAIN_VALUE | DNU), 0).astype(np.uint32)
    np.testing.assert_array_equal(got_pdq, expected)


@given(seed=seeds, fraction=fractions, ngroups=st.integers(2, 5))
@PROPERTY
def test_neighbour_flags_go_exactly_to_the_four_neighbours_of_significant_jumps(seed, fraction, ngroups):
    rng = np.random.default_rng(seed)
    ny, nx = 5, 6
    gdq = random_flags(rng, (ngroups, ny, nx), GROUP_BITS, fraction)
    gdq[1:][rng.random((ngroups - 1, ny, nx)) < 0.15] |= JUMP
    candidates = rng.random((ngroups - 1, ny, nx)) < 0.5
    got = gdq.copy()
    flag_neighbours(got, candidates)

    source = candidates & ((gdq[1:] & JUMP) != 0)
    expected = np.zeros_like(source)
    for g, y, x in np.argwhere(source):
        for dy, dx in ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1)):
            if 0 <= y + dy < ny and 0 <= x + dx < nx:
                expected[g, y + dy, x + dx] = True
    expected &= (gdq[1:] & (DNU | SAT)) == 0
    np.testing.assert_array_equal(got[0], gdq[0])
    np.testing.assert_array_equal(got[1:], gdq[1:] | expected.astype(np.uint8) * np.uint8(JUMP))


# ------------------------------------------------------------------------- ramp_fit


@given(seed=seeds, nints=st.integers(1, 2), ngroups=st.integers(1, 6), fraction=st.sampled_from([0.05, 0.2, 0.5]),
       suppress=st.booleans())
@FEW
def test_rate_dq_and_nan_pattern_match_stcal(seed, nints, ngroups, fraction, suppress):
    from tests.steps.test_ramp_fit import TGROUP, stcal_fit

    from webbcal.steps.ramp_fit import fit_ramps

    rng = np.random.default_rng(seed)
    ny, nx = 5, 6
    shape = (nints, ngroups, ny, nx)
    data = (500 + 20 * TGROUP * np.arange(ngroups)[None, :, None, None]
            + rng.normal(0, 5, shape)).astype(np.float32)
    gdq = random_flags(rng, shape, np.array([DNU, JUMP, dqflags.PERSISTENCE], np.uint8), fraction)
    sat_from = rng.integers(0, ngroups + 3, (nints, 1, ny, nx))  # saturated from that group on
    gdq[np.arange(ngroups)[None, :, None, None] >= sat_from] |= SAT
    pdq = random_flags(rng, (ny, nx), np.array([DNU, dqflags.HOT, dqflags.DEAD], np.uint32), fraction)
    read_noise = rng.uniform(6, 12, (ny, nx)).astype(np.float32)
    gain = rng.uniform(1.5, 2.5, (ny, nx)).astype(np.float32)
    gain[rng.random(gain.shape) < 0.05] = 0.0
    if np.all(gdq[:, 0] & SAT):
        gdq[0, 0, 0, 0] = 0  # all saturated in group 0 means no product: tested elsewhere

    ours = fit_ramps(data, gdq, pdq, read_noise, gain, nframes=1, tgroup=TGROUP, tframe=TGROUP,
                     suppress_one_group=suppress)
    image, cube = stcal_fit(data, gdq, pdq, read_noise, gain, nframes=1, suppress=suppress)
    np.testing.assert_array_equal(ours.dq, image["dq"])
    np.testing.assert_array_equal(ours.int_dq, cube["dq"])
    np.testing.assert_array_equal(np.isnan(ours.slope), np.isnan(image["slope"]))
    np.testing.assert_array_equal(np.isnan(ours.int_slope), np.isnan(cube["slope"]))

    assert_no_bit_cleared(np.broadcast_to(pdq, ours.int_dq.shape), ours.int_dq, "rateints DQ")
    assert_no_bit_cleared(pdq, ours.dq, "rate DQ")
    any_jump = np.any(gdq & JUMP, axis=(0, 1)) | ((pdq & JUMP) != 0)
    np.testing.assert_array_equal((ours.dq & JUMP) != 0, any_jump)
    assert np.all(ours.dq[np.isnan(ours.slope)] & (DNU | SAT)), "a NaN rate without DO_NOT_USE/SATURATED"


@given(shape=ramp_shapes(max_groups=8), seed=seeds, first=st.none() | st.integers(-1, 8),
       last=st.none() | st.integers(0, 9))
@PROPERTY
def test_group_range_only_adds_do_not_use_outside_the_range(shape, seed, first, last):
    from webbcal.steps.ramp_fit import mask_group_range

    rng = np.random.default_rng(seed)
    gdq = random_flags(rng, shape, GROUP_BITS, 0.2)
    got = gdq.copy()
    with mock.patch("webbcal.steps.ramp_fit.log"):
        mask_group_range(got, first, last)
    ngroups = shape[1]
    lo = 0 if first is None else max(first, 0)
    hi = ngroups - 1 if last is None else last
    outside = np.zeros(ngroups, bool)
    if lo < hi:  # jwst ignores an empty or inverted range
        outside[:lo] = True
        outside[hi + 1:] = True
    expected = gdq | np.where(outside[None, :, None, None], np.uint8(DNU), np.uint8(0))
    np.testing.assert_array_equal(got, expected)


# ------------------------------------------------------------------------- Image2: the NaN/DQ rule


def random_image(rng, shape, fraction):
    planes = {name: rng.uniform(0.1, 10, shape).astype(np.float32)
              for name in ("data", "err", "var_poisson", "var_rnoise", "var_flat")}
    for array in planes.values():
        array[rng.random(shape) < fraction / 3] = np.nan
    dq = random_flags(rng, shape, PIXEL_BITS, fraction)
    return planes, dq


def assert_nan_iff_do_not_use(image: CalImage, what: str):
    dnu = (image.dq & DNU) != 0
    for name in ("data", "err", "var_poisson", "var_rnoise", "var_flat"):
        array = getattr(image, name)
        if array is not None:
            np.testing.assert_array_equal(np.isnan(array), dnu, err_msg=f"{what}: {name} NaN vs DO_NOT_USE")


@given(seed=seeds, ny=st.integers(1, 6), nx=st.integers(1, 6), fraction=fractions)
@PROPERTY
def test_match_nans_and_flags_matches_jwst(seed, ny, nx, fraction):
    from jwst.lib.pipe_utils import match_nans_and_flags as official
    from stdatamodels.jwst.datamodels import ImageModel

    rng = np.random.default_rng(seed)
    planes, dq = random_image(rng, (ny, nx), fraction)
    image = CalImage(dq=dq.copy(), meta=fits.Header(), **{k: v.copy() for k, v in planes.items()})
    match_nans_and_flags(image)
    with ImageModel(dq=dq.copy(), **{k: v.copy() for k, v in planes.items()}) as model:
        official(model)
        np.testing.assert_array_equal(image.dq, model.dq)
        for name in planes:
            np.testing.assert_array_equal(getattr(image, name), getattr(model, name))
    assert_no_bit_cleared(dq, image.dq, "DQ")
    assert_nan_iff_do_not_use(image, "match_nans_and_flags")


@given(seed=seeds, ny=st.integers(1, 6), nx=st.integers(1, 6), fraction=fractions)
@FEW  # datamodels are slow to build
def test_flat_field_matches_jwst_and_keeps_nan_iff_do_not_use(seed, ny, nx, fraction):
    from jwst.flatfield.flat_field import apply_flat_field
    from stdatamodels.jwst.datamodels import FlatModel, ImageModel

    from webbcal.steps.flat_field import apply_flat

    rng = np.random.default_rng(seed)
    planes, dq = random_image(rng, (ny, nx), fraction)
    del planes["var_flat"]  # made by the step
    flat = rng.uniform(0.8, 1.2, (ny, nx)).astype(np.float32)
    flat[rng.random(flat.shape) < 0.1] = np.nan
    flat[rng.random(flat.shape) < 0.1] = 0.0
    flat_err = rng.uniform(0, 0.01, (ny, nx)).astype(np.float32)
    flat_dq = random_flags(rng, (ny, nx), np.array([DNU, dqflags.NO_FLAT_FIELD, dqflags.LOW_QE], np.uint32), 0.1)

    image = CalImage(dq=dq.copy(), meta=fits.Header(), **{k: v.copy() for k, v in planes.items()})
    apply_flat(image, flat.copy(), flat_err.copy(), flat_dq.copy())
    with ImageModel(dq=dq.copy(), **{k: v.copy() for k, v in planes.items()}) as science, \
            FlatModel(data=flat.copy(), err=flat_err.copy(), dq=flat_dq.copy()) as flat_model:
        for model in (science, flat_model):
            model.meta.instrument.name = "NIRCAM"
            model.meta.subarray.xstart = model.meta.subarray.ystart = 1
            model.meta.subarray.xsize, model.meta.subarray.ysize = nx, ny
        apply_flat_field(science, flat_model)
        np.testing.assert_array_equal(image.dq, science.dq)
        np.testing.assert_array_equal(np.isnan(image.data), np.isnan(science.data))
        np.testing.assert_allclose(image.data, science.data, rtol=1e-6)
    bad_flat = np.isnan(flat) | (flat == 0)
    assert np.all(image.dq[bad_flat] & (DNU | dqflags.NO_FLAT_FIELD) == DNU | dqflags.NO_FLAT_FIELD)
    assert_no_bit_cleared(dq | flat_dq, image.dq, "DQ")
    assert_nan_iff_do_not_use(image, "flat_field")


@given(seed=seeds, ny=st.integers(1, 6), nx=st.integers(1, 6), fraction=fractions,
       conversion=st.sampled_from([0.5, 2.0, 1e-30]))
@PROPERTY
def test_photom_keeps_nan_iff_do_not_use(seed, ny, nx, fraction, conversion):
    from webbcal.steps import photom

    rng = np.random.default_rng(seed)
    planes, dq = random_image(rng, (ny, nx), fraction)
    image = CalImage(dq=dq.copy(), meta=fits.Header({"FILTER": "F200W", "PUPIL": "CLEAR"}),
                     **{k: v.copy() for k, v in planes.items()})
    table = np.array([("F200W", "CLEAR", conversion)],
                     dtype=[("filter", "U8"), ("pupil", "U8"), ("photmjsr", np.float32)])
    ref = SimpleNamespace(path="photom.fits", meta=fits.Header(), tables={"PHOTOM": table}, arrays={})
    assert photom.apply(image, {"photom": ref}, {"apply_time_correction": False}) == "COMPLETE"
    assert_no_bit_cleared(dq, image.dq, "DQ")
    assert_nan_iff_do_not_use(image, "photom")


def test_photom_nan_conversion_is_a_clean_error():
    from webbcal.errors import WebbcalError
    from webbcal.steps import photom

    image = CalImage(data=np.ones((2, 2), np.float32), err=np.ones((2, 2), np.float32),
                     dq=np.zeros((2, 2), np.uint32), meta=fits.Header({"FILTER": "F200W", "PUPIL": "CLEAR"}))
    table = np.array([("F200W", "CLEAR", np.nan)], dtype=[("filter", "U8"), ("pupil", "U8"), ("photmjsr", np.float32)])
    ref = SimpleNamespace(path="photom.fits", meta=fits.Header(), tables={"PHOTOM": table}, arrays={})
    with pytest.raises(WebbcalError, match="photom.fits"):
        photom.apply(image, {"photom": ref}, {"apply_time_correction": False})


# ------------------------------------------------------------------------- resample, outlier_detection


@given(seed=seeds, ny=st.integers(1, 6), nx=st.integers(1, 6), fraction=fractions)
@PROPERTY
def test_drizzle_weights_match_stcal(seed, ny, nx, fraction):
    from stcal.resample.utils import build_driz_weight

    from webbcal.resample.drizzler import ResampleInput, weight_map

    rng = np.random.default_rng(seed)
    planes, dq = random_image(rng, (ny, nx), fraction)
    planes["var_rnoise"][rng.random((ny, nx)) < 0.1] = 0.0
    item = ResampleInput(data=planes["data"], dq=dq, wcs=None, meta={}, var_rnoise=planes["var_rnoise"])
    model = {"data": planes["data"], "dq": dq, "var_rnoise": planes["var_rnoise"]}
    for weight_type in ("ivm", None):
        expected = build_driz_weight(model, weight_type, good_bits="~DO_NOT_USE+NON_SCIENCE",
                                     flag_name_map=official_flags.pixel)
        got = weight_map(item, weight_type)
        np.testing.assert_array_equal(got, expected)
        bad = (dq & (DNU | dqflags.NON_SCIENCE)) != 0
        assert not got[bad].any(), "a DO_NOT_USE / NON_SCIENCE pixel has drizzle weight"


@pytest.fixture(scope="module")
def nrca1_distortion():
    from webbcal.wcs.apertures import aperture
    from webbcal.wcs.distortion import detector_to_v2v3_model

    return detector_to_v2v3_model(aperture("NRCA1"))


@given(seed=seeds, fraction=st.sampled_from([0.01, 0.2]),
       garbage=st.sampled_from([np.nan, 0.0, 1e30, -1e30]), bit=st.sampled_from([DNU, dqflags.NON_SCIENCE]))
@settings(PROPERTY, max_examples=8)
def test_resample_ignores_the_values_of_unusable_pixels(nrca1_distortion, seed, fraction, garbage, bit):
    """Whatever SCI and the variances hold at DO_NOT_USE / NON_SCIENCE pixels, the i2d
    (SCI, WHT, CON, ERR, variances, and the DQ of contributing pixels) is the same."""
    from tests.steps.test_resample import make_image, params

    from webbcal.steps import resample

    image = make_image(nrca1_distortion, seed=seed % 1000)
    rng = np.random.default_rng(seed)
    image.dq[rng.random(image.shape) < fraction] |= np.uint32(bit)
    unusable = (image.dq & (DNU | dqflags.NON_SCIENCE)) != 0
    options = params(propagate_dq=True)
    clean = resample.resample_images([image], options)
    for name in ("data", "err", "var_poisson", "var_rnoise", "var_flat"):
        getattr(image, name)[unusable] = garbage
    dirty = resample.resample_images([image], options)
    for name, array in clean.arrays.items():
        np.testing.assert_array_equal(dirty.arrays[name], array, err_msg=f"i2d {name}")
    assert {"SCI", "WHT", "DQ"} <= set(clean.arrays)


# astropy takes either names or integers in one expression, not a mix
_names = [n for n in SHARED_NAMES if dqflags.PIXEL[n]]
_bit_lists = (st.lists(st.sampled_from(_names), min_size=1, max_size=4, unique=True)
              | st.lists(st.sampled_from(["1", "4", "512", "2048"]), min_size=1, max_size=3, unique=True))
expressions = (st.builds(lambda invert, bits: ("~" if invert else "") + "+".join(bits), st.booleans(), _bit_lists)
               | st.sampled_from([None, "0", "~DO_NOT_USE", "~DO_NOT_USE+NON_SCIENCE"]))


@given(expression=expressions, seed=seeds)
@PROPERTY
def test_good_bits_expressions_match_astropy(expression, seed):
    from astropy.nddata.bitmask import bitfield_to_boolean_mask

    from webbcal.image3.bits import good_mask

    rng = np.random.default_rng(seed)
    dq = random_flags(rng, (5, 6), PIXEL_BITS, 0.1)
    data = rng.normal(size=dq.shape)
    data[rng.random(dq.shape) < 0.1] = np.nan
    expected = bitfield_to_boolean_mask(dq, expression, good_mask_value=True, dtype=bool,
                                        flag_name_map=official_flags.pixel) & np.isfinite(data)
    np.testing.assert_array_equal(good_mask(dq, data, expression), expected)


@given(seed=seeds, fraction=fractions)
@PROPERTY
def test_outlier_flags_are_or_ed_and_made_nan(seed, fraction):
    from webbcal.steps import outlier_detection

    rng = np.random.default_rng(seed)
    ny, nx = 8, 9
    planes, dq = random_image(rng, (ny, nx), fraction)
    median = np.full((ny, nx), 5.0)
    planes["data"][rng.random((ny, nx)) < 0.1] += 500.0  # cosmic rays
    image = CalImage(dq=dq.copy(), meta=fits.Header(), **{k: v.copy() for k, v in planes.items()})
    params = outlier_detection.SPEC.defaults()
    # the blot is the identity here: the median is already on the exposure's pixels
    with mock.patch.object(outlier_detection, "blot_image", lambda m, *a, **k: m):
        count = outlier_detection.flag_exposure(image, median, None, params)

    from webbcal.image3.blot import flag_outliers
    outliers = flag_outliers(planes["data"], median, planes["err"], float(params["backg"]))
    flags = np.uint32(DNU | dqflags.OUTLIER)
    nan_any = np.any([np.isnan(v) for v in planes.values()], axis=0)
    expected = dq | np.where(outliers, flags, 0).astype(np.uint32) | np.where(nan_any, np.uint32(DNU), 0)
    np.testing.assert_array_equal(image.dq, expected.astype(np.uint32))
    assert count == int((outliers & ((dq & flags) != flags)).sum())
    assert_nan_iff_do_not_use(image, "outlier_detection")
