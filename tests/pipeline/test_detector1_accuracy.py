"""Detector1 accuracy against the simulator's truth (issue 4 §4).

One simulated exposure per size is calibrated with the default parameters and compared
with what the simulator recorded: the true count rate, the injected cosmic rays, the
group in which each pixel saturated, and the bad-pixel mask.

Definitions used by the assertions (chosen to be honest, not convenient):

* **science pixels**: outside the 4-pixel reference border, not flagged DO_NOT_USE in the
  MASK reference (those are tested separately).
* **rate residual** statistics use science pixels with a finite rate that are not
  saturated, not hit by a cosmic ray within one pixel (the spill of a hit is itself a
  recorded deposit) and whose true rate is below 50 DN/s (sky-dominated, where the
  error model is tested without the brightest sources' flat-field-like QE errors).
* **robust sigma** = 1.4826 · MAD of (rate − truth)/ERR.
* **detectable cosmic ray**: the primary (largest) deposit of an event, arriving in
  group ≥ 1 of a pixel that is not DO_NOT_USE and is unsaturated until after the hit,
  whose largest single-group jump (a hit in frame m of an NFRAMES-frame group shows
  (NFRAMES−m)/NFRAMES of its deposit in that group and the rest one group later)
  is ≥ ``DETECTABLE_SIGMA`` × the pixel's noise on one group difference
  sqrt(RN_CDS²/NFRAMES + (truth + dark)·TGROUP/gain + 2·row-noise²). Flagged means JUMP_DET
  in the hit's group or the next one.
* **false jump**: JUMP_DET on a science pixel with no recorded deposit in its 3×3
  neighbourhood (the official neighbour flagging reaches the 4 edge neighbours).
* **near-saturation pixels**: science pixels with ≥ 2 usable groups (true saturation group
  ≥ 2 or never) within 2 pixels of a pixel that saturates during the exposure, and no
  cosmic ray within one pixel. The simulated scene has few saturating stars, so they are
  added (``add_bright_stars``: the simulator's detector model, the program's own detector).

Defaults that differ from the official pipeline and make these numbers (each switchable;
the tests below also show the official behaviour on the same data):

* saturation ``keep_two_groups``: pixels below threshold in groups 0 and 1 keep them when
  only a neighbour's grown flags took them (official: 17 % of self-saturating pixels finite);
* refpix records ``ROWNOISE``, the row noise it leaves; jump and ramp_fit ``use_row_noise``
  add it to the read noise (official ERR: robust sigma 1.03 SUB640, 1.06 FULL);
* ramp_fit ``exact_variance``: variances of the weighted fit actually made;
* jump ``leave_one_out``: a difference must also stand out from the mean of the others by
  the threshold times the noise of that comparison (official: 0.157 % false jumps FULL).

Measured (seed 1): SUB640 6 groups median +0.0030 DN/s, sigma 0.990, CR 261/261, false jumps
0.001 %; FULL 10 groups −0.0003 DN/s, 1.019, 12739/12739, 0.022 %; near saturating stars
100 % finite, 100 % within 5 %. The subarray median is limited by the reference pixels: the
offset common to all pixels of a group is known to ~0.1 DN from ~5000 reference pixels,
±0.002-0.003 DN/s in a 6-group SUB640 rate (seen over seeds: −0.0011 … +0.0033).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from scipy import ndimage

from webbcal import dqflags
from webbcal.pipeline.detector1 import run_detector1

DETECTABLE_SIGMA = 8.0
SKY_LIMIT_DN_S = 50.0
ROW_NOISE_DN = 2.5  # simulate.detector.ROW_NOISE_DN (per frame)


@dataclass
class Accuracy:
    median_residual: float
    robust_sigma: float
    n_stat: int
    cr_detectable: int
    cr_flagged: int
    false_jump_fraction: float
    near_sat: int
    near_sat_finite: float
    near_sat_within5: float
    mask_bad: int
    mask_bad_dnu: int
    seconds: float
    extra: dict = field(default_factory=dict)

    @property
    def cr_fraction(self) -> float:
        return self.cr_flagged / max(self.cr_detectable, 1)

    def table_row(self) -> str:
        return (f"median {self.median_residual:+.4f} DN/s | robust sigma {self.robust_sigma:.3f} "
                f"(n={self.n_stat}) | CR {self.cr_flagged}/{self.cr_detectable} = "
                f"{100 * self.cr_fraction:.2f}% | false jumps {100 * self.false_jump_fraction:.3f}% | "
                f"near-sat n={self.near_sat} finite {100 * self.near_sat_finite:.2f}% within5% "
                f"{100 * self.near_sat_within5:.2f}% | mask DNU {self.mask_bad_dnu}/{self.mask_bad} | "
                f"{self.seconds:.1f} s")


def _exposure_files(simdir: Path) -> tuple[Path, str]:
    uncal = sorted((simdir / "uncal").glob("*_uncal.fits"))[0]
    return uncal, uncal.name.removesuffix("_uncal.fits")


def _reference(simdir: Path, kind: str) -> np.ndarray:
    path = next((simdir / "refs").glob(f"*_{kind}.fits"))
    with fits.open(path) as hdul:
        ext = "DQ" if kind == "mask" else "SCI"
        return np.asarray(hdul[ext].data)


def measure(simdir: Path, params: dict | None = None, uncal: Path | None = None) -> tuple[Accuracy, object]:
    """Calibrate an exposure (default: the first) of a simulated program; score it against truth."""
    simdir = Path(simdir)
    if uncal is None:
        uncal, name = _exposure_files(simdir)
    else:
        name = Path(uncal).name.removesuffix("_uncal.fits")
    start = time.perf_counter()
    result = run_detector1(uncal, refs_dir=simdir / "refs", params=params)
    seconds = time.perf_counter() - start
    rate = result.rate.arrays["SCI"]
    err = result.rate.arrays["ERR"]
    dq = result.rate.arrays["DQ"]
    ramp = result.ramp
    hdr = ramp.meta
    with fits.open(simdir / "truth" / f"{name}_rate.fits") as hdul:
        truth = hdul["RATE"].data.astype(np.float64)
        satgroup = hdul["SATGROUP"].data[0].astype(int)
    crs = Table.read(simdir / "truth" / f"{name}_crs.ecsv", format="ascii.ecsv")
    ny, nx = rate.shape
    x0, y0 = hdr["SUBSTRT1"] - 1, hdr["SUBSTRT2"] - 1
    yy = np.arange(ny)[:, None] + y0
    xx = np.arange(nx)[None, :] + x0
    refpix = (yy < 4) | (yy >= 2044) | (xx < 4) | (xx >= 2044)
    mask = _cut(_reference(simdir, "mask"), hdr)
    bad = (mask & dqflags.DO_NOT_USE) != 0
    science = ~refpix & ~bad
    ngroups, nframes, tgroup = hdr["NGROUPS"], hdr["NFRAMES"], hdr["TGROUP"]

    hit = np.zeros((ny, nx), bool)
    hit[np.asarray(crs["y"]), np.asarray(crs["x"])] = True
    near_hit = ndimage.binary_dilation(hit, np.ones((3, 3), bool))
    saturates = (satgroup >= 0)

    # Residuals on the sky-dominated, clean pixels.
    stat = (science & np.isfinite(rate) & (err > 0) & ~saturates & ~near_hit
            & ((dq & dqflags.DO_NOT_USE) == 0) & (truth < SKY_LIMIT_DN_S))
    resid = rate[stat] - truth[stat]
    pulls = resid / err[stat]
    median_residual = float(np.median(resid))
    robust_sigma = float(1.4826 * np.median(np.abs(pulls - np.median(pulls))))

    # Cosmic rays.
    gain = _cut(_reference(simdir, "gain"), hdr).astype(np.float64)
    rn = _cut(_reference(simdir, "readnoise"), hdr).astype(np.float64)
    dark = _dark_rate(simdir, hdr)
    sigma_diff = np.sqrt(rn**2 / nframes + np.clip(truth + dark, 0, None) * tgroup / gain
                         + 2 * ROW_NOISE_DN**2 / nframes)
    primary = _primary_hits(crs)
    gdq = ramp.groupdq
    jump = (gdq & dqflags.GROUP["JUMP_DET"]) != 0
    g = np.asarray(primary["group"], int)
    m = np.asarray(primary["frame"], int) - g * nframes  # frame within its group (GROUPGAP 0)
    share = np.maximum((nframes - np.clip(m, 0, nframes - 1)) / nframes,
                       np.clip(m, 0, nframes - 1) / nframes)
    py, px, pi = (np.asarray(primary[c], int) for c in ("y", "x", "int"))
    sat_after = (satgroup[py, px] < 0) | (satgroup[py, px] > g + 1)
    detectable = ((g >= 1) & science[py, px] & sat_after
                  & (share * np.asarray(primary["deposit_dn"]) >= DETECTABLE_SIGMA * sigma_diff[py, px]))
    g_next = np.minimum(g + 1, ngroups - 1)
    flagged = jump[pi, g, py, px] | jump[pi, g_next, py, px]
    cr_detectable = int(detectable.sum())
    cr_flagged = int((flagged & detectable).sum())

    # False jumps.
    jump_pixels = (dq & dqflags.PIXEL["JUMP_DET"]) != 0
    false_jump_fraction = float((jump_pixels & science & ~near_hit).sum() / science.sum())

    # Pixels near saturating stars.
    near_star = ndimage.binary_dilation(saturates, np.ones((5, 5), bool))
    usable = (satgroup < 0) | (satgroup >= 2)
    near = near_star & usable & science & ~near_hit
    finite = np.isfinite(rate[near])
    within = np.abs(rate[near] - truth[near]) <= 0.05 * np.abs(truth[near])
    near_sat_only = near & saturates  # the pixels that saturate themselves (groups 2..)
    every = science & np.isfinite(rate) & (err > 0) & ((dq & dqflags.DO_NOT_USE) == 0)
    every_pulls = (rate[every] - truth[every]) / err[every]
    extra = {
        "median_all": float(np.median(rate[every] - truth[every])),
        "sigma_all": float(1.4826 * np.median(np.abs(every_pulls - np.median(every_pulls)))),
        "truth_max": float(truth.max()),
        "saturating_finite": float(np.isfinite(rate[near_sat_only]).mean()) if near_sat_only.any() else 1.0,
        "saturating_n": int(near_sat_only.sum()),
        "within_3sigma": float((np.abs(pulls) < 3).mean()),
    }
    accuracy = Accuracy(
        median_residual=median_residual, robust_sigma=robust_sigma, n_stat=int(stat.sum()),
        cr_detectable=cr_detectable, cr_flagged=cr_flagged, false_jump_fraction=false_jump_fraction,
        near_sat=int(near.sum()), near_sat_finite=float(finite.mean()) if near.any() else 1.0,
        near_sat_within5=float(within.mean()) if near.any() else 1.0,
        mask_bad=int((bad & ~refpix).sum()),
        mask_bad_dnu=int((((dq & dqflags.DO_NOT_USE) != 0) & bad & ~refpix).sum()),
        seconds=seconds, extra=extra)
    return accuracy, result


def _cut(full: np.ndarray, hdr) -> np.ndarray:
    y0, x0 = hdr["SUBSTRT2"] - 1, hdr["SUBSTRT1"] - 1
    return full[y0:y0 + hdr["SUBSIZE2"], x0:x0 + hdr["SUBSIZE1"]]


def _dark_rate(simdir: Path, hdr) -> np.ndarray:
    """Dark current (DN/s) from the dark reference's last plane."""
    path = next((simdir / "refs").glob("*_dark.fits"))
    with fits.open(path) as hdul:
        sci = hdul["SCI"].data
        head = hdul[0].header
        spacing = (head.get("NFRAMES", 1) + head.get("GROUPGAP", 0)) * hdr["TFRAME"]
        return np.clip(sci[-1].astype(np.float64) / max((sci.shape[0] - 1) * spacing, 1e-9), 0, None)


def _primary_hits(crs: Table) -> Table:
    """The largest deposit of every (integration, event): where the cosmic ray struck."""
    if len(crs) == 0:
        return crs
    order = np.lexsort((-np.asarray(crs["deposit_dn"]), np.asarray(crs["event"]), np.asarray(crs["int"])))
    ordered = crs[order]
    key = np.asarray(ordered["int"]).astype(np.int64) * 10_000_000 + np.asarray(ordered["event"])
    first = np.r_[True, key[1:] != key[:-1]]
    return ordered[first]


def add_bright_stars(simdir: Path, seed: int = 1, nstars: int = 40) -> Path:
    """Re-expose the program's first pointing with saturating stars added (the scene is faint).

    Uses the simulator's detector model and the program's own detector state (same seed,
    so the references match); the true rate and saturation groups go to truth/ under a
    new exposure name ``<name>stars``. Returns the new uncal path.
    """
    from webbcal.io.product import Product, read_product, write_product
    from webbcal.simulate.detector import ExposureSetup, make_detector_state, simulate_ramps
    from webbcal.simulate.readout import ExposureTiming, read_pattern, subarray

    uncal, name = _exposure_files(simdir)
    product = read_product(uncal)
    hdr = product.meta
    timing = ExposureTiming(read_pattern(hdr["READPATT"]), subarray(hdr["SUBARRAY"]),
                            int(hdr["NGROUPS"]), int(hdr["NINTS"]))
    rng = np.random.default_rng([seed, 4242])
    ny, nx = timing.window.shape
    rate = np.full((ny, nx), 0.3, np.float32)
    yy, xx = np.mgrid[0:ny, 0:nx]
    peaks = np.exp(rng.uniform(np.log(200.0), np.log(30_000.0), nstars))
    for peak, y, x in zip(peaks, rng.uniform(20, ny - 20, nstars), rng.uniform(20, nx - 20, nstars)):
        box = (slice(int(y) - 12, int(y) + 13), slice(int(x) - 12, int(x) + 13))
        r2 = (yy[box] - y) ** 2 + (xx[box] - x) ** 2
        rate[box] += (peak * (np.exp(-r2 / (2 * 1.1**2)) + 0.02 * np.exp(-r2 / (2 * 4.0**2)))).astype(np.float32)
    state = make_detector_state(hdr["DETECTOR"], seed)
    sci, _, truth = simulate_ramps(rate, ExposureSetup(timing), state, np.random.default_rng([seed, 4243]))
    new_name = f"{name}stars"
    out = uncal.with_name(f"{new_name}_uncal.fits")
    arrays = dict(product.arrays)
    arrays["SCI"] = sci
    write_product(Product(product.model, meta=hdr, arrays=arrays, ext_meta=product.ext_meta,
                          tables=product.tables), out)
    hdul = fits.HDUList([fits.PrimaryHDU(),
                         fits.ImageHDU(truth["rate"].astype(np.float32), name="RATE"),
                         fits.ImageHDU(truth["saturation_group"], name="SATGROUP")])
    hdul.writeto(simdir / "truth" / f"{new_name}_rate.fits", overwrite=True)
    Table(truth["cosmic_rays"]).write(simdir / "truth" / f"{new_name}_crs.ecsv", format="ascii.ecsv",
                                      overwrite=True)
    return out


# --- the tests ---------------------------------------------------------------------------

def _simulate(tmp_path_factory, label: str, preset: str, **overrides) -> Path:
    from webbcal.simulate.program import settings_for, simulate_program

    out = tmp_path_factory.mktemp(label)
    simulate_program(out, settings_for(preset, ndither=1, **overrides), seed=1)
    return out


@pytest.fixture(scope="module")
def subarray_program(tmp_path_factory) -> Path:
    """The default run's exposure: SUB640, BRIGHT2, 6 groups (one output)."""
    return _simulate(tmp_path_factory, "sub640", "demo")


def _assert_issue4(acc: Accuracy, median_limit: float) -> None:
    print(acc.table_row(), acc.extra)
    assert abs(acc.median_residual) <= median_limit
    assert 0.97 <= acc.robust_sigma <= 1.03
    assert acc.cr_detectable > 100
    assert acc.cr_fraction >= 0.999
    assert acc.false_jump_fraction <= 0.001
    assert acc.mask_bad > 0 and acc.mask_bad_dnu == acc.mask_bad


def test_subarray_accuracy(subarray_program):
    acc, result = measure(subarray_program)
    _assert_issue4(acc, 0.005)
    # the residual row noise refpix leaves is measured and recorded (webbcal extension)
    assert 0.2 < result.rate.meta["ROWNOISE"] < 2.5


def test_subarray_official_error_model_is_worse(subarray_program):
    """With the official noise model (no row noise, official variance formulas) ERR is too
    small: this is the deviation the extensions exist for."""
    official = {"jump": {"use_row_noise": False},
                "ramp_fit": {"use_row_noise": False, "exact_variance": False}}
    acc, _ = measure(subarray_program, official)
    ours, _ = measure(subarray_program)
    assert acc.robust_sigma > 1.025
    assert abs(ours.robust_sigma - 1.0) < abs(acc.robust_sigma - 1.0)


@pytest.fixture(scope="module")
def saturated_exposure(subarray_program) -> Path:
    return add_bright_stars(subarray_program)


def test_pixels_next_to_saturating_stars_get_rates(subarray_program, saturated_exposure):
    acc, _ = measure(subarray_program, uncal=saturated_exposure)
    print(acc.table_row(), acc.extra)
    assert acc.extra["saturating_n"] > 100  # pixels that saturate themselves in groups 2..
    assert acc.near_sat > 1000
    assert acc.near_sat_finite == 1.0
    assert acc.near_sat_within5 >= 0.95
    assert acc.mask_bad_dnu == acc.mask_bad


def test_official_saturation_growth_loses_those_pixels(subarray_program, saturated_exposure):
    """keep_two_groups=False is the official behaviour: most self-saturating pixels are NaN."""
    acc, _ = measure(subarray_program, {"saturation": {"keep_two_groups": False}},
                     uncal=saturated_exposure)
    assert acc.extra["saturating_finite"] < 0.6
    assert acc.near_sat_finite < 0.95


@pytest.mark.slow
def test_full_frame_accuracy(tmp_path_factory):
    """FULL, BRIGHT2, 10 groups (the official comparison set, one exposure)."""
    program = _simulate(tmp_path_factory, "full", "benchmark")
    acc, _ = measure(program)
    _assert_issue4(acc, 0.002)
    stars = add_bright_stars(program, nstars=150)
    acc, _ = measure(program, uncal=stars)
    print(acc.table_row(), acc.extra)
    assert acc.near_sat_finite == 1.0 and acc.near_sat_within5 >= 0.95


# --- the error model, on synthetic ramps with a known answer --------------------------------

def _monte_carlo_ramps(rate, *, rn=7.7, gain=2.05, nframes=2, ngroups=10, tframe=10.737,
                       npix=40_000, seed=0):
    """Poisson charge read frame by frame, frames averaged into groups, plus read noise."""
    rng = np.random.default_rng(seed)
    charge = rng.poisson(rate * gain * tframe, (ngroups * nframes, npix)).cumsum(axis=0) / gain
    groups = charge.reshape(ngroups, nframes, npix).mean(axis=1)
    groups += rng.normal(0.0, rn / np.sqrt(2 * nframes), groups.shape)
    return groups.reshape(1, ngroups, 1, npix).astype(np.float32)


@pytest.mark.parametrize("rate", [0.3, 30.0, 300.0])
def test_exact_variance_matches_the_scatter_of_slopes(rate):
    """ERR² equals the real variance of the fitted slopes (webbcal ``exact_variance``).

    The official formulas assume end-point weights for Poisson and uniform weights for
    read noise; in the sky regime of a 10-group BRIGHT2 ramp they give 5-6 % too little
    variance, on bright pixels 3 % too much.
    """
    from webbcal.steps.ramp_fit import fit_ramps

    rn, gain, nframes, tframe = 7.7, 2.05, 2, 10.737
    data = _monte_carlo_ramps(rate)
    npix = data.shape[-1]
    ratios = {}
    for exact in (True, False):
        res = fit_ramps(data, np.zeros(data.shape, np.uint8), np.zeros((1, npix), np.uint32),
                        np.full((1, npix), rn, np.float32), np.full((1, npix), gain, np.float32),
                        nframes=nframes, tgroup=nframes * tframe, tframe=tframe, exact_variance=exact)
        ratios[exact] = float(res.slope.var() / np.mean(res.err.astype(np.float64) ** 2))
        assert abs(float(res.slope.mean()) / rate - 1) < 0.01
    print(rate, ratios)
    assert abs(ratios[True] - 1) < 0.025
    if rate != 30.0:
        assert abs(ratios[False] - 1) > 0.025  # the official model is off here


def test_residual_row_noise_is_measured():
    """A known row noise per group is recovered through sky, sources and bad pixels."""
    from webbcal.steps._row_noise import residual_row_noise

    rng = np.random.default_rng(3)
    nints, ngroups, ny, nx = 1, 6, 500, 400
    scene = np.full((ny, nx), 3.0) + 0.002 * np.arange(ny)[:, None]
    scene[rng.integers(0, ny, 300), rng.integers(0, nx, 300)] += rng.uniform(50, 5000, 300)
    g = np.arange(ngroups)[:, None, None]
    for row_sigma in (0.0, 0.8, 2.0):
        data = (scene[None] * g + rng.normal(0, 4.0, (ngroups, ny, nx))
                + rng.normal(0, row_sigma, (ngroups, ny, 1)) if row_sigma
                else scene[None] * g + rng.normal(0, 4.0, (ngroups, ny, nx)))
        data = data[None].astype(np.float32)
        pixeldq = np.zeros((ny, nx), np.uint32)
        pixeldq[:4] = dqflags.REFERENCE_PIXEL
        pixeldq[rng.integers(0, ny, 500), rng.integers(0, nx, 500)] |= dqflags.DO_NOT_USE
        groupdq = np.zeros(data.shape, np.uint8)
        measured = residual_row_noise(data, groupdq, pixeldq)
        assert measured == pytest.approx(row_sigma, abs=0.05 + 0.05 * row_sigma), row_sigma


def test_leave_one_out_jump_statistic_on_pure_noise_and_injected_jumps():
    """10-group BRIGHT2 sky ramps: false jumps on pure noise, and 8 σ jumps all found.

    The official statistic flags 0.12 % of pure-noise pixels at its 4 σ threshold (above
    issue 4's 0.1 % on its own); with webbcal's ``leave_one_out`` test required as well,
    about a fifth of that.
    """
    from webbcal.steps import jump
    from webbcal.steps.containers import Ramp

    rng = np.random.default_rng(11)
    ny, nx, ngroups, nframes, rn, gain, tframe = 300, 300, 10, 2, 7.7, 2.05, 10.737
    ramps = _monte_carlo_ramps(0.32, rn=rn, gain=gain, ngroups=ngroups, npix=ny * nx, seed=12)
    data = np.rint(ramps.reshape(1, ngroups, ny, nx) + 1000.0).astype(np.float32)
    # 8 σ (of a group difference) jumps in every 30th pixel, in a random group >= 1
    sigma_diff = np.sqrt(rn**2 / nframes + 0.32 * 2 * tframe / gain)
    hit_y, hit_x = np.unravel_index(np.arange(0, ny * nx, 30), (ny, nx))
    hit_g = rng.integers(1, ngroups, hit_y.size)
    for y, x, g in zip(hit_y, hit_x, hit_g):
        data[0, g:, y, x] += 8.0 * sigma_diff
    clean = np.ones((ny, nx), bool)
    clean[np.clip(hit_y[:, None] + [-1, 0, 1, 0, 0], 0, ny - 1),
          np.clip(hit_x[:, None] + [0, 0, 0, -1, 1], 0, nx - 1)] = False

    class _Ref:
        def __init__(self, value):
            self.arrays, self.meta = {"SCI": np.full((ny, nx), value, np.float32)}, {}

    refs = {"gain": _Ref(gain), "readnoise": _Ref(rn)}
    header = fits.Header({"NFRAMES": nframes, "TGROUP": nframes * tframe})
    found = {}
    for leave_one_out in (True, False):
        ramp = Ramp(data.copy(), np.zeros(data.shape, np.uint8), np.zeros((ny, nx), np.uint32),
                    header.copy())
        params = {**jump.SPEC.defaults(), "leave_one_out": leave_one_out, "flag_4_neighbors": False}
        assert jump.apply(ramp, refs, params) == "COMPLETE"
        flags = (ramp.groupdq[0] & dqflags.JUMP_DET) != 0
        found[leave_one_out] = (float(flags[hit_g, hit_y, hit_x].mean()),
                                float(flags.any(axis=0)[clean].mean()))
    print(found)
    assert found[True][0] >= 0.999
    assert found[True][1] < 0.0004
    assert found[False][1] > 0.0009  # the official statistic on the same noise
