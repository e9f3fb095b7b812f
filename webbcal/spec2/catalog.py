"""The direct-image source catalog (Image3 ``*_cat.ecsv``) as plain arrays for WFSS.

Only the columns the official WFSS code reads (``jwst.lib.catalog_utils.SkyObject``) are
required: label, xcentroid, ycentroid, sky_centroid, isophotal_abmag, isophotal_abmag_err,
sky_bbox_ll/lr/ul/ur, is_extended. SkyCoord columns are read back from their ``.ra``/``.dec``
sub-columns by ``QTable.read(format="ascii.ecsv")`` (spec image2_image3_wfss.md §4.5, §7.5).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from webbcal.errors import WebbcalError

REQUIRED_COLUMNS = ("label", "xcentroid", "ycentroid", "sky_centroid", "isophotal_abmag",
                    "isophotal_abmag_err", "sky_bbox_ll", "sky_bbox_lr", "sky_bbox_ul",
                    "sky_bbox_ur", "is_extended")
CORNERS = ("ll", "lr", "ul", "ur")


@dataclass
class SourceCatalog:
    """One row per source; sky positions in degrees (ICRS)."""

    label: np.ndarray  # int64
    ra: np.ndarray
    dec: np.ndarray
    corner_ra: np.ndarray  # (4, n): ll, lr, ul, ur of the segment's bounding box
    corner_dec: np.ndarray
    abmag: np.ndarray  # NaN where the catalog has no magnitude
    is_extended: np.ndarray  # bool
    xcentroid: np.ndarray  # in the direct (mosaic) image, informational
    ycentroid: np.ndarray
    path: Path | None = None

    def __len__(self) -> int:
        return int(self.label.size)

    def subset(self, index) -> "SourceCatalog":
        index = np.asarray(index)
        return SourceCatalog(self.label[index], self.ra[index], self.dec[index],
                             self.corner_ra[:, index], self.corner_dec[:, index], self.abmag[index],
                             self.is_extended[index], self.xcentroid[index], self.ycentroid[index],
                             self.path)


def _values(column) -> np.ndarray:
    """A (masked) quantity/column as float64 with NaN for masked entries."""
    data = getattr(column, "value", column)
    mask = np.ma.getmaskarray(column) if np.ma.isMaskedArray(column) else None
    out = np.array(np.ma.getdata(data), dtype=float)
    if mask is not None and mask.any():
        out[mask] = np.nan
    return out


def _sky(column, name: str, path) -> tuple[np.ndarray, np.ndarray]:
    try:
        icrs = column.icrs
        return np.asarray(icrs.ra.deg, dtype=float), np.asarray(icrs.dec.deg, dtype=float)
    except AttributeError:
        raise WebbcalError(path, f"source catalog column {name} is not a sky coordinate") from None


def read_source_catalog(path: str | os.PathLike) -> SourceCatalog:
    """Read an Image3 source catalog (ECSV); one ``WebbcalError`` for anything unusable."""
    from astropy.table import QTable

    path = Path(path)
    if not path.is_file():
        raise WebbcalError(path, "source catalog not found")
    try:
        table = QTable.read(path, format="ascii.ecsv")
    except Exception as exc:  # astropy raises many types for a broken ECSV
        first = (str(exc).strip().splitlines() or [""])[0]
        raise WebbcalError(path, f"unreadable source catalog: {type(exc).__name__}: {first}") from None
    return catalog_from_table(table, path)


def catalog_from_table(table, path=None) -> SourceCatalog:
    missing = [c for c in REQUIRED_COLUMNS if c not in table.colnames]
    if missing:
        raise WebbcalError(path, f"source catalog lacks column(s) {', '.join(missing)}")
    ra, dec = _sky(table["sky_centroid"], "sky_centroid", path)
    corners = [_sky(table[f"sky_bbox_{c}"], f"sky_bbox_{c}", path) for c in CORNERS]
    labels = np.asarray(np.ma.getdata(table["label"]), dtype=np.int64)
    extended = np.asarray(np.ma.filled(table["is_extended"], False), dtype=bool) \
        if np.ma.isMaskedArray(table["is_extended"]) else np.asarray(table["is_extended"], dtype=bool)
    return SourceCatalog(
        label=labels, ra=ra, dec=dec,
        corner_ra=np.array([c[0] for c in corners]).reshape(4, -1),
        corner_dec=np.array([c[1] for c in corners]).reshape(4, -1),
        abmag=_values(table["isophotal_abmag"]), is_extended=extended,
        xcentroid=_values(table["xcentroid"]), ycentroid=_values(table["ycentroid"]),
        path=None if path is None else Path(path))
