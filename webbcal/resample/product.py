"""The i2d Product of a finished resampling (spec §3.4 "Output i2d")."""

from __future__ import annotations

import numpy as np
from astropy.io import fits

from webbcal.resample.drizzler import ResampleResult
from webbcal.resample.grid import OutputGrid

# Keywords of the input's detector WCS that no longer describe the resampled image.
DROPPED = ("V2_REF", "V3_REF", "RA_REF", "DEC_REF", "ROLL_REF", "V3I_YANG", "VPARITY",
           "WCSNAME", "LONPOLE", "LATPOLE", "SIPMXERR", "SIPIVERR", "CD1_1", "CD1_2", "CD2_1", "CD2_2",
           "A_ORDER", "B_ORDER", "AP_ORDER", "BP_ORDER", "S_REGION", "BKGLEVEL", "BKGSUB")
ARCSEC_PER_RAD = float(np.rad2deg(3600.0))  # as jwst resample converts arcsec² → sr


def _is_sip(key: str) -> bool:
    head, _, tail = key.partition("_")
    return head in ("A", "B", "AP", "BP") and tail.replace("_", "").isdigit()


def i2d_meta(first_meta: fits.Header, grid: OutputGrid, result: ResampleResult, *, pixfrac: float,
             weight_type, pixel_scale_ratio: float, s_region: str | None) -> fits.Header:
    meta = fits.Header(first_meta, copy=True)
    for key in list(meta.keys()):
        if key in DROPPED or _is_sip(key):
            meta.remove(key, remove_all=True)
    for key, value in grid.fits_keywords().items():
        meta[key] = value
    a2 = (grid.pscale * 3600.0) ** 2
    meta["PIXAR_A2"] = a2
    meta["PIXAR_SR"] = a2 / ARCSEC_PER_RAD**2
    meta["NDRIZ"] = len(result.group_ids)
    meta["RESWHT"] = str(weight_type)
    meta["PIXFRAC"] = float(pixfrac)
    meta["PXSCLRT"] = float(pixel_scale_ratio)
    for key, value in result.times.items():
        if value is not None:
            meta[key] = value
    if s_region:
        meta["S_REGION"] = s_region
    meta["S_RESAMP"] = "COMPLETE"
    return meta


def output_s_region(grid: OutputGrid, input_regions: list[str]) -> str:
    """The input's own S_REGION for one input; else the output grid's edges.

    (jwst takes the shapely union of the input polygons clipped to the output footprint;
    for one exposure that is its polygon up to sub-pixel clipping at the grid edge.)
    """
    if len(input_regions) == 1 and input_regions[0]:
        return input_regions[0]
    footprint = grid.wcs.footprint(center=False)
    return "POLYGON ICRS  " + " ".join(f"{ra % 360.0:.9f} {dec:.9f}" for ra, dec in footprint)


def i2d_product(result: ResampleResult, grid: OutputGrid, first_meta: fits.Header, *, bunit: str,
                pixfrac: float, weight_type, pixel_scale_ratio: float, report_var: bool = True,
                input_regions: list[str] | None = None, tree_meta: dict | None = None):
    from webbcal.io.product import Product

    arrays = {"SCI": result.data.astype(np.float32, copy=False)}
    ext_meta = {"SCI": {"BUNIT": bunit}}
    if result.err is not None:
        arrays["ERR"] = result.err
        ext_meta["ERR"] = {"BUNIT": bunit}
    if result.con is not None:
        arrays["CON"] = result.con.astype(np.int32, copy=False)
    arrays["WHT"] = result.wht.astype(np.float32, copy=False)
    if result.dq is not None:
        arrays["DQ"] = result.dq
    if report_var:
        for name, array in result.variances.items():
            arrays[name.upper()] = array
            ext_meta[name.upper()] = {"BUNIT": f"({bunit})**2"}
    meta = i2d_meta(first_meta, grid, result, pixfrac=pixfrac, weight_type=weight_type,
                    pixel_scale_ratio=pixel_scale_ratio,
                    s_region=output_s_region(grid, list(input_regions or [])))
    tree = {"meta": {**(tree_meta or {}), "wcs": grid.wcs}}
    return Product(model="ImageModel", meta=meta, arrays=arrays, ext_meta=ext_meta, tree=tree)
