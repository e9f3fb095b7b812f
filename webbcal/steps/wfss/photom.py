"""photom for WFSS: per slit and order, DN/s → MJy/sr with a wavelength-dependent response.

jwst 3.0 ``photom/photom.py::calc_wfss`` / ``photom_io`` / ``create_2d_conversion`` (spec
image2_image3_wfss.md §4.7). Per slit: the PHOTOM row of FILTER, PUPIL and the slit's
order; ``C = photmjsr / time_correction`` (stored as PHOTMJSR, PHOTUJA2), times the factor
from the table's PHOTUNIT to MJy micron s / (DN sr); the relative response interpolated at
every pixel's wavelength (NaN outside the table) divided by the local dispersion
|d lambda / d pixel| (``np.gradient`` along the dispersion):

    conversion = C * relresponse(lambda) / |dispersion|,  0 and DO_NOT_USE where unknown.

SCI, ERR × conversion, VAR_* × conversion², BUNIT MJy/sr, then the NaN/DQ rule per slit.
PIXAR_SR/PIXAR_A2 go to every slit, the full-frame AREA map to the first slit only.
"""

from __future__ import annotations

import logging

import numpy as np

from webbcal import dqflags
from webbcal.errors import WebbcalError
from webbcal.steps.base import StepSpec
from webbcal.steps.image_model import match_nans_and_flags
from webbcal.steps import photom as imaging_photom
from webbcal.steps.photom import MJSR_TO_UJA2, find_row, pixel_areas, time_correction

log = logging.getLogger("webbcal.steps.wfss.photom")

SPEC = StepSpec(
    name="photom",
    stage="spec2",
    status_key="S_PHOTOM",
    reftypes=("photom", "area"),
    optional_reftypes=("area",),
    params=imaging_photom.SPEC.params,  # the official step: one parameter set for every mode
    doc="Convert each WFSS slit from DN/s to MJy/sr with the order's wavelength-dependent response.",
)

EXPECTED_UNIT = "MJy micron s / (DN sr)"


def unit_factor(photom) -> float:
    """Factor from the table's PHOTUNIT to MJy micron s / (DN sr) (1 when not given)."""
    unit = (photom.ext_meta.get("PHOTOM") or {}).get("PHOTUNIT") or photom.meta.get("PHOTUNIT")
    if not unit:
        return 1.0
    from astropy import units as u

    try:
        return float(u.Unit(str(unit)).to(u.Unit(EXPECTED_UNIT)))
    except (ValueError, u.UnitsError):
        raise WebbcalError(photom.path, f"PHOTUNIT {unit!r} does not convert to {EXPECTED_UNIT}") from None


def response_curve(table, row: int) -> tuple[np.ndarray, np.ndarray]:
    """(wavelength [micron], relresponse) of a row: first ``nelem`` values, increasing."""
    waves = np.asarray(table["wavelength"][row], dtype=float)
    resp = np.asarray(table["relresponse"][row], dtype=float)
    if "nelem" in (table.dtype.names or ()):
        n = int(table["nelem"][row])
        waves, resp = waves[:n], resp[:n]
    if not np.all(np.diff(waves) > 0):
        order = np.argsort(waves)
        waves, resp = waves[order], resp[order]
    if waves.size and 0.0 < waves.max() < 1e-4:  # metres
        waves = waves * 1e6
    return waves, resp


def dispersion(wavelength: np.ndarray, dispaxis: int) -> np.ndarray:
    """d lambda / d pixel along the dispersion axis (per row for DISPAXIS 1, column for 2)."""
    axis = 1 if dispaxis == 1 else 0
    if wavelength.shape[axis] < 2:
        return np.full(wavelength.shape, np.nan)
    return np.gradient(wavelength.astype(float), axis=axis)


def conversion_2d(wavelength, dispaxis: int, scalar: float, waves, resp) -> tuple[np.ndarray, np.ndarray]:
    """(conversion, uncalibrated mask) for a slit's WAVELENGTH array."""
    lam = np.where(np.isfinite(wavelength), wavelength, -1.0).astype(float)
    relative = np.interp(lam, waves, resp, left=np.nan, right=np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = relative / np.abs(dispersion(lam, dispaxis))
    relative[~np.isfinite(relative)] = np.nan
    no_cal = np.isnan(relative)
    conversion = scalar * relative
    conversion[no_cal] = 0.0
    return conversion, no_cal


def scale_slit(slit, conversion, inverse: bool) -> None:
    if inverse:
        with np.errstate(divide="ignore", invalid="ignore"):
            conversion = np.where(conversion != 0, 1.0 / conversion, 0.0)
    slit.data *= conversion
    slit.err *= conversion
    squared = conversion * conversion
    for name in ("var_poisson", "var_rnoise", "var_flat"):
        array = getattr(slit, name)
        if array is not None:
            array *= squared
    slit.bunit = "DN/s" if inverse else "MJy/sr"


def apply(slits, refs: dict, params: dict) -> str:
    """Calibrate every slit in place (see module doc)."""
    photom = refs["photom"]
    table = photom.tables.get("PHOTOM")
    if table is None:
        raise WebbcalError(photom.path, "photom reference has no PHOTOM table")
    for column in ("filter", "pupil", "order", "photmjsr", "wavelength", "relresponse"):
        if column not in (table.dtype.names or ()):
            raise WebbcalError(photom.path, f"PHOTOM table lacks column {column!r}: not an NRC_WFSS photom reference")
    sr, a2, area = pixel_areas(refs)
    factor = unit_factor(photom)
    meta = slits.meta
    key = {"filter": meta.get("FILTER", ""), "pupil": meta.get("PUPIL", "")}
    cache: dict[int, tuple | None] = {}  # per order: (C, PHOTMJSR, waves, resp)
    for number, slit in enumerate(slits.slits):
        if slit.order not in cache:
            row = find_row(table, {**key, "order": slit.order}, photom.path)
            if row is None:
                cache[slit.order] = None
            else:
                scalar = table["photmjsr"][row]
                if params.get("apply_time_correction", True):
                    correction = time_correction(photom.tables, table, row, meta.get("EXPMID"))
                    scalar = scalar / correction
                cache[slit.order] = (float(scalar) * factor, float(scalar), *response_curve(table, row))
        if sr is not None:
            slit.keywords["PIXAR_SR"] = float(sr)
        if a2 is not None:
            slit.keywords["PIXAR_A2"] = float(a2)
        if number == 0 and area is not None:
            slit.area = area
        if cache[slit.order] is None:
            continue
        scalar, photmjsr, waves, resp = cache[slit.order]
        slit.keywords["PHOTMJSR"] = photmjsr
        slit.keywords["PHOTUJA2"] = photmjsr * MJSR_TO_UJA2
        conversion, no_cal = conversion_2d(slit.wavelength, slit.dispaxis, scalar, waves, resp)
        scale_slit(slit, conversion, params.get("inverse", False))
        slit.dq[no_cal] |= np.uint32(dqflags.DO_NOT_USE)
        match_nans_and_flags(slit)
    meta.remove("BUNIT", ignore_missing=True, remove_all=True)
    if sr is not None:
        meta["PIXAR_SR"] = float(sr)
    if a2 is not None:
        meta["PIXAR_A2"] = float(a2)
    slits.set_status(SPEC.status_key, "COMPLETE")
    return "COMPLETE"
