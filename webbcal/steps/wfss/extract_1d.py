"""extract_1d for WFSS: box spectra of every slit → the x1d product (WFSSMultiSpecModel).

jwst 3.0 ``extract_1d`` (spec image2_image3_wfss.md §4.9); the algorithm is
``webbcal.spec2.spectra``. WFSS needs no EXTRACT1D reference; an NRC_WFSS APCORR
reference (columns filter, pupil, wavelength, size, apcorr) is used for point sources when
``apply_apcorr`` is set and one is given. Only the parameters that apply to NIRCam WFSS
are declared (the IFU and NIRISS SOSS ones are left out); ``extraction_type`` other than
box is refused, as officially for WFSS (no PSF reference).
"""

from __future__ import annotations

import logging

import numpy as np

from webbcal.errors import WebbcalError
from webbcal.spec2.spectra import extract_slit, x1d_product
from webbcal.steps.base import Param, StepSpec
from webbcal.steps.image_model import match_nans_and_flags
from webbcal.steps.photom import find_row

log = logging.getLogger("webbcal.steps.wfss.extract_1d")

SPEC = StepSpec(
    name="extract_1d",
    stage="spec2",
    status_key="S_EXTR1D",
    reftypes=("apcorr",),
    optional_reftypes=("apcorr",),
    params=(
        Param("subtract_background", bool, None, "Subtract a background (never for WFSS).", nullable=True),
        Param("apply_apcorr", bool, True, "Apply aperture corrections to point sources (with an APCORR ref)."),
        Param("extraction_type", str, "box", "Extraction type; WFSS supports box only.", nullable=True,
              choices=("box", "optimal")),
        Param("use_source_posn", bool, None, "Centre on the source position (forced off for WFSS).", nullable=True),
        Param("position_offset", float, 0.0, "Cross-dispersion shift of the trace, pixels (unused for WFSS)."),
        Param("model_nod_pair", bool, True, "Optimal extraction only (unused)."),
        Param("optimize_psf_location", bool, True, "Optimal extraction only (unused)."),
        Param("smoothing_length", int, None, "Background smoothing (unused for WFSS).", nullable=True),
        Param("bkg_fit", str, None, "Background fit type (unused for WFSS).", nullable=True,
              choices=("poly", "mean", "median")),
        Param("bkg_order", int, None, "Background polynomial order (unused for WFSS).", nullable=True, minimum=0),
        Param("log_increment", int, 50, "Log every this many integrations."),
        Param("save_profile", bool, False, "Save the spatial profile (not produced for WFSS)."),
        Param("save_scene_model", bool, False, "Save the scene model (not produced for WFSS)."),
        Param("save_residual_image", bool, False, "Save the residual image (not produced for WFSS)."),
    ),
    doc="Box-extract every WFSS slit into 1-D spectra (x1d, one table per order).",
)


def apcorr_function(reference, meta):
    """correction(wavelength, npixels) from an NRC_WFSS APCORR reference, or None."""
    if reference is None:
        return None
    table = reference.tables.get("APCORR")
    needed = ("filter", "pupil", "wavelength", "size", "apcorr")
    if table is None or any(c not in (table.dtype.names or ()) for c in needed):
        log.warning("%s is not an NRC_WFSS APCORR table; no aperture correction", reference.path)
        return None
    row = find_row(table, {"filter": meta.get("FILTER", ""), "pupil": meta.get("PUPIL", "")}, reference.path)
    if row is None:
        return None
    from scipy.interpolate import RectBivariateSpline

    n_wave = int(table["nelem_wl"][row]) if "nelem_wl" in table.dtype.names else len(table["wavelength"][row])
    n_size = int(table["nelem_size"][row]) if "nelem_size" in table.dtype.names else len(table["size"][row])
    wave = np.asarray(table["wavelength"][row][:n_wave], dtype=float)
    size = np.asarray(table["size"][row][:n_size], dtype=float)
    values = np.asarray(table["apcorr"][row], dtype=float)[:n_wave, :n_size]
    unit = str((reference.ext_meta.get("APCORR") or {}).get("SIZEUNIT") or reference.meta.get("SIZEUNIT") or "pixel")
    if unit.strip().lower().startswith("arcsec"):  # aperture sizes in arcsec → pixels
        pixel_arcsec = np.sqrt(float(meta.get("PIXAR_A2") or reference.meta.get("PIXAR_A2") or 0.0))
        if not pixel_arcsec > 0:
            raise WebbcalError(reference.path, "APCORR sizes are in arcsec but PIXAR_A2 is unknown")
        size = size / pixel_arcsec
    spline = RectBivariateSpline(size, wave, values.T, kx=1, ky=1)

    def correction(wavelength, npixels):
        return spline(npixels, wavelength, grid=False)

    return correction


def apply(slits, refs: dict, params: dict, *, filename: str | None = None):
    """The x1d Product of ``slits`` (a GrismSlits after photom); S_EXTR1D set on both."""
    if params.get("extraction_type") not in (None, "box"):
        raise WebbcalError("extraction_type", "WFSS spectra can only be box-extracted (no PSF reference)")
    apcorr = apcorr_function(refs.get("apcorr"), slits.meta) if params.get("apply_apcorr", True) else None
    spectra = []
    for slit in slits.slits:
        if slit.order == 0:
            continue  # zeroth order is not a spectrum (officially skipped)
        match_nans_and_flags(slit)
        spectrum = extract_slit(slit, apcorr)
        if spectrum is None:
            log.warning("slit %s order %d has no wavelengths; no spectrum", slit.name, slit.order)
            continue
        spectra.append(spectrum)
    if not spectra:
        raise WebbcalError(slits.meta.get("FILENAME"), "no slit gave a spectrum")
    slits.set_status(SPEC.status_key, "COMPLETE")
    product = x1d_product(slits.meta, spectra, filename=filename)
    product.meta[SPEC.status_key] = "COMPLETE"
    return product
