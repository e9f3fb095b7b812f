"""Where each catalog source's spectrum lands: the official extract_2d bounding boxes.

jwst 3.0 ``assign_wcs/util.py::_create_grism_bbox`` (spec image2_image3_wfss.md §4.5),
vectorised over all sources: one imaging-WCS inversion for every centroid and segment
corner, one trace evaluation per order for all of them.

For each source (magnitude below ``mmag_extract``, label in ``source_ids`` when given) and
order: the four sky_bbox corners go through world → detector → grism at lambda_min and
lambda_max; the box spans the 8 points. For a point source, ``half_height`` replaces the
cross-dispersion extent by ``c ± half_height`` with c the trace of the centroid at the
mid wavelength. Corners are rounded to the nearest pixel; orders that do not reach the
subarray (≥ 2 pixels along the dispersion, ≥ 1 across) are dropped, sources without any
order too; the rest are sorted by magnitude and cut to the ``nbright`` brightest.
Boxes are 0-based, inclusive, and NOT clipped to the detector (``partial`` says so).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from webbcal.errors import WebbcalError
from webbcal.spec2.catalog import SourceCatalog

log = logging.getLogger("webbcal.spec2.boxes")

NO_MAGNITUDE_LIMIT = 999.0


@dataclass(frozen=True)
class GrismBox:
    """One source's spectral order on the grism image (0-based inclusive pixel indices)."""

    source_id: int
    order: int
    xmin: int
    xmax: int
    ymin: int
    ymax: int
    x0: float  # direct-image position in the exposure's imaging frame
    y0: float
    ra: float
    dec: float
    is_extended: bool
    abmag: float
    wavelength_range: tuple[float, float]
    partial: bool  # some corner lies off the subarray


def to_index(value) -> np.ndarray:
    """Nearest pixel index (``gwcs.utils.to_index``: pixel i spans [i - 0.5, i + 0.5))."""
    return np.floor(np.asarray(value, dtype=float) + 0.5).astype(np.int64)


# --------------------------------------------------------------------------- the reference

def wavelength_ranges(wavelengthrange, filter_name: str, orders=None) -> dict[int, tuple[float, float]]:
    """{order: (lambda_min, lambda_max)} from a WAVELENGTHRANGE reference for ``filter_name``.

    ``orders`` None: the reference's ``extract_orders`` default for the filter.
    """
    path = getattr(wavelengthrange, "path", None)
    tree = getattr(wavelengthrange, "tree", wavelengthrange) or {}
    exp_type = str((tree.get("meta") or {}).get("exposure", {}).get("type", "")
                   or getattr(wavelengthrange, "meta", {}).get("EXP_TYPE", ""))
    if exp_type and "WFSS" not in exp_type.upper():
        raise WebbcalError(path, f"wavelengthrange reference is for {exp_type}, not WFSS")
    filter_name = str(filter_name).strip().upper()
    if orders is None:
        defaults = [entry[1] for entry in tree.get("extract_orders") or ()
                    if str(entry[0]).upper() == filter_name]
        if not defaults:
            raise WebbcalError(path, f"wavelengthrange reference has no extract_orders for {filter_name}")
        orders = defaults[-1]
    ranges = {}
    for order in [int(o) for o in np.atleast_1d(orders)]:
        rows = [row for row in tree.get("wavelengthrange") or ()
                if int(row[0]) == order and str(row[1]).upper() == filter_name]
        if not rows:
            raise WebbcalError(path, f"wavelengthrange reference has no range for {filter_name} order {order}")
        ranges[order] = (float(rows[0][2]), float(rows[0][3]))
    return ranges


# --------------------------------------------------------------------------- the boxes

def direct_positions(image, ra, dec) -> tuple[np.ndarray, np.ndarray]:
    """World → detector of the exposure's imaging WCS (no bounding box: off-detector kept)."""
    if image.wcs is None:
        raise WebbcalError(image.path, "no WCS: run assign_wcs before extract_2d")
    transform = image.wcs.backward_transform
    x, y = transform(np.asarray(ra, dtype=float), np.asarray(dec, dtype=float))
    return np.asarray(x, dtype=float), np.asarray(y, dtype=float)


def select_sources(catalog: SourceCatalog, mmag_extract=None, source_ids=None) -> np.ndarray:
    """Catalog rows with a magnitude below ``mmag_extract`` (and in ``source_ids``)."""
    limit = NO_MAGNITUDE_LIMIT if mmag_extract is None else float(mmag_extract)
    keep = np.isfinite(catalog.abmag) & (catalog.abmag < limit)
    if source_ids is not None:
        keep &= np.isin(catalog.label, np.atleast_1d(np.asarray(source_ids, dtype=np.int64)))
    return np.flatnonzero(keep)


def grism_boxes(image, catalog: SourceCatalog, *, orders=None, wavelength_range: dict,
                half_height=None, mmag_extract=None, nbright=None, source_ids=None) -> list[GrismBox]:
    """The official extract_2d boxes of every selected source and order (see module doc).

    ``image``: a CalImage with ``wcs`` (imaging) and ``grism`` (GrismWcs) from assign_wcs;
    ``wavelength_range``: {order: (lambda_min, lambda_max)}, or the WAVELENGTHRANGE
    reference itself (its ranges for the exposure's FILTER); ``orders`` restricts it.
    Returned in brightness order, then order.
    """
    grism = getattr(image, "grism", None)
    if grism is None:
        raise WebbcalError(image.path, "no grism WCS: run the WFSS assign_wcs first")
    if not _is_range_dict(wavelength_range):  # a WAVELENGTHRANGE reference (Product or tree)
        wavelength_range = wavelength_ranges(wavelength_range, image.meta.get("FILTER", ""), orders)
    if orders is not None:
        missing = [o for o in orders if int(o) not in wavelength_range]
        if missing:
            raise WebbcalError(image.path, f"no wavelength range for order(s) {missing}")
        wavelength_range = {int(o): wavelength_range[int(o)] for o in orders}
    rows = select_sources(catalog, mmag_extract, source_ids)
    if rows.size == 0:
        return []
    n = rows.size
    ra = np.concatenate([catalog.ra[rows], catalog.corner_ra[:, rows].ravel()])
    dec = np.concatenate([catalog.dec[rows], catalog.corner_dec[:, rows].ravel()])
    x, y = direct_positions(image, ra, dec)
    x0, y0 = x[:n], y[:n]
    cx, cy = x[n:], y[n:]  # (4 * n): corner-major
    ny, nx = image.shape
    dispaxis = grism.dispaxis
    if half_height is not None:
        half_height = float(half_height)
    point = ~catalog.is_extended[rows]

    boxes_by_row: list[list[GrismBox]] = [[] for _ in range(n)]
    for order, (lmin, lmax) in wavelength_range.items():
        corners = grism.sources(order, cx, cy)
        xs, ys = [], []
        for wavelength in (lmin, lmax):
            gx, gy = grism.trace_at_wavelength(corners, wavelength)
            xs.append(gx.reshape(4, n))
            ys.append(gy.reshape(4, n))
        xs, ys = np.concatenate(xs), np.concatenate(ys)
        with np.errstate(invalid="ignore"):
            xmin, xmax = np.nanmin(xs, axis=0), np.nanmax(xs, axis=0)
            ymin, ymax = np.nanmin(ys, axis=0), np.nanmax(ys, axis=0)
        if half_height is not None and point.any():
            centre_x, centre_y = grism.trace_at_wavelength(grism.sources(order, x0, y0), 0.5 * (lmin + lmax))
            if dispaxis == 1:
                ymin = np.where(point, centre_y - half_height, ymin)
                ymax = np.where(point, centre_y + half_height, ymax)
            else:
                xmin = np.where(point, centre_x - half_height, xmin)
                xmax = np.where(point, centre_x + half_height, xmax)
        finite = np.isfinite(xmin) & np.isfinite(xmax) & np.isfinite(ymin) & np.isfinite(ymax)
        ix0, ix1, iy0, iy1 = (to_index(np.where(finite, v, 0.0)) for v in (xmin, xmax, ymin, ymax))
        keep = finite & _reaches_subarray(ix0, ix1, iy0, iy1, nx, ny, dispaxis)
        partial = (ix0 < 0) | (iy0 < 0) | (ix1 > nx - 1) | (iy1 > ny - 1)
        for k in np.flatnonzero(keep):
            row = rows[k]
            boxes_by_row[k].append(GrismBox(
                int(catalog.label[row]), int(order), int(ix0[k]), int(ix1[k]), int(iy0[k]), int(iy1[k]),
                float(x0[k]), float(y0[k]), float(catalog.ra[row]), float(catalog.dec[row]),
                bool(catalog.is_extended[row]), float(catalog.abmag[row]), (float(lmin), float(lmax)),
                bool(partial[k])))
        dropped = np.flatnonzero(~keep)
        if source_ids is not None and dropped.size:
            log.warning("requested source(s) %s order %d fall off the detector",
                        catalog.label[rows[dropped]].tolist(), order)

    with_boxes = [k for k in range(n) if boxes_by_row[k]]
    brightness = np.argsort(catalog.abmag[rows[with_boxes]], kind="stable")
    ordered = [with_boxes[i] for i in brightness]
    if nbright is not None:
        ordered = ordered[:int(nbright)]
    boxes = [box for k in ordered for box in boxes_by_row[k]]
    log.info("%d grism boxes for %d of %d catalog sources", len(boxes), len(ordered), len(catalog))
    return boxes


def _is_range_dict(value) -> bool:
    return isinstance(value, dict) and all(isinstance(k, (int, np.integer)) for k in value)


def _reaches_subarray(x0, x1, y0, y1, nx, ny, dispaxis) -> np.ndarray:
    """≥ 2 pixels along the dispersion and ≥ 1 across inside [0, size - 1] (official test)."""
    along_lo, along_hi, across_lo, across_hi, n_along, n_across = (
        (x0, x1, y0, y1, nx, ny) if dispaxis == 1 else (y0, y1, x0, x1, ny, nx))
    along = (along_hi > 0) & (n_along - 1 - along_lo > 0)
    across = (across_hi >= 0) & (n_across - 1 - across_lo >= 0)
    return along & across


def clip_box(box: GrismBox, shape) -> tuple[slice, slice] | None:
    """The (rows, columns) slices of ``box`` on an image of ``shape``, as extract_2d cuts it.

    Official rule: clamp the corners to [0, size] and slice [min : max + 1]; a box left
    with zero extent on either axis is dropped (None).
    """
    ny, nx = shape
    ymin, ymax = min(max(box.ymin, 0), ny), min(max(box.ymax, 0), ny)
    xmin, xmax = min(max(box.xmin, 0), nx), min(max(box.xmax, 0), nx)
    if ymax - ymin <= 0 or xmax - xmin <= 0:
        return None
    rows, cols = slice(ymin, min(ymax + 1, ny)), slice(xmin, min(xmax + 1, nx))
    if rows.stop - rows.start <= 0 or cols.stop - cols.start <= 0:
        return None
    return rows, cols
