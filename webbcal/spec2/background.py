"""Scaling a WFSS background reference to a grism exposure: pure array functions.

jwst 3.0 ``background/background_sub_wfss.py`` (spec image2_image3_wfss.md §4.3):

* :func:`source_mask` -- True where a pixel may be used as background, False inside any
  source's grism box (floor of the lower, ceil of the upper corner, inclusive, clipped);
* :func:`enough_background` -- more than ``min_fraction`` of the image must be background,
  non-zero in the reference and without DO_NOT_USE;
* :func:`fit_scale` -- the iterative, error-weighted least-squares scale
  ``f = Σ(sci·bkg/var) / Σ(bkg²/var)`` with ``p``/``100-p`` percentile rejection of the
  residual ``sci - f·bkg`` after each iteration, and the final ``f`` on what survives.

The official code repeats the work on NaN-masked full images; here the usable pixels are
compressed into 1-D arrays once and every iteration shrinks them, which gives the same
numbers in a fraction of the time, with one deliberate difference: a pixel whose SCI is
NaN is left out of both sums. The official code drops it from the numerator only
(``nansum`` of ``sci·bkg/var``) but keeps ``bkg²/var`` in the denominator when its ERR is
finite, which biases the scale low by the weight share of such pixels. In a rate file
SCI and ERR are NaN together, so both give the same factor there (measured: 5e-11).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from webbcal import dqflags


@dataclass
class ScaleFit:
    """What :func:`fit_scale` found."""

    factor: float
    iterations: int
    used: np.ndarray  # bool image: pixels that entered the final factor


def source_mask(shape: tuple[int, int], boxes) -> np.ndarray:
    """Background mask of an image: False inside every box, True elsewhere.

    ``boxes``: objects with ``xmin, xmax, ymin, ymax`` (0-based detector pixels, inclusive,
    possibly fractional or off the image).
    """
    ny, nx = shape
    mask = np.ones(shape, dtype=bool)
    for box in boxes:
        x_lo = max(int(math.floor(box.xmin)), 0)
        x_hi = min(int(math.ceil(box.xmax)) + 1, nx)
        y_lo = max(int(math.floor(box.ymin)), 0)
        y_hi = min(int(math.ceil(box.ymax)) + 1, ny)
        if x_hi > x_lo and y_hi > y_lo:
            mask[y_lo:y_hi, x_lo:x_hi] = False
    return mask


def enough_background(dq: np.ndarray, mask: np.ndarray, bkg: np.ndarray,
                      min_fraction: float = 0.05) -> bool:
    """More than ``min_fraction`` of the pixels are background, non-zero in ``bkg`` and usable."""
    usable = mask & (bkg != 0) & ((dq & np.uint32(dqflags.DO_NOT_USE)) == 0)
    return int(np.count_nonzero(usable)) > int(min_fraction * dq.size)


def fit_scale(sci: np.ndarray, bkg: np.ndarray, var: np.ndarray, excluded: np.ndarray | None = None,
              *, percent: float = 1.0, maxiter: int = 5, rms_stop: float = 0.0,
              dispaxis: int | None = None) -> ScaleFit:
    """Scale of ``bkg`` that best matches ``sci`` (weights 1/``var``), outliers rejected.

    ``excluded``: True where a pixel must not be used (sources). ``rms_stop``: stop early
    when the RMS of the residual's median profile along the dispersion improves by less
    than this fraction (needs ``dispaxis`` 1 or 2). A pixel with NaN or zero variance
    never enters the sums; one with NaN variance still takes part in the percentiles, as
    in the official code; one with NaN SCI takes part in nothing (see the module doc).
    Returns NaN as the factor when no pixel is usable.
    """
    if rms_stop > 0 and dispaxis not in (1, 2):
        raise ValueError(f"dispersion axis {dispaxis!r}: must be 1 or 2 when rms_stop is used")
    sci = np.asarray(sci)
    bkg = np.asarray(bkg)
    var = np.asarray(var)
    usable = np.isfinite(sci) & np.isfinite(bkg) & (var != 0)
    if excluded is not None:
        usable &= ~excluded
    index = np.flatnonzero(usable)
    s = sci.ravel()[index].astype(np.float64)
    b = bkg.ravel()[index].astype(np.float64)
    v = var.ravel()[index].astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        w = np.where(np.isfinite(v), 1.0 / v, 0.0)

    def weighted_factor() -> float:
        with np.errstate(divide="ignore", invalid="ignore"):
            return float(np.dot(s * b, w) / np.dot(b * b, w))

    iteration, last_rms = 0, math.inf
    while iteration < maxiter and s.size:
        factor = weighted_factor()
        residual = s - factor * b
        if rms_stop > 0:
            rms = _profile_rms(residual, index, sci.shape, dispaxis)
            if (last_rms - rms) / last_rms < rms_stop:
                break
            last_rms = rms
        iteration += 1
        finite = np.isfinite(residual)
        if not finite.any():
            break
        lo, hi = np.percentile(residual[finite], (percent, 100.0 - percent))
        keep = (residual >= lo) & (residual <= hi)
        s, b, w, index = s[keep], b[keep], w[keep], index[keep]
    factor = weighted_factor() if s.size else math.nan
    used = np.zeros(sci.shape, dtype=bool)
    used.ravel()[index[w > 0]] = True
    return ScaleFit(factor=factor, iterations=iteration, used=used)


def _profile_rms(residual: np.ndarray, index: np.ndarray, shape, dispaxis: int) -> float:
    """RMS of the median residual profile along the dispersion (the official stop test)."""
    import warnings

    image = np.full(shape, np.nan)
    image.ravel()[index] = residual
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
        profile = np.nanmedian(image, axis=dispaxis - 1)
        return float(np.sqrt(np.nanmean(profile**2)))
