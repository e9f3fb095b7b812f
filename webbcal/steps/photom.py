"""photom for NIRCam imaging: DN/s → MJy/sr, pixel areas, the AREA extension.

jwst 3.0 ``photom/photom.py::calc_nircam`` / ``photom_io`` / ``save_area_info`` and
``time_dependence.py`` (spec image2_image3_wfss.md §2.5):

1. AREA reference: its (subarray-cut) map becomes the AREA extension; PIXAR_SR/PIXAR_A2
   come from its header, else from the PHOTOM reference header.
2. The PHOTOM row with FILTER and PUPIL (and SUBARRAY when the table has that column).
   No row: nothing is converted (the status is still COMPLETE, as officially); several: error.
3. Time dependence at EXPMID: product of the linear, exponential and power-law factors;
   ``C = photmjsr / correction``.
4. ``SCI, ERR *= C``, ``VAR_* *= C²``, BUNIT MJy/sr, PHOTMJSR = C, PHOTUJA2 = C·23.50443,
   then the NaN/DQ rule.
"""

from __future__ import annotations

import logging

import numpy as np

from webbcal.errors import WebbcalError
from webbcal.steps.base import Param, StepSpec
from webbcal.steps.image_model import CalImage, match_nans_and_flags

log = logging.getLogger("webbcal.steps.photom")

SPEC = StepSpec(
    name="photom",
    stage="image2",
    status_key="S_PHOTOM",
    reftypes=("photom", "area"),
    optional_reftypes=("area",),
    params=(
        Param("inverse", bool, False, "Divide by the conversion instead (undo the step)."),
        Param("source_type", str, None, "Process as this source type (POINT/EXTENDED); null: from data.",
              nullable=True),
        Param("apply_time_correction", bool, True, "Apply the time-dependent throughput correction."),
    ),
    doc="Convert DN/s to MJy/sr with the PHOTOM table; attach the pixel area map.",
)

MJSR_TO_UJA2 = 23.50443  # MJy/sr → µJy/arcsec² (1e12 / 206264.806²)


def _text(value) -> str:
    return (value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)).strip().upper()


def find_row(table, wanted: dict, source=None) -> int | None:
    """Index of the single row matching every ``wanted`` column (upper-case compare)."""
    mask = np.ones(len(table), bool)
    for column, value in wanted.items():
        mask &= np.array([_text(v) == _text(value) for v in table[column]], bool)
    rows = np.flatnonzero(mask)
    if len(rows) > 1:
        raise WebbcalError(source, f"{len(rows)} PHOTOM rows match {wanted}; expected one")
    if len(rows) == 0:
        log.warning("no PHOTOM row for %s: no flux conversion applied", wanted)
        return None
    return int(rows[0])


def time_correction(tables: dict, phot_table, row: int, mid_time: float | None) -> np.float64:
    """Product of the TIMECOEFF_* corrections for the PHOTOM row at MJD ``mid_time``.

    The formulas run on the table's float32 values as in jwst ``time_dependence`` (so the
    factor rounds identically); the product is float64.
    """
    factor = np.float64(1.0)
    if mid_time is None:
        return factor
    key = {"filter": _text(phot_table["filter"][row]), "pupil": _text(phot_table["pupil"][row])}
    for name, formula in (("TIMECOEFF_LINEAR", _linear), ("TIMECOEFF_EXPONENTIAL", _exponential),
                          ("TIMECOEFF_POWERLAW", _powerlaw)):
        table = tables.get(name)
        if table is None or len(table) == 0:
            continue
        # jwst pairs the coefficient rows with the PHOTOM rows by position
        index = row if len(table) == len(phot_table) else find_row(table, key)
        if index is not None:
            factor = factor * formula(float(mid_time), table[index])
    return factor


def _linear(t, p):
    return 1.0 - p["lossperyear"] * (t - p["t0"]) / 365.0


def _exponential(t, p):
    return p["amplitude"] * np.exp(-(t - p["t0"]) / p["tau"]) + p["const"]


def _powerlaw(t, p):
    norm = (365.0 + p["tsoft"]) ** p["alpha"] / p["year1value"]
    return ((t - p["t0"] + p["tsoft"]) ** p["alpha"]) / norm


def pixel_areas(refs: dict) -> tuple[float | None, float | None, np.ndarray | None]:
    """(PIXAR_SR, PIXAR_A2, area map) from the AREA reference, else the PHOTOM header."""
    area = refs.get("area")
    photom = refs["photom"]
    if area is not None:
        sr, a2 = area.meta.get("PIXAR_SR"), area.meta.get("PIXAR_A2")
        if sr is None or a2 is None:
            sr, a2 = photom.meta.get("PIXAR_SR"), photom.meta.get("PIXAR_A2")
        return sr, a2, np.array(area.arrays["SCI"], dtype=np.float32)
    return photom.meta.get("PIXAR_SR"), photom.meta.get("PIXAR_A2"), None


def convert(image: CalImage, conversion, inverse: bool = False) -> None:
    """Scale SCI/ERR by ``conversion`` and the variances by its square, in place.

    ``conversion`` keeps the scalar type the official code has (float32 from the table,
    float64 after a time correction) so the float32 results round identically.
    """
    squared = conversion * conversion
    if not inverse:
        image.data *= conversion
        image.err *= conversion
    else:
        image.data /= conversion
        image.err /= conversion
    for name in ("var_poisson", "var_rnoise", "var_flat"):
        array = getattr(image, name)
        if array is not None and array.size:
            if not inverse:
                array *= squared
            else:
                array /= squared
    image.bunit = "DN/s" if inverse else "MJy/sr"


def apply(image: CalImage, refs: dict, params: dict) -> str:
    photom = refs["photom"]
    table = photom.tables.get("PHOTOM")
    if table is None:
        raise WebbcalError(photom.path, "photom reference has no PHOTOM table")
    sr, a2, area = pixel_areas(refs)
    if area is not None:
        if area.shape != image.shape:
            raise WebbcalError(refs["area"].path, f"area map is {area.shape}, the exposure {image.shape}")
        image.area = area
    if a2 is not None:
        image.meta["PIXAR_A2"] = float(a2)
    if sr is not None:
        image.meta["PIXAR_SR"] = float(sr)

    wanted = {"filter": image.meta.get("FILTER", ""), "pupil": image.meta.get("PUPIL", "")}
    if "subarray" in (table.dtype.names or ()):
        wanted["subarray"] = image.meta.get("SUBARRAY", "")
    row = find_row(table, wanted, photom.path)
    if row is None:
        return "COMPLETE"
    conversion = table["photmjsr"][row]  # numpy float32, as the official table value
    if params.get("apply_time_correction", True):
        factor = time_correction(photom.tables, table, row, image.meta.get("EXPMID"))
        if factor != 1.0:
            log.info("time-dependence correction %.6g", factor)
            conversion = conversion / factor
    if not np.isfinite(conversion) or conversion == 0:
        raise WebbcalError(photom.path, f"PHOTMJSR is {float(conversion)} for "
                                        + ", ".join(f"{k.upper()}={v}" for k, v in wanted.items()))
    image.meta["PHOTMJSR"] = float(conversion)
    image.meta["PHOTUJA2"] = float(conversion * MJSR_TO_UJA2)
    convert(image, conversion, inverse=params.get("inverse", False))
    match_nans_and_flags(image)
    return "COMPLETE"
