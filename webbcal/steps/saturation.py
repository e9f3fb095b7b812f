"""saturation: flag saturated and A/D-floor groups (official ``stcal.saturation``).

Thresholds are raw DN (bias included), so the step runs before superbias. Per integration:

1. forward pass: a group at or above the threshold is SATURATED together with every later
   group; groups at or below 0 DN get AD_FLOOR | DO_NOT_USE; saturation is grown by
   ``n_pix_grow_sat`` pixels (square box) to cover charge spilling;
2. backward pass (frame-averaged groups): a group whose average is already above the
   threshold diluted by the averaging, followed by a saturated group, probably saturated
   in its last frames: DO_NOT_USE (grown likewise);
3. group-2 test: a group 2 that jumps by more than the remaining headroom allows, followed
   by a saturated group 3, saturated part-way: DO_NOT_USE. The superbias is removed from
   group 1 before extrapolating it, so a large bias does not fake saturation;
4. ZEROFRAME values that saturate (grown) or are <= 0 are set to 0 ("unusable");
5. (webbcal) pixels left with fewer than two usable groups although their own groups 0
   and 1 are below threshold get those two groups back (see below).

Pixels flagged NO_SAT_CHECK in the reference, or with a NaN threshold, never saturate.

Default that differs from the official (``keep_two_groups``, False = official): growing
the flags of a star's core onto its neighbours in the group where the core saturates (and
the grown DO_NOT_USE of the backward test) leaves many pixels that are themselves below
threshold in groups 0 and 1 with group 0 alone, which ramp_fit then discards
(``suppress_one_group``): the official loses 77 % of the pixels saturating in groups 2-5.
Such pixels get groups 0 and 1 back (only those two; later groups stay flagged, so the
spill the growth guards against cannot reach their rate beyond group 1).
"""

from __future__ import annotations

import logging

import numpy as np

from webbcal import dqflags
from webbcal.steps.base import Param, StepSpec
from webbcal.steps.reference_arrays import reference_plane
from webbcal.steps.containers import Ramp

log = logging.getLogger("webbcal.steps.saturation")

ATOD_LIMIT = 65535.0  # 16-bit A/D converter

SPEC = StepSpec(
    name="saturation", stage="detector1", status_key="S_SATURA",
    reftypes=("saturation", "superbias"),
    optional_reftypes=("superbias",),  # only for the bias-aware group-2 test
    params=(
        Param("n_pix_grow_sat", int, 1,
              "number of layers of adjacent pixels also flagged around a saturated pixel",
              minimum=0),
        Param("use_readpatt", bool, True,
              "use the frames-per-group read pattern to catch saturation inside averaged groups"),
        Param("keep_two_groups", bool, True,
              "webbcal extension: a pixel below its own threshold in groups 0 and 1 keeps "
              "those two groups even when flags grown from a saturating neighbour (or the "
              "neighbour's partial-saturation test) would take them, so it still gets a rate "
              "(the official leaves it one group and ramp_fit discards it: 77% of pixels "
              "saturating in groups 2-5 come out NaN). False = official behaviour"),
    ),
    doc="Flag saturated (and A/D floor) groups from the SATURATION reference thresholds.",
)


def group_frames(ngroups: int, nframes: int) -> list[list[int]]:
    """1-based frame numbers averaged into each group, as the official step builds them.

    GROUPGAP is deliberately not included (the official pattern ignores dropped frames).
    """
    return [[g * nframes + k + 1 for k in range(nframes)] for g in range(ngroups)]


def grow_mask(mask: np.ndarray, npix: int) -> np.ndarray:
    """Binary dilation of a 2-D mask by a (2 npix + 1)² square box, clipped at the edges.

    A square box is separable: dilating rows then columns by shifted ORs is exact and far
    cheaper than a generic dilation.
    """
    if npix <= 0 or not mask.any():
        return mask
    rows = mask.copy()
    for shift in range(1, npix + 1):
        rows[:, shift:] |= mask[:, :-shift]
        rows[:, :-shift] |= mask[:, shift:]
    grown = rows.copy()
    for shift in range(1, npix + 1):
        grown[shift:] |= rows[:-shift]
        grown[:-shift] |= rows[shift:]
    return grown


def effective_thresholds(threshold: np.ndarray, threshold_dq: np.ndarray
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(thresholds, no-check mask, reference DQ) with NaN thresholds made NO_SAT_CHECK.

    No-check pixels get a threshold above the A/D limit so that they never saturate.
    """
    threshold = np.array(threshold, dtype=np.float32)
    ref_dq = np.array(threshold_dq, dtype=np.uint32)
    nan = np.isnan(threshold)
    ref_dq[nan] |= dqflags.NO_SAT_CHECK
    no_check = ((ref_dq & dqflags.NO_SAT_CHECK) != 0) | nan
    threshold[no_check] = ATOD_LIMIT + 1
    return threshold, no_check, ref_dq


def flag_saturated(data: np.ndarray, groupdq: np.ndarray, pixeldq: np.ndarray,
                   threshold: np.ndarray, threshold_dq: np.ndarray, *,
                   n_pix_grow_sat: int = 1, frames: list[list[int]] | None = None,
                   bias: np.ndarray | None = None,
                   zeroframe: np.ndarray | None = None, keep_two_groups: bool = False) -> None:
    """Flag saturation in ``groupdq`` and ``pixeldq`` (and zero bad ``zeroframe`` values).

    data (nints, ngroups, ny, nx) raw DN; threshold/threshold_dq/bias (ny, nx); ``frames``
    the read pattern from :func:`group_frames` or None to skip the read-pattern tests.
    Everything is updated in place. Full-plane work is limited to the threshold and A/D
    floor comparisons; the other tests only concern pixels next to a saturated group and
    are evaluated on those.
    """
    nints, ngroups = data.shape[:2]
    thresh, no_check, ref_dq = effective_thresholds(threshold, threshold_dq)
    sat = np.uint8(dqflags.SATURATED)
    dnu = np.uint8(dqflags.DO_NOT_USE)
    low_flag = np.uint8(dqflags.AD_FLOOR | dqflags.DO_NOT_USE)
    if bias is not None:  # native byte order: it is indexed pixel by pixel below
        bias = np.asarray(bias)
        bias = bias.astype(bias.dtype.newbyteorder("="), copy=False)
    dilutions = _dilution_factors(frames, ngroups)
    ever_saturated = np.empty(data.shape[2:], dtype=bool)
    hit = np.empty(data.shape[2:], dtype=bool)
    flags = np.empty(data.shape[2:], dtype=np.uint8)

    for i in range(nints):
        before = groupdq[i, :2].copy() if keep_two_groups and ngroups >= 2 else None
        ever_saturated[...] = False
        for g in range(ngroups):
            plane, gdq = data[i, g], groupdq[i, g]
            np.greater_equal(plane, thresh, out=hit)
            ever_saturated |= hit
            np.multiply(ever_saturated.view(np.uint8), sat, out=flags)
            gdq |= flags
            np.less_equal(plane, 0, out=hit)
            np.multiply(hit.view(np.uint8), low_flag, out=flags)
            gdq |= flags
            if n_pix_grow_sat > 0:
                grow_flags(gdq, np.flatnonzero(np.bitwise_and(gdq, sat, out=flags)),
                           n_pix_grow_sat, sat)

        for g in range(ngroups - 2, -1, -1):
            if g not in dilutions:
                continue
            gdq, next_gdq = groupdq[i, g], groupdq[i, g + 1]
            # only where the next group is saturated and this one is not flagged yet
            candidates = np.flatnonzero(_has_flag(next_gdq, sat) & ~_has_flag(gdq, sat | dnu))
            # float64 like the official comparison; no-check pixels keep the undiluted threshold
            limit = thresh.ravel()[candidates].astype(np.float64)
            limit = np.where(no_check.ravel()[candidates], limit, limit * dilutions[g])
            partial = candidates[data[i, g].ravel()[candidates] >= limit]
            grow_flags(gdq, partial, n_pix_grow_sat, dnu)

        if frames is not None and ngroups > 2:
            _flag_group2_saturation(data[i], groupdq[i], thresh,
                                    0.0 if bias is None else bias, frames)

        if before is not None:
            _keep_two_groups(data[i], groupdq[i], before, thresh, dilutions)

        if zeroframe is not None:
            _zero_bad_zeroframe(zeroframe[i], thresh, n_pix_grow_sat)

    pixeldq |= ref_dq.astype(pixeldq.dtype, copy=False)


def grow_flags(plane: np.ndarray, pixels: np.ndarray, npix: int, flag) -> None:
    """OR ``flag`` into ``plane`` (ny, nx) on the (2 npix + 1)² box around each flat index.

    Equivalent to ``plane |= grow_mask(mask, npix) * flag``, but the cost is in the
    number of flagged pixels (a few stars), not in the size of the plane.
    """
    if pixels.size == 0:
        return
    ny, nx = plane.shape
    if npix <= 0:
        plane[np.divmod(pixels, nx)] |= flag
        return
    if pixels.size * (2 * npix + 1) ** 2 > plane.size // 4:  # dense: shifted ORs are cheaper
        mask = np.zeros(plane.shape, dtype=bool)
        mask.ravel()[pixels] = True
        plane |= grow_mask(mask, npix).view(np.uint8) * np.uint8(flag)
        return
    ys, xs = np.divmod(pixels, nx)
    offsets = np.arange(-npix, npix + 1)
    rows = np.clip(ys[:, None] + offsets[None, :], 0, ny - 1)  # clipping repeats an edge
    cols = np.clip(xs[:, None] + offsets[None, :], 0, nx - 1)  # pixel: harmless for an OR
    plane[rows[:, :, None], cols[:, None, :]] |= flag


def _has_flag(dq: np.ndarray, flag) -> np.ndarray:
    return np.bitwise_and(dq, np.uint8(flag)) != 0


def _dilution_factors(frames, ngroups) -> dict[int, float]:
    """Per group (0..G-2) mean(frames)/last(frame), only where averaging dilutes (< 1)."""
    if frames is None:
        return {}
    factors = {g: np.mean(frames[g]) / frames[g][-1] for g in range(ngroups - 1)}
    return {g: f for g, f in factors.items() if f != 1}


def _flag_group2_saturation(data, groupdq, thresh, bias, frames) -> None:
    """DO_NOT_USE on group index 1 where it saturated part-way (one integration).

    Only pixels whose group 2 is saturated and group 1 is not can qualify: the arithmetic
    is done on those.
    """
    pix = np.flatnonzero(_has_flag(groupdq[2], dqflags.SATURATED)
                         & ~_has_flag(groupdq[1], dqflags.SATURATED))
    if pix.size == 0:
        return
    g0, g1 = data[0].ravel()[pix], data[1].ravel()[pix]
    limit = thresh.ravel()[pix]
    offset = np.ravel(bias)[pix] if np.ndim(bias) else bias
    first = g0 - offset
    would_not_saturate = (first / np.mean(frames[0])) * frames[2][-1] + offset < limit
    big_jump = (g1 - g0) > (limit - g0) / len(frames[1])
    flagged = np.divmod(pix[would_not_saturate & big_jump], groupdq.shape[-1])
    groupdq[1][flagged] |= np.uint8(dqflags.DO_NOT_USE)


def _keep_two_groups(data, groupdq, before, thresh, dilutions) -> None:
    """Give groups 0 and 1 back to pixels that only lost them to a neighbour's flags.

    A pixel qualifies when the averages of its own groups 0 and 1 are below its threshold,
    they carried no flag before this step, and this step left it fewer than two usable
    groups. The partial-saturation (dilution) test is overridden too: it compares the
    bias-included threshold with a bias-included average, so it fires below saturation,
    and a group 1 whose last frame did saturate costs a few percent of a bright pixel's
    rate rather than the whole pixel. Only the
    SATURATED / DO_NOT_USE flags of groups 0 and 1 are removed; later groups stay flagged.
    """
    flags = np.uint8(dqflags.SATURATED | dqflags.DO_NOT_USE)
    # fewer than two usable groups implies group 0 or group 1 unusable: test only those
    pix = np.flatnonzero(np.bitwise_and(groupdq[0] | groupdq[1], flags) != 0)
    if pix.size == 0:
        return
    q = groupdq.reshape(groupdq.shape[0], -1)[:, pix]
    short = ((q & flags) == 0).sum(axis=0) < 2
    d0, d1, limit = data[0].ravel()[pix], data[1].ravel()[pix], thresh.ravel()[pix]
    own_clean = ((d0 < limit) & (d1 < limit) & (d0 > 0) & (d1 > 0)
                 & (before[0].ravel()[pix] == 0) & (before[1].ravel()[pix] == 0))
    restore = np.divmod(pix[short & own_clean], groupdq.shape[-1])
    keep = np.uint8(0xFF ^ flags)
    groupdq[0][restore] &= keep
    groupdq[1][restore] &= keep


def _zero_bad_zeroframe(plane, thresh, n_pix_grow_sat) -> None:
    bad = grow_mask(plane >= thresh, n_pix_grow_sat) | (plane <= 0)
    plane[bad] = 0.0


def apply(ramp: Ramp, refs: dict, params: dict) -> str:
    sat_ref = refs.get("saturation")
    if sat_ref is None:
        log.warning("no SATURATION reference: saturation skipped")
        return "SKIPPED"
    threshold = reference_plane(sat_ref, "SCI", ramp.data.shape[-2:], "saturation")
    threshold_dq = sat_ref.arrays.get("DQ")
    if threshold_dq is None:
        threshold_dq = np.zeros(threshold.shape, dtype=np.uint32)
    frames = None
    if params.get("use_readpatt", True):
        frames = group_frames(ramp.data.shape[1], int(ramp.meta.get("NFRAMES", 1)))
    bias_ref = refs.get("superbias")
    bias = None if bias_ref is None else np.asarray(bias_ref.arrays["SCI"])
    zeroframe = ramp.zeroframe if ramp.meta.get("ZEROFRAM", False) else None
    flag_saturated(ramp.data, ramp.groupdq, ramp.pixeldq, threshold, threshold_dq,
                   n_pix_grow_sat=int(params.get("n_pix_grow_sat", 1)), frames=frames,
                   bias=bias, zeroframe=zeroframe,
                   keep_two_groups=bool(params.get("keep_two_groups", True)))
    planes = ramp.groupdq.reshape((-1,) + ramp.groupdq.shape[-2:])
    n_sat = int(np.count_nonzero(np.bitwise_or.reduce(planes, axis=0) & dqflags.SATURATED))
    log.info("%d pixels saturated in at least one group", n_sat)
    return "COMPLETE"
