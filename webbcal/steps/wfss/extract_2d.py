"""extract_2d for NIRCam WFSS: one cut-out per catalog source and spectral order.

jwst 3.0 ``extract_2d/grisms.py::extract_grism_objects`` (spec image2_image3_wfss.md §4.5)
for every catalog source (no source limit beyond ``wfss_nbright``): boxes from
``webbcal.spec2.boxes`` (sky bounding boxes + WAVELENGTHRANGE), clamped to the image,
SCI/ERR/DQ/VAR_* sliced (small copies, never a full-frame copy), the WAVELENGTH of every
pixel from one vectorised trace evaluation over all slits, and a per-slit gwcs.

List parameters (``source_ids``, ``source_ra``, ``source_dec``, ``extract_orders``) are
comma-separated strings in webbcal's config (``"12, 40"``), lists when called from Python.
"""

from __future__ import annotations

import logging

import numpy as np

from webbcal.errors import WebbcalError
from webbcal.spec2.boxes import clip_box, grism_boxes, wavelength_ranges
from webbcal.spec2.slits import GrismSlit, GrismSlits, slit_wcs
from webbcal.steps.base import Param, StepSpec

log = logging.getLogger("webbcal.steps.wfss.extract_2d")

SPEC = StepSpec(
    name="extract_2d",
    stage="spec2",
    status_key="S_EXTR2D",
    reftypes=("wavelengthrange",),
    params=(
        Param("slit_names", str, None, "Slits to extract (NIRSpec only; unused for WFSS).", nullable=True),
        Param("source_ids", str, None, "Catalog labels to extract, comma-separated (null: all).", nullable=True),
        Param("source_ra", str, None, "RAs (deg, comma-separated) of sources to extract; nearest catalog match.",
              nullable=True),
        Param("source_dec", str, None, "Decs (deg, comma-separated) matching source_ra.", nullable=True),
        Param("source_max_sep", float, 2.0, "Maximum match distance for source_ra/source_dec, arcsec.", minimum=0),
        Param("extract_orders", str, None, "Spectral orders to extract, comma-separated (null: reference default).",
              nullable=True),
        Param("grism_objects", str, None, "Precomputed grism objects (official Python API only; unsupported).",
              nullable=True),
        Param("tsgrism_extract_height", int, None, "Extraction height, TSGRISM only (unused for WFSS).",
              nullable=True),
        Param("wfss_extract_half_height", int, 5, "Cross-dispersion half height of point-source boxes, pixels.",
              nullable=True, minimum=0),
        Param("wfss_mmag_extract", float, None, "Extract only sources brighter than this AB magnitude.",
              nullable=True),
        Param("wfss_nbright", int, 1000, "Extract at most this many of the brightest sources.", minimum=0),
    ),
    doc="Cut out every catalog source's spectrum per order, with its WAVELENGTH and WCS.",
)


# --------------------------------------------------------------------------- parameters

def parse_list(value, kind=float, name: str = "") -> list | None:
    """A comma/space-separated string (or a list) as a list of ``kind``; None stays None."""
    if value is None:
        return None
    items = value.replace(",", " ").split() if isinstance(value, str) else list(np.atleast_1d(value))
    try:
        return [kind(v) for v in items]
    except (TypeError, ValueError):
        raise WebbcalError(name or None, f"expected a list of {kind.__name__}, got {value!r}") from None


def ids_from_radec(catalog, source_ra, source_dec, max_sep_arcsec: float) -> list[int]:
    """Labels of the nearest catalog source to each (RA, Dec) within ``max_sep_arcsec``."""
    if (source_ra is None) != (source_dec is None):
        raise WebbcalError("source_ra", "source_ra and source_dec must be given together")
    if source_ra is None:
        return []
    if len(source_ra) != len(source_dec):
        raise WebbcalError("source_ra", f"{len(source_ra)} source_ra but {len(source_dec)} source_dec values")
    ra0, dec0 = np.deg2rad(catalog.ra), np.deg2rad(catalog.dec)
    found = []
    for ra, dec in zip(np.deg2rad(source_ra), np.deg2rad(source_dec)):
        # haversine separation to every source (catalogs are small; vectorised per target)
        sep = 2 * np.arcsin(np.sqrt(np.sin((dec0 - dec) / 2) ** 2
                                    + np.cos(dec0) * np.cos(dec) * np.sin((ra0 - ra) / 2) ** 2))
        best = int(np.argmin(sep)) if sep.size else -1
        if best >= 0 and np.rad2deg(sep[best]) * 3600.0 <= max_sep_arcsec:
            found.append(int(catalog.label[best]))
        else:
            log.warning("no catalog source within %.2f arcsec of RA %.6f Dec %.6f",
                        max_sep_arcsec, np.rad2deg(ra), np.rad2deg(dec))
    if not found:
        raise WebbcalError("source_ra", "no catalog source matches the given source_ra/source_dec")
    return found


def selected_ids(catalog, params: dict) -> list[int] | None:
    ids = parse_list(params.get("source_ids"), int, "source_ids")
    ra = parse_list(params.get("source_ra"), float, "source_ra")
    dec = parse_list(params.get("source_dec"), float, "source_dec")
    matched = ids_from_radec(catalog, ra, dec, float(params.get("source_max_sep", 2.0)))
    if ids is None and not matched:
        return None
    return sorted(set(ids or []) | set(matched))


# --------------------------------------------------------------------------- cut-outs

def along_coordinates(start: int, length: int) -> np.ndarray:
    return np.arange(start, start + length, dtype=float)


def slit_wavelengths(grism, slits: list[GrismSlit]) -> None:
    """Fill every slit's WAVELENGTH with one trace evaluation for all slits of an order.

    The official forward transform uses only the along-dispersion offset from the source,
    so the wavelength is constant across the dispersion: a 1-D profile broadcast to 2-D.
    """
    by_order: dict[int, list[GrismSlit]] = {}
    for slit in slits:
        by_order.setdefault(slit.order, []).append(slit)
    for order, group in by_order.items():
        dispaxis = grism.dispaxis
        lengths = [s.shape[1] if dispaxis == 1 else s.shape[0] for s in group]
        along = np.concatenate([along_coordinates(s.xstart if dispaxis == 1 else s.ystart, n)
                                for s, n in zip(group, lengths)])
        x0 = np.repeat([s.source_xpos for s in group], lengths)
        y0 = np.repeat([s.source_ypos for s in group], lengths)
        wavelength = grism.wavelength_at(grism.sources(order, x0, y0), along)
        for s, part in zip(group, np.split(wavelength, np.cumsum(lengths)[:-1])):
            profile = part.astype(np.float32)
            s.wavelength = np.ascontiguousarray(np.broadcast_to(
                profile[None, :] if dispaxis == 1 else profile[:, None], s.shape))


def cut(array, rows: slice, cols: slice):
    if array is None or np.size(array) == 0:
        return None
    return np.array(array[rows, cols], copy=True)


def extract(image, catalog, wavelength_range: dict, params: dict) -> GrismSlits:
    """The cut-outs of ``image`` (a CalImage with ``wcs`` and ``grism``)."""
    if params.get("grism_objects") not in (None, ""):
        raise WebbcalError("grism_objects", "precomputed grism objects are not supported; use the catalog")
    ids = selected_ids(catalog, params)
    boxes = grism_boxes(image, catalog, wavelength_range=wavelength_range,
                        half_height=params.get("wfss_extract_half_height"),
                        mmag_extract=params.get("wfss_mmag_extract"),
                        nbright=params.get("wfss_nbright"), source_ids=ids)
    if not boxes:
        raise WebbcalError(catalog.path, "no catalog source has a spectrum on this exposure "
                                         "(check the catalog, wfss_mmag_extract, source_ids)")
    dispaxis = image.grism.dispaxis
    slits = []
    for box in boxes:
        window = clip_box(box, image.shape)
        if window is None:
            continue
        rows, cols = window
        slits.append(GrismSlit(
            source_id=box.source_id, order=box.order, xstart=cols.start, ystart=rows.start,
            data=cut(image.data, rows, cols), err=cut(image.err, rows, cols), dq=cut(image.dq, rows, cols),
            var_poisson=cut(image.var_poisson, rows, cols), var_rnoise=cut(image.var_rnoise, rows, cols),
            var_flat=cut(image.var_flat, rows, cols), wavelength=None,
            source_xpos=box.x0, source_ypos=box.y0, source_ra=box.ra, source_dec=box.dec,
            is_extended=box.is_extended, dispaxis=dispaxis, partial=box.partial, bunit=image.bunit))
    if not slits:
        raise WebbcalError(catalog.path, "every grism box is empty after clipping to the detector")
    slit_wavelengths(image.grism, slits)
    specsys = image.meta.get("SPECSYS")
    for slit in slits:
        slit.wcs = slit_wcs(slit)
        if specsys:
            slit.keywords["SPECSYS"] = specsys
    tree = {k: v for k, v in (image.tree or {}).items() if k != "meta"}
    meta_tree = {k: v for k, v in ((image.tree or {}).get("meta") or {}).items() if k != "wcs"}
    if meta_tree:
        tree["meta"] = meta_tree
    result = GrismSlits(meta=image.meta.copy(), slits=slits, tree=tree)
    log.info("%d slits from %d sources", len(slits), len({s.source_id for s in slits}))
    return result


def apply(image, refs: dict, params: dict, catalog) -> GrismSlits:
    """Cut out every selected catalog source (see module doc); S_EXTR2D on the result."""
    if catalog is None:
        raise WebbcalError(image.path, "extract_2d for WFSS needs the direct-image source catalog")
    orders = parse_list(params.get("extract_orders"), int, "extract_orders")
    ranges = wavelength_ranges(refs["wavelengthrange"], image.meta.get("FILTER", ""), orders)
    slits = extract(image, catalog, ranges, params)
    slits.set_status(SPEC.status_key, "COMPLETE")
    return slits
