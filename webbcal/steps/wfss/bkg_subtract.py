"""bkg_subtract for WFSS: scale the dispersed-sky reference (BKG) to the exposure, subtract it.

jwst 3.0 ``background/background_step.py`` + ``background_sub_wfss.py`` (spec
image2_image3_wfss.md §4.3). The BKG reference arrives cut to the subarray. Background
pixels are those outside every catalog source's grism box (``webbcal.spec2.boxes``, with
``wfss_mmag_extract`` and the reference's default orders for the filter), or those a user
mask file (``wfss_mask``) marks True. The scale is fitted by ``webbcal.spec2.background``.

Outcomes, as officially: no BKG reference → SKIPPED (the pipeline decides, see
``webbcal.pipeline.spec2``); too few background pixels or a non-finite scale → FAILED
with BKGD_SCL = 0 and the data untouched; otherwise ``SCI -= f·BKG``, ``DQ |= BKG DQ``,
BKGD_SCL = f, COMPLETE. ERR and the variances are left alone. The mask used (the
official MASK extension: 1 = background) is returned by :func:`subtract`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from webbcal.errors import WebbcalError
from webbcal.spec2.background import enough_background, fit_scale, source_mask
from webbcal.steps.base import Param, StepSpec

log = logging.getLogger("webbcal.spec2.bkg_subtract")

SPEC = StepSpec(
    name="bkg_subtract",
    stage="spec2",
    status_key="S_BKDSUB",
    reftypes=("bkg", "wavelengthrange"),
    params=(
        Param("bkg_list", str, None, "Background exposures (imaging only; ignored for WFSS).",
              nullable=True),
        Param("save_combined_background", bool, False, "Imaging only (unused for WFSS)."),
        Param("sigma", float, 3.0, "Imaging only: clipping threshold (unused for WFSS)."),
        Param("maxiters", int, None, "Imaging only: clipping iterations (unused for WFSS).",
              nullable=True, minimum=1),
        Param("soss_source_percentile", float, 35.0, "NIRISS SOSS only (unused)."),
        Param("soss_bkg_percentile", str, None, "NIRISS SOSS only (unused).", nullable=True),
        Param("wfss_mmag_extract", float, None,
              "Mask only catalog sources brighter than this AB magnitude (null: all).",
              nullable=True),
        Param("wfss_mask", str, None,
              "Image file whose MASK array (True/1 = background) replaces the catalog mask.",
              nullable=True),
        Param("wfss_maxiter", int, 5, "Outlier-rejection iterations of the scale fit.", minimum=0),
        Param("wfss_rms_stop", float, 0.0,
              "Stop iterating when the residual RMS improves by less than this (percent; 0: never).",
              minimum=0),
        Param("wfss_outlier_percent", float, 1.0,
              "Percentile rejected at each end of the residuals per iteration.", minimum=0),
    ),
    doc="Scale the WFSS background reference to the exposure outside the sources and subtract it.",
)

# The official minimum share of background pixels for a catalog-based mask.
MIN_BACKGROUND_FRACTION = 0.05


@dataclass
class BackgroundResult:
    status: str  # COMPLETE or FAILED
    factor: float  # BKGD_SCL (0 when FAILED)
    mask: np.ndarray  # uint32, 1 = pixel used as background (the official MASK extension)
    iterations: int = 0


def read_user_mask(path, shape) -> np.ndarray:
    """The MASK array (True = background) of a user mask file (``wfss_mask``)."""
    from astropy.io import fits

    try:
        with fits.open(path) as hdul:
            if "MASK" not in hdul:
                raise WebbcalError(path, "wfss_mask file has no MASK extension")
            mask = np.asarray(hdul["MASK"].data).astype(bool)
    except OSError as exc:
        raise WebbcalError(path, f"cannot read wfss_mask file: {exc}") from None
    if mask.shape != tuple(shape):
        raise WebbcalError(path, f"wfss_mask is {mask.shape}, the exposure {tuple(shape)}")
    return mask


def catalog_mask(image, catalog, wavelengthrange, mmag_extract) -> np.ndarray:
    """True outside the grism boxes of every catalog source (all default orders)."""
    from webbcal.spec2.boxes import grism_boxes

    # the reference's default orders for the filter, full segment extents, every source
    boxes = grism_boxes(image, catalog, orders=None, wavelength_range=wavelengthrange,
                        mmag_extract=mmag_extract)
    log.info("masked %d grism boxes of %d catalog sources", len(boxes), len(catalog))
    return source_mask(image.shape, boxes)


def subtract(image, refs: dict, params: dict, catalog=None) -> BackgroundResult:
    """Fit and subtract the scaled BKG reference from ``image`` in place."""
    bkg_ref = refs["bkg"]
    bkg = np.asarray(bkg_ref.arrays["SCI"], dtype=np.float32)
    if bkg.shape != image.shape:
        raise WebbcalError(bkg_ref.path, f"bkg reference is {bkg.shape}, the exposure {image.shape}")
    bkg_dq = bkg_ref.arrays.get("DQ")
    if params.get("wfss_mask"):
        mask = read_user_mask(params["wfss_mask"], image.shape)
        min_fraction = 0.0  # the user chose the pixels: any usable one will do
        reference_for_check = np.ones(image.shape, np.float32)
    elif catalog is not None:
        mask = catalog_mask(image, catalog, refs["wavelengthrange"], params.get("wfss_mmag_extract"))
        min_fraction, reference_for_check = MIN_BACKGROUND_FRACTION, bkg
    else:
        log.warning("no source catalog: every pixel is used as background")
        mask, min_fraction = np.ones(image.shape, dtype=bool), None
    if min_fraction is not None and not enough_background(image.dq, mask, reference_for_check, min_fraction):
        log.warning("not enough background pixels: bkg_subtract FAILED")
        return _failed(image, mask)

    dispaxis = image.meta.get("DISPAXIS")
    if params["wfss_rms_stop"] > 0 and dispaxis not in (1, 2):
        raise WebbcalError(image.path, "wfss_rms_stop needs the dispersion axis (DISPAXIS 1 or 2); "
                                       "run assign_wcs first")
    fit = fit_scale(image.data, bkg, image.err.astype(np.float64) ** 2, ~mask,
                    percent=params["wfss_outlier_percent"], maxiter=params["wfss_maxiter"],
                    rms_stop=params["wfss_rms_stop"] / 100.0,
                    dispaxis=int(dispaxis) if dispaxis in (1, 2) else None)
    if not np.isfinite(fit.factor):
        log.warning("no finite background scale: bkg_subtract FAILED")
        return _failed(image, mask)
    image.data = (image.data - fit.factor * bkg.astype(np.float64)).astype(np.float32)
    if bkg_dq is not None:
        image.dq |= np.asarray(bkg_dq, dtype=np.uint32)
    image.meta["BKGD_SCL"] = fit.factor
    log.info("background scale %.5e after %d iterations", fit.factor, fit.iterations)
    return BackgroundResult("COMPLETE", fit.factor, mask.astype(np.uint32), fit.iterations)


def _failed(image, mask) -> BackgroundResult:
    image.meta["BKGD_SCL"] = 0.0
    return BackgroundResult("FAILED", 0.0, mask.astype(np.uint32))


def apply(image, refs: dict, params: dict, catalog=None) -> str:
    """The step on a CalImage: its status (COMPLETE or FAILED); see :func:`subtract`."""
    return subtract(image, refs, params, catalog).status
