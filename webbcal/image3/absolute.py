"""Absolute alignment: all exposures, once relatively aligned, fitted as one to a reference
catalog of sky positions (tweakreg ``abs_refcat``; spec image2_image3_wfss.md §3.2).

* ``read_reference_catalog``: any table astropy reads (ECSV, FITS, ...) with one RA and one
  DEC column in degrees (case-insensitive), or a ``sky_centroid`` column (a webbcal or
  official ``*_cat.ecsv``), as the official ``_parse_sky_centroid`` accepts.
* ``catalog_pairs``: every exposure's stars (through its current WCS) against the catalog
  in one tangent plane: one initial offset from the 2-D histogram of all exposures' pair
  offsets within ``abs_searchrad``, then nearest unique neighbours within
  ``abs_tolerance``, exposure by exposure. Each exposure's measurement of a star is its own
  pair, so the one fit weighs every exposure alike (the official fits all images as one
  group, 987654).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from webbcal.errors import WebbcalError
from webbcal.image3 import align


def read_reference_catalog(path) -> tuple[np.ndarray, np.ndarray]:
    """(ra, dec) in degrees of the finite rows of a reference catalog file."""
    from astropy.table import Table

    path = Path(path)
    if not path.is_file():
        raise WebbcalError(path, "absolute reference catalog (tweakreg.abs_refcat) not found")
    try:
        table = Table.read(path, format="ascii.ecsv") if path.suffix == ".ecsv" else Table.read(path)
    except Exception as exc:  # astropy raises many kinds for an unreadable table
        raise WebbcalError(path, f"cannot read the reference catalog: {str(exc).splitlines()[0]}") from None
    by_upper = {}
    for name in table.colnames:
        by_upper.setdefault(name.upper(), []).append(name)
    if len(by_upper.get("RA", [])) > 1 or len(by_upper.get("DEC", [])) > 1:
        raise WebbcalError(path, "the reference catalog has several RA or DEC columns")
    if by_upper.get("RA") and by_upper.get("DEC"):
        ra, dec = (_degrees(table[by_upper[key][0]], path) for key in ("RA", "DEC"))
    elif by_upper.get("SKY_CENTROID"):
        sky = table[by_upper["SKY_CENTROID"][0]]
        ra, dec = np.asarray(sky.ra.deg, float), np.asarray(sky.dec.deg, float)
    else:
        raise WebbcalError(path, "the reference catalog needs RA and DEC columns (degrees) or sky_centroid")
    ok = np.isfinite(ra) & np.isfinite(dec)
    return ra[ok], dec[ok]


def _degrees(column, path) -> np.ndarray:
    """Column values in degrees (no unit: degrees)."""
    unit = getattr(column, "unit", None)
    if unit is None:
        return np.asarray(column, float)
    try:
        return np.asarray(column.quantity.to_value("deg"), float)
    except Exception:
        raise WebbcalError(path, f"column {column.name} is in {unit}, not an angle") from None


def catalog_pairs(reference, per_exposure: list[np.ndarray], searchrad: float, tolerance: float,
                  separation: float, bin_size: float, use2dhist: bool = True):
    """Stacked (reference, measured) tangent-plane positions of the matched pairs, arcsec."""
    from scipy.spatial import cKDTree

    ref = reference[align.isolated(reference, separation)]
    inputs = [points[align.isolated(points, separation)] for points in per_exposure if len(points)]
    if len(ref) == 0 or not inputs:
        return np.empty((0, 2)), np.empty((0, 2))
    shift = (align.initial_shift_many(ref, inputs, searchrad, bin_size) if use2dhist
             else (0.0, 0.0))
    tree = cKDTree(ref)
    matched_ref, matched_inp = [], []
    for points in inputs:
        dist, nearest = tree.query(points + np.asarray(shift), distance_upper_bound=tolerance)
        ok = np.isfinite(dist)
        qi, ri = np.nonzero(ok)[0], nearest[ok]
        unique = np.bincount(ri, minlength=len(ref))[ri] == 1  # a catalog star claimed twice: drop
        matched_ref.append(ref[ri[unique]])
        matched_inp.append(points[qi[unique]])
    return np.vstack(matched_ref), np.vstack(matched_inp)


def within(points, corners, margin: float) -> np.ndarray:
    """Mask of ``points`` inside the bounding box of ``corners`` widened by ``margin`` (arcsec)."""
    lo = corners.min(axis=0) - margin
    hi = corners.max(axis=0) + margin
    return np.all((points >= lo) & (points <= hi), axis=1)
