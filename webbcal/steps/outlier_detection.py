"""outlier_detection (imaging): flag pixels that disagree with the median of all exposures.

Spec image2_image3_wfss.md §3.5: each exposure group is drizzled alone onto the common
grid (no context, no variance); pixels of low weight (< ``maskpt`` × the clipped mean
weight) are dropped; the median across groups (computed in row bands from memory maps,
``webbcal.image3.median``) is blotted back onto every exposure, and the derivative-based
test (``snr``, ``scale``) marks outliers, which get DO_NOT_USE | OUTLIER and NaN.
The updated exposures are the ``*_crf.fits`` products (``save``).

Memory: one group's single drizzle (two output-size arrays) or one exposure plus the
median, never all exposures.

Defaults that differ from the official code: ``pixmap_stepsize = 10``, ``pixmap_order = 3``
(official 1 and 1: every pixel through the WCS). The pixel map of a NIRCam full frame then
costs 0.3 s instead of 1.0 s, and it is needed twice per exposure (single drizzle, blot);
the cubic spline through the sparse map differs from the exact one by < 1e-8 pixel
(``tests/steps/test_resample.py``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from astropy.stats import sigma_clip

from webbcal import dqflags
from webbcal.errors import WebbcalError
from webbcal.image3.blot import blot_image, flag_outliers
from webbcal.image3.exposures import Exposure, groups
from webbcal.image3.median import sectioned_median, store_single
from webbcal.resample import Resampler, ResampleInput
from webbcal.resample.pixmap import pixel_map
from webbcal.steps.base import Param, StepSpec
from webbcal.steps.image_model import match_nans_and_flags

log = logging.getLogger("webbcal.outlier_detection")

SPEC = StepSpec(
    name="outlier_detection",
    stage="image3",
    status_key="S_OUTLIR",
    params=(
        Param("weight_type", str, "ivm", "Single-drizzle weighting: ivm or exptime.",
              choices=("ivm", "exptime")),
        Param("pixfrac", float, 1.0, "Single-drizzle pixel shrinkage factor (0-1].", minimum=0.0),
        Param("kernel", str, "square", "Single-drizzle kernel.", choices=("square", "point", "turbo")),
        Param("fillval", str, "NAN", "Value of unfilled single-drizzle pixels."),
        Param("maskpt", float, 0.7, "Fraction of the mean weight below which pixels are ignored.",
              minimum=0.0),
        Param("snr", str, "5.0 4.0", "Signal-to-noise thresholds: strict and loose test."),
        Param("scale", str, "1.2 0.7", "Derivative scale factors: strict and loose test."),
        Param("backg", float, 0.0, "Background level added to the blot (when no BKGLEVEL)."),
        Param("resample_data", bool, True, "Median of single drizzles (false: of the cal images)."),
        Param("good_bits", str, "~DO_NOT_USE", "DQ bits of good pixels."),
        Param("save_intermediate_results", bool, False, "Keep the median image (not implemented)."),
        Param("in_memory", bool, True, "Ignored: webbcal always streams the exposures."),
        Param("pixmap_stepsize", float, 10.0, "Pixel-map step; > 1 interpolates a sparse map "
              "(official default 1, see module doc)."),
        Param("pixmap_order", int, 3, "Spline order of the pixel-map interpolation (official default 1).",
              minimum=1),
    ),
    doc="Flag cosmic rays and other outliers against the median of all exposures (*_crf.fits).",
)

OUTLIER_FLAGS = np.uint32(dqflags.DO_NOT_USE | dqflags.OUTLIER)


def parse_pair(text, name: str) -> tuple[float, float]:
    parts = str(text).replace(",", " ").split()
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 2:
        raise WebbcalError(f"outlier_detection.{name}", f"expects two numbers 'a b', got {text!r}")
    return values


# Weights in the clipped mean of ``weight_threshold``: an evenly spread sample of at most
# this many (0.7 s → 0.09 s on a full frame; the threshold moves by < 1e-4 of itself).
WEIGHT_SAMPLE = 500_000


def weight_threshold(wht: np.ndarray, maskpt: float) -> float:
    """``maskpt`` × the 3σ-clipped mean of the finite, non-zero weights."""
    good = wht[np.isfinite(wht) & (wht != 0)]
    if good.size == 0:
        return np.inf
    stride = int(np.ceil(good.size / WEIGHT_SAMPLE)) | 1
    return float(maskpt * np.mean(sigma_clip(good[::stride], sigma=3, maxiters=5, masked=False)))


def single_drizzle(exposures: list[Exposure], members: list[int], grid, params: dict) -> np.ndarray:
    """One group's images drizzled alone onto ``grid``; low-weight pixels NaN."""
    resampler = Resampler(grid, kernel=params["kernel"], pixfrac=params["pixfrac"],
                          fillval=params["fillval"], weight_type=params["weight_type"],
                          enable_ctx=False, enable_var=False, enable_err=False,
                          pixmap_stepsize=params["pixmap_stepsize"], pixmap_order=params["pixmap_order"])
    for k in members:
        resampler.add(ResampleInput.from_image(exposures[k].load()))
    result = resampler.finalize()
    data = result.data
    with np.errstate(invalid="ignore"):
        data[~(result.wht >= weight_threshold(result.wht, params["maskpt"]))] = np.nan
    return data


def median_of_groups(exposures: list[Exposure], grid, params: dict, scratch: Path) -> np.ndarray:
    paths = []
    for g, (gid, members) in enumerate(groups(exposures).items()):
        data = single_drizzle(exposures, members, grid, params)
        paths.append(store_single(scratch / f"single_{g:04d}.f32", data))
        del data
        log.info("single drizzle of group %s done", gid)
    median = sectioned_median(paths, grid.shape)
    for path in paths:
        path.unlink()
    return median


def exposure_pixel_map(image, grid, params: dict) -> np.ndarray:
    """The exposure → grid pixel map of the blot (and of the final drizzle on the same grid)."""
    return pixel_map(image.wcs, grid.wcs, image.shape, params["pixmap_stepsize"], params["pixmap_order"])


def flag_exposure(image, median, pixmap: np.ndarray, params: dict) -> int:
    """Flag ``image`` (in place) against the median, blotted through ``pixmap`` (exposure →
    median grid); returns the number of new outliers."""
    blot = blot_image(median, pixmap)
    level = image.meta.get("BKGLEVEL")
    if level is not None and not bool(image.meta.get("BKGSUB", False)):
        backg = float(level)  # the sky skymatch recorded but did not subtract
    else:
        backg = float(params["backg"])
    outliers = flag_outliers(image.data, blot, image.err, backg,
                             parse_pair(params["snr"], "snr"), parse_pair(params["scale"], "scale"))
    new = outliers & ((image.dq & OUTLIER_FLAGS) != OUTLIER_FLAGS)
    image.dq[outliers] |= OUTLIER_FLAGS
    match_nans_and_flags(image)
    return int(new.sum())


def apply(exposures: list[Exposure], params: dict, grid, scratch: Path, save, flagged=None) -> str:
    """Run the step over the association; ``save(exposure, image)`` stores each crf.

    ``flagged(exposure, image, pixmap)``, when given, receives each flagged image while it
    is still in memory, with its pixel map onto ``grid`` (Image3 drizzles it into the
    mosaic there instead of reading the crf and mapping its pixels again).
    """
    if len(exposures) < 2:
        log.warning("outlier_detection needs at least 2 exposures; step not run")
        return "FAILED"
    if not params["resample_data"]:
        raise WebbcalError("outlier_detection.resample_data", "only resample_data=true is implemented")
    median = median_of_groups(exposures, grid, params, Path(scratch))
    for exposure in exposures:
        image = exposure.load()
        pixmap = exposure_pixel_map(image, grid, params)
        count = flag_exposure(image, median, pixmap, params)
        image.meta["S_OUTLIR"] = "COMPLETE"
        exposure.meta["S_OUTLIR"] = "COMPLETE"
        save(exposure, image)
        if flagged is not None:
            flagged(exposure, image, pixmap)
        del pixmap
        log.info("%s: %d outliers (%.4f%% of pixels)", exposure.name, count, 100.0 * count / image.data.size)
    return "COMPLETE"
