"""tweakreg: align the exposures of an association to each other and, optionally, to an
absolute reference catalog.

Stars are found once per exposure (``webbcal.image3.align.find_stars``, official
``tweakreg_catalog`` parameters) and kept as pixel positions; their sky positions through
the current WCSs are projected onto one tangent plane. Relative: the first group is the
reference and each following group is matched (2-D histogram + nearest neighbour) and
fitted to the growing reference catalog (``fitgeometry``); the fit becomes a correction
appended to every WCS of the group (``align.corrected_wcs``), and S_REGION is recomputed.
Too few stars or matches: a warning, that group's WCS is left unchanged (the official
behaviour: alignment skipped, not failed).

Absolute (``abs_refcat``, a catalog file): after the relative step, every exposure's stars
are matched to the catalog and one ``abs_fitgeometry`` fit moves all exposures together
(``webbcal.image3.absolute``); as in the official step, ``expand_refcat`` is then forced on
for the relative step and a single exposure group is aligned too. Differences from the
official: too few catalog stars or matches keep the relative alignment (the official then
drops it as well), and the catalog is cut to the exposures' footprints widened by
``abs_searchrad`` before ``abs_minobj`` is checked. The Gaia web services (``GAIADR3``
etc.) need a network and are not supported: give a file.

Not implemented in this build: user catalogs (``use_custom_catalogs``), saving the
per-exposure catalogs, ordering groups by overlap. Their parameters are declared (official
names and defaults) so configurations stay valid.
"""

from __future__ import annotations

import logging
from pathlib import Path

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
        Param("abs_refcat", str, "", "Absolute reference catalog file (RA/DEC columns, deg); '' for none."),
        Param("save_abs_catalog", bool, False, "Write the reference catalog used as fit_<name>_ref.ecsv."),
        Param("abs_minobj", int, 15, "Minimum number of matches for the absolute fit.", minimum=1),
        Param("abs_fitgeometry", str, "rshift", "Absolute fit geometry.", choices=align.GEOMETRIES),
        Param("abs_nclip", int, 3, "Clipping iterations of the absolute fit.", minimum=0),
        Param("abs_sigma", float, 3.0, "Clipping limit of the absolute fit, in fit rms.", minimum=0.0),
        Param("abs_searchrad", float, 6.0, "Search radius for the absolute offset, arcsec.", minimum=0.0),
        Param("abs_use2dhist", bool, True, "Find the absolute offset with a 2-D histogram."),
        Param("abs_separation", float, 1.0, "Minimum separation of catalog sources, arcsec.", minimum=0.0),
        Param("abs_tolerance", float, 0.7, "Absolute matching tolerance, arcsec.", minimum=0.0),
    ),
    doc="Align the exposures' WCSs to each other (and to an abs_refcat catalog) by matching stars.",
)


class StarPositions:
    """Pixel positions of each exposure's stars, found on first use and kept (a few kB)."""

    def __init__(self, exposures: list[Exposure], params: dict):
        self.exposures = exposures
        self.params = params
        self.pixels: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def sky(self, k: int, plane) -> np.ndarray:
        """(n, 2) tangent-plane positions (arcsec) through the exposure's current WCS."""
        if k not in self.pixels:
            data, dq = self.exposures[k].science()
            bad = bad_bits("~DO_NOT_USE+NON_SCIENCE")
            mask = ((dq & bad) != 0) | ~np.isfinite(data)
            x, y, _ = align.find_stars(data, mask, self.params)
            self.pixels[k] = (x, y)
            log.info("%s: %d stars", self.exposures[k].name, x.size)
        x, y = self.pixels[k]
        if x.size == 0:
            return np.empty((0, 2))
        ra, dec = self.exposures[k].wcs(x, y)
        ok = np.isfinite(ra) & np.isfinite(dec)
        return np.transpose(plane.project(np.asarray(ra)[ok], np.asarray(dec)[ok]))

    def group(self, members: list[int], plane) -> np.ndarray:
        points = [self.sky(k, plane) for k in members]
        return np.vstack(points) if points else np.empty((0, 2))


def update_s_region(exposure: Exposure) -> None:
    ra, dec = exposure.sky_corners()
    exposure.meta["S_REGION"] = "POLYGON ICRS  " + " ".join(
        f"{r % 360.0:.9f} {d:.9f}" for r, d in zip(ra, dec))


def apply(exposures: list[Exposure], params: dict, save_table=None) -> str:
    """Align ``exposures`` in place (their ``wcs`` and S_REGION); the step status.

    ``save_table(table, filename)`` writes the absolute reference catalog used when
    ``save_abs_catalog`` is set.
    """
    absolute = bool(params["abs_refcat"] and params["abs_refcat"].strip())
    if absolute and params["abs_separation"] <= np.sqrt(2) * params["abs_tolerance"]:
        raise WebbcalError("tweakreg", "abs_separation must be larger than sqrt(2) x abs_tolerance")
    if params["separation"] <= np.sqrt(2) * params["tolerance"]:
        raise WebbcalError("tweakreg", "separation must be larger than sqrt(2) x tolerance")
    members = groups(exposures)
    if len(members) < 2 and not absolute:
        log.warning("tweakreg: one exposure group, nothing to align; step skipped")
        return "SKIPPED"
    first = exposures[0]
    plane = align.TangentPlane(float(first.meta["RA_REF"]), float(first.meta["DEC_REF"]))
    stars = StarPositions(exposures, params)
    aligned = align_relative(exposures, members, stars, plane,
                             {**params, "expand_refcat": params["expand_refcat"] or absolute})
    if absolute:
        aligned += align_absolute(exposures, stars, plane, params, save_table)
    return "COMPLETE" if aligned else "SKIPPED"


def _pixel_scale(exposure: Exposure) -> float:
    return float(np.sqrt(float(exposure.meta.get("PIXAR_A2") or 0.001)))  # arcsec per pixel


def _apply_correction(exposures, indices, plane, matrix, shift, centre, name=None) -> None:
    for k in indices:
        exposures[k].wcs = align.corrected_wcs(exposures[k].wcs, plane, matrix, shift, centre)
        if name:
            exposures[k].wcs.name = name
        update_s_region(exposures[k])


def _describe(matrix, shift, rms) -> str:
    return (f"shift ({shift[0] * 1e3:.2f}, {shift[1] * 1e3:.2f}) mas, rotation "
            f"{np.degrees(np.arctan2(matrix[1, 0], matrix[0, 0])) * 3600:.3f}\", rms {rms * 1e3:.2f} mas")


def align_relative(exposures, members: dict, stars: StarPositions, plane, params: dict) -> int:
    """Each group after the first fitted to the (growing) reference catalog; groups aligned."""
    gids = list(members)
    if len(gids) < 2:
        return 0
    scale = _pixel_scale(exposures[0])
    reference = stars.group(members[gids[0]], plane)
    aligned = 0
    for gid in gids[1:]:
        points = stars.group(members[gid], plane)
        ri, qi = align.match(reference, points, params["searchrad"], params["tolerance"],
                             params["separation"], bin_size=scale, use2dhist=params["use2dhist"],
                             xoffset=params["xoffset"], yoffset=params["yoffset"])
        try:
            matrix, shift, centre, rms, used = align.fit(reference[ri], points[qi], params["fitgeometry"],
                                                         params["nclip"], params["sigma"], params["minobj"])
        except ValueError as exc:
            log.warning("tweakreg: group %s not aligned: %s", gid, exc)
            continue
        moved = np.abs(shift).max() + np.abs(matrix - np.eye(2)).max() * 100.0
        if moved >= 2 * (params["searchrad"] + params["tolerance"]):
            log.warning("tweakreg: group %s correction of %.2f\" rejected as too large", gid, moved)
            continue
        _apply_correction(exposures, members[gid], plane, matrix, shift, centre)
        if params["expand_refcat"]:
            corrected = (points - centre) @ matrix.T + centre + shift
            unmatched = np.setdiff1d(np.arange(len(points)), qi)
            reference = np.vstack([reference, corrected[unmatched]])
        aligned += 1
        log.info("tweakreg: group %s: %d matches, %s", gid, used.sum(), _describe(matrix, shift, rms))
    return aligned


def align_absolute(exposures, stars: StarPositions, plane, params: dict, save_table=None) -> int:
    """All exposures fitted as one to the ``abs_refcat`` catalog; 1 if aligned, else 0."""
    from astropy.table import Table

    from webbcal.image3 import absolute

    path = params["abs_refcat"].strip()
    ra, dec = absolute.read_reference_catalog(path)
    reference = np.transpose(plane.project(ra, dec)) if ra.size else np.empty((0, 2))
    per_exposure = [stars.sky(k, plane) for k in range(len(exposures))]
    corners = np.vstack([_footprint(e, plane) for e in exposures])
    near = absolute.within(reference, corners, params["abs_searchrad"])
    if save_table is not None and params["save_abs_catalog"]:
        name = Path(path).name.rsplit(".", 1)[0].lower()
        save_table(Table({"RA": ra[near], "DEC": dec[near]}, units={"RA": "deg", "DEC": "deg"}),
                   f"fit_{name}_ref.ecsv")
    if near.sum() < params["abs_minobj"]:
        log.warning("tweakreg: %d reference catalog sources over the exposures, fewer than abs_minobj=%d; "
                    "absolute alignment skipped", near.sum(), params["abs_minobj"])
        return 0
    ref_xy, measured = absolute.catalog_pairs(
        reference[near], per_exposure, params["abs_searchrad"], params["abs_tolerance"],
        params["abs_separation"], bin_size=_pixel_scale(exposures[0]), use2dhist=params["abs_use2dhist"])
    try:
        matrix, shift, centre, rms, used = align.fit(ref_xy, measured, params["abs_fitgeometry"],
                                                     params["abs_nclip"], params["abs_sigma"],
                                                     params["abs_minobj"])
    except ValueError as exc:
        log.warning("tweakreg: absolute alignment to %s skipped: %s", path, exc)
        return 0
    _apply_correction(exposures, range(len(exposures)), plane, matrix, shift, centre,
                      name=f"FIT-LVL3-{Path(path).name}")
    log.info("tweakreg: aligned to %s: %d matches, %s", Path(path).name, used.sum(),
             _describe(matrix, shift, rms))
    return 1


def _footprint(exposure: Exposure, plane) -> np.ndarray:
    """Tangent-plane corners (arcsec) of an exposure through its current WCS."""
    return np.transpose(plane.project(*exposure.sky_corners()))
