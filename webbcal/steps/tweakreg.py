"""tweakreg: align the exposures of an association to each other (relative astrometry).

Per exposure group, stars are found (``webbcal.image3.align.find_stars``, official
``tweakreg_catalog`` parameters); their sky positions through the current WCS are
projected onto one tangent plane; the first group is the reference and each following
group is matched (2-D histogram + nearest neighbour) and fitted to the growing reference
catalog (``fitgeometry``); the fit becomes a correction appended to every WCS of the group
(``align.corrected_wcs``), and S_REGION is recomputed. Too few stars or matches: a warning,
that group's WCS is left unchanged (the official behaviour: alignment skipped, not failed).

Not implemented in this build: absolute alignment (``abs_refcat``), ``expand_refcat``
ordering by overlap, user catalogs, saving catalogs. The parameters are declared
(official names and defaults) so configurations stay valid.
"""

from __future__ import annotations

import logging

import numpy as np

from webbcal.errors import WebbcalError
from webbcal.image3 import align
from webbcal.image3.bits import bad_bits
from webbcal.image3.exposures import Exposure, groups
from webbcal.steps.base import Param, StepSpec

log = logging.getLogger("webbcal.tweakreg")

SPEC = StepSpec(
    name="tweakreg",
    stage="image3",
    status_key="S_TWKREG",
    params=(
        Param("save_catalogs", bool, False, "Write the per-exposure source catalogs (not implemented)."),
        Param("use_custom_catalogs", bool, False, "Use user catalogs (not implemented)."),
        Param("catalog_format", str, "ecsv", "Format of saved catalogs.", choices=("ecsv", "fits")),
        Param("catfile", str, "", "File listing user catalogs (not implemented)."),
        Param("starfinder", str, "iraf", "Star finder.", choices=("iraf", "dao")),
        Param("snr_threshold", float, 10.0, "Detection threshold, in background rms.", minimum=0.0),
        Param("kernel_fwhm", float, 2.5, "Star FWHM for the finder, pixels.", minimum=0.0),
        Param("bkg_boxsize", int, 400, "Background mesh box size, pixels.", minimum=1),
        Param("minsep_fwhm", float, 0.0, "Minimum separation of stars, in FWHM.", minimum=0.0),
        Param("sigma_radius", float, 1.5, "Finder kernel truncation radius, in sigma.", minimum=0.0),
        Param("sharplo", float, 0.5, "Lower sharpness bound."),
        Param("sharphi", float, 2.0, "Upper sharpness bound."),
        Param("roundlo", float, 0.0, "Lower roundness bound."),
        Param("roundhi", float, 0.2, "Upper roundness bound."),
        Param("brightest", int, 200, "Keep the brightest N stars per exposure.", minimum=1),
        Param("peakmax", float, None, "Reject stars with a peak above this.", nullable=True),
        Param("enforce_user_order", bool, False, "Align in input order (webbcal always does)."),
        Param("expand_refcat", bool, False, "Add unmatched stars to the reference catalog."),
        Param("minobj", int, 15, "Minimum number of matched stars for a fit.", minimum=1),
        Param("fitgeometry", str, "rshift", "Fit geometry.", choices=align.GEOMETRIES),
        Param("nclip", int, 3, "Number of clipping iterations of the fit.", minimum=0),
        Param("sigma", float, 3.0, "Clipping limit, in fit rms.", minimum=0.0),
        Param("searchrad", float, 2.0, "Search radius for the initial offset, arcsec.", minimum=0.0),
        Param("use2dhist", bool, True, "Find the initial offset with a 2-D histogram."),
        Param("separation", float, 1.0, "Minimum separation of sources in a catalog, arcsec.", minimum=0.0),
        Param("tolerance", float, 0.7, "Matching tolerance, arcsec.", minimum=0.0),
        Param("xoffset", float, 0.0, "Initial x offset, arcsec (use2dhist false).", nullable=False),
        Param("yoffset", float, 0.0, "Initial y offset, arcsec (use2dhist false).", nullable=False),
        Param("abs_refcat", str, "", "Absolute reference catalog (not implemented)."),
    ),
    doc="Align the exposures' WCSs to each other by matching their stars.",
)


def group_stars(exposures: list[Exposure], members: list[int], plane, params: dict) -> np.ndarray:
    """Tangent-plane (arcsec) positions of the stars of one group, through the current WCSs."""
    points = []
    bad = bad_bits("~DO_NOT_USE+NON_SCIENCE")
    for k in members:
        image = exposures[k].load()
        mask = ((image.dq & bad) != 0) | ~np.isfinite(image.data)
        x, y, _ = align.find_stars(image.data, mask, params)
        if x.size:
            ra, dec = image.wcs(x, y)
            ok = np.isfinite(ra) & np.isfinite(dec)
            points.append(np.transpose(plane.project(np.asarray(ra)[ok], np.asarray(dec)[ok])))
        log.info("%s: %d stars", exposures[k].name, x.size)
    return np.vstack(points) if points else np.empty((0, 2))


def update_s_region(exposure: Exposure) -> None:
    from webbcal.image3.footprints import box_edges

    ny = int(exposure.meta.get("SUBSIZE2") or 2048)
    nx = int(exposure.meta.get("SUBSIZE1") or 2048)
    x, y = box_edges(exposure.wcs, (ny, nx), step=1e9)  # the four corners
    ra, dec = exposure.wcs(x, y, with_bounding_box=False)
    exposure.meta["S_REGION"] = "POLYGON ICRS  " + " ".join(
        f"{r % 360.0:.9f} {d:.9f}" for r, d in zip(np.asarray(ra), np.asarray(dec)))


def apply(exposures: list[Exposure], params: dict) -> str:
    if params["abs_refcat"]:
        raise WebbcalError("tweakreg.abs_refcat", "absolute alignment is not implemented yet")
    members = groups(exposures)
    if len(members) < 2:
        log.warning("tweakreg: one exposure group, nothing to align; step skipped")
        return "SKIPPED"
    if params["separation"] <= np.sqrt(2) * params["tolerance"]:
        raise WebbcalError("tweakreg", "separation must be larger than sqrt(2) x tolerance")
    first = exposures[0]
    plane = align.TangentPlane(float(first.meta["RA_REF"]), float(first.meta["DEC_REF"]))
    scale = float(np.sqrt(float(first.meta.get("PIXAR_A2") or 0.001)))  # arcsec per pixel
    gids = list(members)
    reference = group_stars(exposures, members[gids[0]], plane, params)
    aligned = 0
    for gid in gids[1:]:
        stars = group_stars(exposures, members[gid], plane, params)
        ri, qi = align.match(reference, stars, params["searchrad"], params["tolerance"],
                             params["separation"], bin_size=scale, use2dhist=params["use2dhist"],
                             xoffset=params["xoffset"], yoffset=params["yoffset"])
        try:
            matrix, shift, centre, rms, used = align.fit(reference[ri], stars[qi], params["fitgeometry"],
                                                         params["nclip"], params["sigma"], params["minobj"])
        except ValueError as exc:
            log.warning("tweakreg: group %s not aligned: %s", gid, exc)
            continue
        moved = np.abs(shift).max() + np.abs(matrix - np.eye(2)).max() * 100.0
        if moved >= 2 * (params["searchrad"] + params["tolerance"]):
            log.warning("tweakreg: group %s correction of %.2f\" rejected as too large", gid, moved)
            continue
        for k in members[gid]:
            exposures[k].wcs = align.corrected_wcs(exposures[k].wcs, plane, matrix, shift, centre)
            update_s_region(exposures[k])
        if params["expand_refcat"]:
            corrected = (stars - centre) @ matrix.T + centre + shift
            unmatched = np.setdiff1d(np.arange(len(stars)), qi)
            reference = np.vstack([reference, corrected[unmatched]])
        aligned += 1
        log.info("tweakreg: group %s: %d matches, shift (%.2f, %.2f) mas, rotation %.3f\", rms %.2f mas",
                 gid, used.sum(), shift[0] * 1e3, shift[1] * 1e3,
                 np.degrees(np.arctan2(matrix[1, 0], matrix[0, 0])) * 3600, rms * 1e3)
    return "COMPLETE" if aligned else "SKIPPED"
