"""Two-point-difference jump detection (stcal ``twopoint_difference``), by blocks of rows.

Per pixel the first differences of the groups (in electrons, unusable groups NaN) are
compared with their median, pooled over all integrations. Three detection modes, chosen
for the whole exposure as stcal does:

* iterative (few differences): clip the largest |difference|, take the median, flag the
  single most significant difference above the threshold for the number of usable
  differences, mask it and repeat on the pixels that had one;
* single pass (>= ``min_diffs_single_pass`` differences): flag every difference more
  than ``rejection_threshold`` sigma from the median;
* sigma clipping (many integrations): astropy ``sigma_clip`` across integrations.

The arithmetic follows stcal's dtypes (float32 data, float64 differences, a float32
rounding of the iterated medians) so that the same pixels are flagged.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from webbcal import dqflags
from webbcal.steps._ramp_stats import nan_median_axis0

DNU = dqflags.DO_NOT_USE
SAT = dqflags.SATURATED
JUMP = dqflags.JUMP_DET


@dataclass(frozen=True)
class JumpSettings:
    """Detection parameters, already converted to electrons and group counts."""

    nframes: int
    rejection_threshold: float = 4.0
    three_group_rejection_threshold: float = 6.0
    four_group_rejection_threshold: float = 5.0
    flag_4_neighbors: bool = True
    max_jump_to_flag_neighbors: float = 1000.0
    min_jump_to_flag_neighbors: float = 10.0
    after_jump_flag_e1: float = 0.0
    after_jump_flag_n1: int = 0
    after_jump_flag_e2: float = 0.0
    after_jump_flag_n2: int = 0
    minimum_groups: int = 3
    minimum_sigclip_groups: int = 100
    only_use_ints: bool = True
    min_diffs_single_pass: int = 10
    leave_one_out: bool = False  # webbcal: see :func:`_leave_one_out_ratio`


def clipped_median(abs_diffs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """stcal ``calc_med_first_diffs`` over axis 0: (median, number of usable differences).

    >= 4 usable: drop the largest (every copy of it), median of the rest; 3: median;
    2: the smaller; < 2: NaN.
    """
    usable = np.count_nonzero(~np.isnan(abs_diffs), axis=0)
    with np.errstate(invalid="ignore"):
        largest = np.fmax.reduce(abs_diffs, axis=0)
        clipped = np.where((usable >= 4) & (abs_diffs == largest), np.nan, abs_diffs)
        median = nan_median_axis0(clipped)
        two = usable == 2
        median[two] = np.fmin.reduce(clipped, axis=0)[two]
    median[usable < 2] = np.nan
    return median, usable


def _sigma(median: np.ndarray, read_noise_2: np.ndarray, nframes: int) -> np.ndarray:
    """Noise of a difference (electrons): Poisson from the median plus CDS read noise."""
    sigma = np.sqrt(np.abs(median) + read_noise_2.astype(np.float64) / float(nframes))
    sigma[sigma == 0.0] = np.nan  # zero read noise: never flag
    return sigma


def _iterative_ratio(abs_diffs, read_noise_2, s: JumpSettings, round_median: bool):
    """Significance of every difference and whether the pixel has a jump (``get_cr_locs``)."""
    median, usable = clipped_median(abs_diffs)
    if round_median:  # stcal stores the iterated medians in a float32 array
        median = median.astype(np.float32).astype(np.float64)
    sigma = _sigma(median, read_noise_2, s.nframes)
    excess = (abs_diffs - median).astype(np.float32)
    with np.errstate(invalid="ignore"):
        ratio = np.abs(excess) / sigma
        largest = np.fmax.reduce(ratio, axis=0)
        has_jump = (((usable >= 4) & (largest > s.rejection_threshold))
                    | ((usable == 3) & (largest > s.four_group_rejection_threshold))
                    | ((usable == 2) & (largest > s.three_group_rejection_threshold)))
    return has_jump, ratio, largest


def _leave_one_out_ratio(diffs, read_noise_2, s: JumpSettings):
    """Significance of each difference against the mean of the *other* differences (webbcal).

    The official statistic compares |d| with the median of the |d| left after dropping the
    largest: that centre is biased low and, from 8 values, scatters by 0.4 σ, so pure-noise
    10-group ramps get 0.12 % false jumps at "4 σ". Here difference k is compared with the
    mean c_k of the n other usable differences, and d_k − c_k is divided by its own noise:
    the read noise of first differences telescopes (adjacent ones share a group), giving
    σ_r²·((1 + 1/n)² + 1/n²), and the Poisson part, independent from one difference to the
    next, σ_p²·(1 + 1/n), with σ_r² = RN²/NFRAMES and σ_p² = max(c_k, 0) electrons. Like
    the official, the excess is max(|d_k| − |c_k|, d_k − c_k): cosmic rays only add charge.
    A second jump in the others only lowers the significance of the first; the iteration
    flags one difference per pass (the most significant) and excludes it from the next.
    A pixel is flagged only where the official statistic also passes its threshold, so
    there are never more false jumps than the official finds; on 10-group ramps that cuts
    them from 0.12 % to 0.03 % of pure-noise pixels, with 8 σ jumps still found (99.9 %).
    """
    usable = np.count_nonzero(~np.isnan(diffs), axis=0)
    total = np.nansum(diffs, axis=0)
    n = (usable - 1).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        centre = (total - diffs) / n
        inv = 1.0 / n
        read_var = read_noise_2.astype(np.float64) / float(s.nframes)
        var = (read_var * ((1.0 + inv) ** 2 + inv * inv)
               + np.maximum(centre, 0.0) * (1.0 + inv))
        # as the official folds |d|: upward jumps count fully, a negative difference only by
        # how far |d| exceeds the centre (so |d - c| is not a two-sided test around c > 0)
        ratio = np.maximum(np.abs(diffs) - np.abs(centre), diffs - centre) / np.sqrt(var)
        ratio[np.isnan(diffs) | (n[None] < 1) | ~(var > 0)] = np.nan
        largest = np.fmax.reduce(ratio, axis=0)
        has_jump = (((usable >= 4) & (largest > s.rejection_threshold))
                    | ((usable == 3) & (largest > s.four_group_rejection_threshold))
                    | ((usable == 2) & (largest > s.three_group_rejection_threshold)))
    # one difference per pixel and pass: the most significant; with two usable differences
    # both are equally significant, and the larger one is the jump
    score = np.where(np.isnan(ratio), -np.inf, ratio)
    score = np.where(usable[None] == 2, np.where(np.isnan(diffs), -np.inf, diffs), score)
    pick = np.zeros(diffs.shape, dtype=bool)
    pick[np.argmax(score, axis=0), np.arange(diffs.shape[1])] = True
    return has_jump, pick


def iterative_jumps(diffs: np.ndarray, read_noise_2: np.ndarray, s: JumpSettings) -> np.ndarray:
    """Jumps found one at a time per pixel; ``diffs`` (ndiffs_pooled, npix) -> flags (bool)."""
    if s.leave_one_out:
        return _iterative_leave_one_out(diffs, read_noise_2, s)
    abs_diffs = np.abs(diffs)
    flags = np.zeros(diffs.shape, dtype=bool)
    active = np.arange(diffs.shape[1])
    sub = abs_diffs
    rn2 = read_noise_2
    round_median = False
    for _ in range(diffs.shape[0]):
        has_jump, ratio, largest = _iterative_ratio(sub, rn2, s, round_median)
        with np.errstate(invalid="ignore"):
            new = (ratio == largest) & has_jump
        hit = np.any(new, axis=0)
        if not hit.any():
            break
        active, new = active[hit], new[:, hit]
        sub = sub[:, hit]
        flags[:, active] |= new
        sub[new] = np.nan
        rn2 = rn2[hit]
        round_median = True
    return flags


def _iterative_leave_one_out(diffs, read_noise_2, s: JumpSettings) -> np.ndarray:
    flags = np.zeros(diffs.shape, dtype=bool)
    active = np.arange(diffs.shape[1])
    sub = diffs.copy()
    rn2 = read_noise_2
    for _ in range(diffs.shape[0]):
        has_jump, pick = _leave_one_out_ratio(sub, rn2, s)
        # ...and the official statistic must agree: never more false jumps than it makes
        official, _, _ = _iterative_ratio(np.abs(sub), rn2, s, False)
        has_jump &= official
        if not has_jump.any():
            break
        active, new = active[has_jump], pick[:, has_jump]
        sub = sub[:, has_jump]
        flags[:, active] |= new
        sub[new] = np.nan
        rn2 = rn2[has_jump]
    return flags


def _first_differences(data_e: np.ndarray, groupdq: np.ndarray) -> np.ndarray:
    """float64 first differences (nints, ngroups-1, npix); DNU/SAT groups give NaN.

    ``data_e`` (float32 electrons, a scratch array) gets NaN in those groups.
    """
    data_e[(groupdq & (DNU | SAT)) != 0] = np.nan
    return np.diff(data_e, axis=1).astype(np.float64)


@dataclass
class BlockDetection:
    """Per-block results needed after all blocks are done (neighbours, after-jump)."""

    neighbour_candidates: np.ndarray   # (nints, ndiffs, npix): significance within limits
    after_jump_1: np.ndarray | None    # (nints, ndiffs, npix): excess >= E1
    after_jump_2: np.ndarray | None


def detect_block(data_e: np.ndarray, groupdq: np.ndarray, read_noise_2: np.ndarray,
                 s: JumpSettings, mode: str) -> BlockDetection:
    """Flag primary jumps in one block (``groupdq`` (nints, ngroups, npix) updated in place).

    ``data_e`` is a scratch float32 array in electrons (modified).
    """
    nints, ngroups, npix = groupdq.shape
    diffs = _first_differences(data_e, groupdq)
    finite = np.isfinite(diffs)
    median = nan_median_axis0(diffs.reshape(nints * (ngroups - 1), npix))
    sigma = _sigma(median, read_noise_2, s.nframes)
    with np.errstate(invalid="ignore"):
        significance = np.abs(diffs - median) / sigma
    if mode == "sigma_clip":
        from astropy.stats import sigma_clip  # only for >= 100 integrations

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            axis = 0 if s.only_use_ints else (0, 1)
            clipped = sigma_clip(diffs, sigma=s.rejection_threshold, axis=axis, masked=True)
        usable = (groupdq[:, 1:] & (SAT | DNU)) == 0
        found = np.ma.getmaskarray(clipped) & finite & usable
    elif mode == "single_pass":
        with np.errstate(invalid="ignore"):
            found = (significance > s.rejection_threshold) & finite
    else:
        found = iterative_jumps(diffs.reshape(nints * (ngroups - 1), npix), read_noise_2, s)
        found = found.reshape(nints, ngroups - 1, npix)
    groupdq[:, 1:] |= found.astype(np.uint8) * np.uint8(JUMP)

    with np.errstate(invalid="ignore"):
        candidates = ((significance < s.max_jump_to_flag_neighbors)
                      & (significance > s.min_jump_to_flag_neighbors))
        excess = diffs - median
        after1 = excess >= s.after_jump_flag_e1 if s.after_jump_flag_n1 > 0 else None
        after2 = excess >= s.after_jump_flag_e2 if s.after_jump_flag_n2 > 0 else None
    return BlockDetection(candidates, after1, after2)


def flag_neighbours(groupdq: np.ndarray, candidates: np.ndarray) -> None:
    """Flag the 4 neighbours of significant jumps (not SAT/DNU groups); (ngroups, ny, nx)."""
    source = candidates & ((groupdq[1:] & JUMP) != 0)
    grown = source.copy()
    grown[:, 1:] |= source[:, :-1]
    grown[:, :-1] |= source[:, 1:]
    grown[:, :, 1:] |= source[:, :, :-1]
    grown[:, :, :-1] |= source[:, :, 1:]
    grown &= (groupdq[1:] & (SAT | DNU)) == 0
    groupdq[1:] |= grown.astype(np.uint8) * np.uint8(JUMP)


def flag_after_jumps(groupdq: np.ndarray, big1: np.ndarray | None, n1: int,
                     big2: np.ndarray | None, n2: int) -> None:
    """Flag the ``n`` groups after jumps whose excess passed the after-jump thresholds."""
    jumped = (groupdq[1:] & JUMP) != 0
    add = np.zeros(groupdq.shape, dtype=bool)
    for big, count in ((big1, n1), (big2, n2)):
        if big is None or count <= 0:
            continue
        seed = np.zeros(groupdq.shape, dtype=bool)
        seed[1:] = big & jumped
        spread = seed.copy()
        for shift in range(1, count + 1):
            if shift >= len(seed):
                break
            spread[shift:] |= seed[:-shift]
        add |= spread
    add &= (groupdq & (SAT | DNU)) == 0
    groupdq |= add.astype(np.uint8) * np.uint8(JUMP)


def remove_unusable_jumps(groupdq: np.ndarray) -> None:
    """JUMP_DET is meaningless on groups already DO_NOT_USE or SATURATED: clear it."""
    redundant = ((groupdq & JUMP) != 0) & ((groupdq & (DNU | SAT)) != 0)
    groupdq[redundant] ^= np.uint8(JUMP)
