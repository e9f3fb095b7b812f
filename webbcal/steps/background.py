"""background (the official bkg_subtract) for imaging: subtract an association's backgrounds.

jwst 3.0 ``background/background_sub.py`` for 2-D images (spec image2_image3_wfss.md §2.2):
each background rate is placed in the science frame by SUBSTRT/SUBSIZE (NaN where it does
not overlap), the stack is sigma-clipped along the exposures (``astropy.stats.sigma_clip``,
``sigma``, ``maxiters``) and averaged; its ERR is ``sqrt(Σ err²)/N`` over unclipped
values, its DQ the OR of all. ``SCI -= background``, ``DQ |= background DQ``; the science
ERR and variances are left alone (as officially). Run only when there are backgrounds.
"""

from __future__ import annotations

import numpy as np

from webbcal.errors import WebbcalError
from webbcal.steps.base import Param, StepSpec
from webbcal.steps.image_model import CalImage

SPEC = StepSpec(
    name="background",
    stage="image2",
    status_key="S_BKDSUB",
    params=(
        Param("bkg_list", str, None, "Comma-separated background rate files (ignored when the "
                                     "association lists backgrounds).", nullable=True),
        Param("save_combined_background", bool, False, "Also save the combined background image."),
        Param("sigma", float, 3.0, "Sigma-clipping threshold for combining backgrounds."),
        Param("maxiters", int, None, "Clipping iterations; null: until convergence.", nullable=True,
              minimum=1),
        Param("soss_source_percentile", float, 35.0, "NIRISS SOSS only (unused)."),
        Param("soss_bkg_percentile", str, None, "NIRISS SOSS only (unused).", nullable=True),
        Param("wfss_mmag_extract", float, None, "WFSS only: minimum AB mag to extract.", nullable=True),
        Param("wfss_mask", str, None, "WFSS only: source mask file.", nullable=True),
        Param("wfss_maxiter", int, 5, "WFSS only: outlier rejection iterations."),
        Param("wfss_rms_stop", float, 0.0, "WFSS only: RMS improvement stop (percent)."),
        Param("wfss_outlier_percent", float, 1.0, "WFSS only: outlier percentile per iteration."),
    ),
    doc="Subtract the sigma-clipped mean of the association's background exposures.",
)


def window(meta, shape) -> tuple[int, int, int, int]:
    """(xstart0, ystart0, nx, ny): the 0-based full-frame window of an image."""
    ny, nx = shape
    x0 = int(meta.get("SUBSTRT1", 1)) - 1
    y0 = int(meta.get("SUBSTRT2", 1)) - 1
    return x0, y0, int(meta.get("SUBSIZE1", nx)), int(meta.get("SUBSIZE2", ny))


def place(science_meta, science_shape, bkg: CalImage) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A background's SCI, ERR, DQ on the science pixel grid (NaN / 0 outside the overlap)."""
    sx, sy, _, _ = window(science_meta, science_shape)
    bx, by, _, _ = window(bkg.meta, bkg.shape)
    data = np.full(science_shape, np.nan, np.float32)
    err = np.full(science_shape, np.nan, np.float32)
    dq = np.zeros(science_shape, np.uint32)
    ny, nx = science_shape
    # overlap in full-frame pixels
    x_lo, y_lo = max(sx, bx), max(sy, by)
    x_hi, y_hi = min(sx + nx, bx + bkg.shape[1]), min(sy + ny, by + bkg.shape[0])
    if x_hi > x_lo and y_hi > y_lo:
        out = (slice(y_lo - sy, y_hi - sy), slice(x_lo - sx, x_hi - sx))
        src = (slice(y_lo - by, y_hi - by), slice(x_lo - bx, x_hi - bx))
        data[out], err[out], dq[out] = bkg.data[src], bkg.err[src], bkg.dq[src]
    return data, err, dq


def combine(stack: np.ndarray, err_stack: np.ndarray, sigma: float, maxiters: int | None):
    """Sigma-clipped mean of the stack along axis 0 and its error."""
    import warnings

    from astropy.stats import sigma_clip

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        clipped = sigma_clip(stack, sigma=sigma, maxiters=maxiters, axis=0, masked=True)
        keep = ~np.ma.getmaskarray(clipped)
        count = keep.sum(axis=0)
        mean = np.ma.mean(clipped, axis=0).filled(np.nan).astype(np.float32)
        err2 = np.where(keep & np.isfinite(err_stack), err_stack.astype(np.float64) ** 2, 0.0).sum(axis=0)
        err = (np.sqrt(err2) / np.where(count > 0, count, np.nan)).astype(np.float32)
    return mean, err


def subtract_backgrounds(image: CalImage, backgrounds: list[CalImage], sigma: float = 3.0,
                         maxiters: int | None = None) -> CalImage:
    """Subtract the combined background from ``image`` in place; returns the combination."""
    placed = [place(image.meta, image.shape, b) for b in backgrounds]
    stack = np.stack([p[0] for p in placed])
    err_stack = np.stack([p[1] for p in placed])
    mean, err = combine(stack, err_stack, sigma, maxiters)
    dq = np.bitwise_or.reduce(np.stack([p[2] for p in placed]), axis=0).astype(np.uint32)
    image.data -= mean
    image.dq |= dq
    return CalImage(data=mean, err=err, dq=dq, meta=image.meta.copy())


def apply(image: CalImage, backgrounds: list[CalImage], params: dict) -> str:
    if not backgrounds:
        return "SKIPPED"
    for bkg in backgrounds:
        if bkg.data.ndim != 2:
            raise WebbcalError(bkg.path, "background must be a 2-D rate image")
    subtract_backgrounds(image, backgrounds, params.get("sigma", 3.0), params.get("maxiters"))
    return "COMPLETE"
