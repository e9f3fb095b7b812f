"""The source catalog of a mosaic (``jwst.source_catalog``, spec image2_image3_wfss.md §3.6).

photutils is the engine: ``Background2D`` for the background and its rms, ``SourceFinder``
(segmentation + deblending) on the kernel-convolved image, ``SourceCatalog`` for centroids,
shapes and isophotal fluxes, ``aperture_photometry`` for the three encircled-energy
apertures of the APCORR reference and the local sky annulus. Fluxes are in Jy
(MJy/sr × 1e6 × PIXAR_SR); AB magnitudes ``−2.5 log10(F) + 8.9``; Vega = AB − offset.

Positions (``xcentroid``, ``sky_centroid``, the aperture centres) are windowed centroids
(``centroids``), not the official isophotal moments. A mosaic without sources gets an
``empty_catalog`` with every column (the official writes no catalog then).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import numpy as np
from astropy import units as u
from astropy.table import QTable

log = logging.getLogger("webbcal.source_catalog")

FALLBACK_RADII = (1.0, 2.0, 3.0)   # pixels, without an APCORR reference (official fallback)
FALLBACK_ANNULUS = (5.0, 10.0)


@dataclass
class ApertureParams:
    ees: tuple[int, int, int]
    radii: tuple[float, float, float]      # output pixels
    corrections: tuple[float, float, float]
    bkg_inner: float
    bkg_outer: float


def aperture_params(apcorr_table, filter_name: str, pupil: str, ees, pixel_scale_ratio: float) -> ApertureParams:
    """Radii and corrections of the three EEs from the APCORR table (radii in native pixels)."""
    ees = tuple(int(e) for e in ees)
    if apcorr_table is None:
        return ApertureParams(ees, FALLBACK_RADII, (1.0, 1.0, 1.0), *FALLBACK_ANNULUS)

    def text(v):
        return (v.decode() if isinstance(v, bytes) else str(v)).strip().upper()

    rows = [r for r in apcorr_table if text(r["filter"]) == filter_name.upper()
            and text(r["pupil"]) == (pupil or "CLEAR").upper()]
    if not rows:
        raise ValueError(f"APCORR has no row for {filter_name}/{pupil}")
    radii, corrections = [], []
    for ee in ees:
        match = [r for r in rows if int(round(float(r["eefraction"]) * 100)) == ee]
        if not match:
            raise ValueError(f"APCORR has no encircled energy {ee}% for {filter_name}")
        radii.append(float(match[0]["radius"]) / pixel_scale_ratio)
        corrections.append(float(match[0]["apcorr"]))
    skyin = {float(r["skyin"]) for r in rows}
    skyout = {float(r["skyout"]) for r in rows}
    if len(skyin) != 1 or len(skyout) != 1:
        raise ValueError("APCORR sky annulus radii are not unique")
    return ApertureParams(ees, tuple(radii), tuple(corrections),
                          skyin.pop() / pixel_scale_ratio, skyout.pop() / pixel_scale_ratio)


def background(data, mask, box: int):
    """Background2D (3σ-clipped median, 3×3 filter); one box over the image if that fails."""
    from astropy.stats import SigmaClip
    from photutils.background import Background2D, MedianBackground

    ny, nx = data.shape
    size = (min(box, ny), min(box, nx))
    kwargs = dict(filter_size=(3, 3), sigma_clip=SigmaClip(sigma=3.0), bkg_estimator=MedianBackground(),
                  coverage_mask=mask)
    try:
        return Background2D(data, size, **kwargs)
    except ValueError:
        return Background2D(data, (ny, nx), exclude_percentile=100.0, **kwargs)


def full_size(bkg, mesh) -> np.ndarray:
    """``bkg.background`` / ``bkg.background_rms`` for ``mesh``, without their cost.

    photutils zooms the few-box mesh to the padded image with a cubic spline (grid mode,
    mirror edges), crops, clips to the mesh range and fills the coverage mask. The zoom is
    separable and linear, so it equals ``Zy @ mesh @ Zx.T`` with the 1-D zoom operators Z
    (the zoom of each unit vector): identical to 1e-15, and ~100× faster on a full frame
    (1.9 s per map on a 2k mosaic with 1000-pixel boxes).
    """
    from scipy.ndimage import zoom

    mesh = np.asarray(mesh, float)
    ny, nx = bkg._interp_kwargs["shape"]
    if np.ptp(mesh) == 0:
        image = np.full((ny, nx), mesh.min())
    else:
        by, bx = bkg.box_size

        def operator(n, factor, keep):
            eye = np.eye(n)
            return np.stack([zoom(eye[j], factor, order=3, mode="reflect", grid_mode=True)
                             for j in range(n)], axis=1)[:keep]

        image = operator(mesh.shape[0], by, ny) @ mesh @ operator(mesh.shape[1], bx, nx).T
        np.clip(image, mesh.min(), mesh.max(), out=image)
    if bkg.coverage_mask is not None:
        image[bkg.coverage_mask] = bkg.fill_value
    return image


def abmag(flux, err):
    flux = np.asarray(flux, float)
    err = np.asarray(err, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        mag = np.where(flux > 0, -2.5 * np.log10(flux) + 8.9, np.nan)
        mag_err = np.where(flux > 0, 2.5 * np.log10(1.0 + err / flux), np.nan)
    return mag, mag_err


def local_background(data, positions, inner, outer, mask):
    """3σ-clipped median of the annulus and sqrt(π/(2N))·std per source."""
    from astropy.stats import sigma_clipped_stats
    from photutils.aperture import CircularAnnulus

    annulus = CircularAnnulus(positions, inner, outer)
    values = np.full(len(positions), np.nan)
    errors = np.full(len(positions), np.nan)
    masked = np.where(mask, np.nan, data)  # once, not per source
    for k, aperture_mask in enumerate(annulus.to_mask(method="center")):
        pixels = aperture_mask.get_values(masked)
        pixels = pixels[np.isfinite(pixels)]
        if pixels.size:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                _, median, std = sigma_clipped_stats(pixels, sigma=3.0)
            kept = pixels[np.abs(pixels - median) <= 3 * std] if std > 0 else pixels
            values[k] = median
            errors[k] = np.sqrt(np.pi / (2 * max(kept.size, 1))) * std
    return values, errors


def dao_shape(data, convolved, positions, kernel_fwhm: float):
    """DAOFind-style sharpness and roundness of each source (photutils definitions)."""
    sigma = kernel_fwhm * 0.4247
    radius = max(2.0, 1.5 * sigma)
    half = int(max(2, 1.5 * sigma))
    yy, xx = np.mgrid[-half:half + 1, -half:half + 1]
    circle = (xx**2 + yy**2) <= radius**2
    gauss = np.exp(-(xx**2 + yy**2) / (2 * sigma**2)) * circle
    npix = circle.sum()
    kernel = np.where(circle, (gauss - gauss[circle].sum() / npix) / (np.sum(gauss[circle]**2)
                                                                        - gauss[circle].sum()**2 / npix), 0)
    sharp = np.full(len(positions), np.nan)
    round_ = np.full(len(positions), np.nan, dtype=np.float32)
    ny, nx = data.shape
    quadrant = np.sign(xx) * np.sign(yy)  # +1: Q1, Q3; −1: Q2, Q4
    for k, (x, y) in enumerate(positions):
        if not (np.isfinite(x) and np.isfinite(y)):
            continue
        xi, yi = int(round(x)), int(round(y))
        if xi - half < 0 or yi - half < 0 or xi + half >= nx or yi + half >= ny:
            continue
        cut = data[yi - half:yi + half + 1, xi - half:xi + half + 1]
        if not np.all(np.isfinite(cut)):
            continue
        conv_peak = np.sum(cut * kernel)
        others = circle.copy()
        others[half, half] = False
        if conv_peak != 0:
            sharp[k] = (cut[half, half] - cut[others].mean()) / conv_peak
        conv = convolved[yi - half:yi + half + 1, xi - half:xi + half + 1] * circle
        conv[half, half] = 0
        total = np.abs(conv).sum()
        if total > 0:
            round_[k] = 2 * np.sum(-quadrant * conv) / total
    return sharp, round_


def make_catalog(sci, err, wht, *, pixar_sr: float, wcs, params: dict, aper: ApertureParams,
                 abvega_offset: float):
    """(QTable, segmentation labels) of the mosaic; (None, None) when nothing is found."""
    from astropy.convolution import Gaussian2DKernel, convolve
    from photutils.aperture import CircularAperture, aperture_photometry
    from photutils.segmentation import SourceCatalog, SourceFinder

    to_jy = 1e6 * pixar_sr
    coverage = ~np.isfinite(err) | ~np.isfinite(sci) | (wht == 0)
    data = np.where(coverage, 0.0, sci.astype(np.float64) * to_jy)
    error = np.where(coverage, 0.0, err.astype(np.float64) * to_jy)
    bkg = background(data, coverage, params["bkg_boxsize"])
    threshold = params["snr_threshold"] * full_size(bkg, bkg.background_rms_mesh)
    subtracted = data - full_size(bkg, bkg.background_mesh)
    kernel = Gaussian2DKernel(params["kernel_fwhm"] / (2 * np.sqrt(2 * np.log(2))))
    kernel.normalize()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NaN inside large uncovered areas: set to 0 below
        convolved = convolve(subtracted, kernel, mask=coverage, normalize_kernel=True)
    convolved = np.where(np.isfinite(convolved) & ~coverage, convolved, 0.0)
    finder = SourceFinder(n_pixels=params["npixels"], connectivity=params["connectivity"],
                          deblend=params["deblend"], n_levels=params["nlevels"], contrast=params["contrast"],
                          mode=params["multithresh_mode"], relabel=True, progress_bar=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        segm = finder(convolved, threshold, mask=coverage)
    if segm is None or segm.n_labels == 0:
        return None, None
    kron = params.get("kron_params")
    kron = (2.5, 1.4, 0.0) if not kron else tuple(float(v) for v in str(kron).replace(",", " ").split())
    cat = SourceCatalog(subtracted, segm, mask=coverage, convolved_data=convolved, error=error, wcs=wcs,
                        local_bkg_width=params["localbkg_width"],
                        aperture_mask_method=params["apermask_method"], kron_params=kron, progress_bar=False)
    x, y = centroids(cat)
    positions = np.transpose([np.where(np.isfinite(x), x, -1000.0), np.where(np.isfinite(y), y, -1000.0)])

    table = QTable()
    table["label"] = np.asarray(cat.label, np.int32)
    table["xcentroid"] = x
    table["ycentroid"] = y
    table["sky_centroid"] = wcs.pixel_to_world(x, y)
    bkg_flux, bkg_err = local_background(data, positions, aper.bkg_inner, aper.bkg_outer, coverage)
    table["aper_bkg_flux"] = bkg_flux * u.Jy
    table["aper_bkg_flux_err"] = bkg_err * u.Jy
    fluxes = {}
    for ee, radius in zip(aper.ees, aper.radii):
        aperture = CircularAperture(positions, r=radius)
        phot = aperture_photometry(np.where(coverage, np.nan, data), aperture,
                                   error=np.where(coverage, np.nan, error), mask=coverage)
        flux = np.asarray(phot["aperture_sum"], float) - bkg_flux * aperture.area
        flux_err = np.asarray(phot["aperture_sum_err"], float)
        bad = positions[:, 0] == -1000.0
        flux[bad] = np.nan
        flux_err[bad] = np.nan
        fluxes[ee] = (flux, flux_err)
        table[f"aper{ee}_flux"] = flux * u.Jy
        table[f"aper{ee}_flux_err"] = flux_err * u.Jy
    largest = aper.ees[-1]
    total = aper.corrections[-1] * fluxes[largest][0]
    total_err = aper.corrections[-1] * fluxes[largest][1]
    table["aper_total_flux"] = total * u.Jy
    table["aper_total_flux_err"] = total_err * u.Jy
    named = [(f"aper{ee}", *fluxes[ee]) for ee in aper.ees] + [("aper_total", total, total_err)]
    for system, offset in (("abmag", 0.0), ("vegamag", abvega_offset)):
        for prefix, flux, flux_err in named:
            mag, mag_err = abmag(flux, flux_err)
            table[f"{prefix}_{system}"] = mag - offset  # unitless, as the official catalog
            table[f"{prefix}_{system}_err"] = mag_err
    e1, e2, e3 = aper.ees
    with np.errstate(invalid="ignore", divide="ignore"):
        ci = {(e2, e1): fluxes[e2][0] / fluxes[e1][0], (e3, e2): fluxes[e3][0] / fluxes[e2][0],
              (e3, e1): fluxes[e3][0] / fluxes[e1][0]}
    for (a, b), value in ci.items():
        table[f"CI_{a}_{b}"] = value
    table["is_extended"] = (ci[(e2, e1)] > params["ci1_star_threshold"]) & \
                           (ci[(e3, e2)] > params["ci2_star_threshold"])
    sharp, roundness = dao_shape(data, convolved, positions, params["kernel_fwhm"])
    table["sharpness"] = sharp
    table["roundness"] = roundness
    table["nn_label"], table["nn_dist"] = nearest_neighbours(x, y, table["label"])
    table["isophotal_flux"] = np.asarray(cat.segment_flux, float) * u.Jy
    table["isophotal_flux_err"] = np.asarray(cat.segment_flux_err, np.float32) * u.Jy
    for system, offset in (("abmag", 0.0), ("vegamag", abvega_offset)):
        mag, mag_err = abmag(cat.segment_flux, cat.segment_flux_err)
        table[f"isophotal_{system}"] = mag - offset
        table[f"isophotal_{system}_err"] = mag_err
    table["isophotal_area"] = np.asarray(cat.area.value, float) * u.pix**2
    table["semimajor_sigma"] = np.asarray(cat.semimajor_axis.value, float) * u.pix
    table["semiminor_sigma"] = np.asarray(cat.semiminor_axis.value, float) * u.pix
    table["ellipticity"] = np.asarray(cat.ellipticity.value, float) * u.dimensionless_unscaled
    orientation = np.asarray(cat.orientation.to_value(u.deg), float) % 360.0
    table["orientation"] = orientation * u.deg
    table["sky_orientation"] = ((180.0 - north_angle(wcs, sci.shape) + orientation) % 360.0) * u.deg
    for corner in ("ll", "ul", "lr", "ur"):
        table[f"sky_bbox_{corner}"] = getattr(cat, f"sky_bbox_{corner}")
    set_formats(table)
    return table, segm.data.astype(np.uint32)


def centroids(cat) -> tuple[np.ndarray, np.ndarray]:
    """Windowed centroids (SExtractor XWIN), the isophotal moment centroid where those fail.

    The official catalog gives the moment centroid of the segment; on the simulator's
    mosaics the windowed one is closer to the truth for unsaturated stars (0.71 against
    1.02 mas rms on the demo set), because the segment's moment weights the noisy,
    asymmetrically cut isophote edge as much as the core.
    """
    x = np.asarray(cat.x_centroid_win, float)
    y = np.asarray(cat.y_centroid_win, float)
    moment_x = np.asarray(cat.x_centroid, float)
    moment_y = np.asarray(cat.y_centroid, float)
    failed = ~(np.isfinite(x) & np.isfinite(y))
    return np.where(failed, moment_x, x), np.where(failed, moment_y, y)


def empty_catalog(ees) -> QTable:
    """The catalog of a mosaic without sources: every column, dtype and unit, no rows."""
    from astropy.coordinates import SkyCoord

    def sky():
        return SkyCoord([], [], unit="deg")

    e1, e2, e3 = ees
    table = QTable()
    table["label"] = np.zeros(0, np.int32)
    table["xcentroid"] = np.zeros(0)
    table["ycentroid"] = np.zeros(0)
    table["sky_centroid"] = sky()
    for name in ("aper_bkg_flux", "aper_bkg_flux_err"):
        table[name] = np.zeros(0) * u.Jy
    prefixes = [f"aper{ee}" for ee in ees] + ["aper_total"]
    for prefix in prefixes:
        table[f"{prefix}_flux"] = np.zeros(0) * u.Jy
        table[f"{prefix}_flux_err"] = np.zeros(0) * u.Jy
    for system in ("abmag", "vegamag"):
        for prefix in prefixes:
            table[f"{prefix}_{system}"] = np.zeros(0)
            table[f"{prefix}_{system}_err"] = np.zeros(0)
    for a, b in ((e2, e1), (e3, e2), (e3, e1)):
        table[f"CI_{a}_{b}"] = np.zeros(0)
    table["is_extended"] = np.zeros(0, bool)
    table["sharpness"] = np.zeros(0)
    table["roundness"] = np.zeros(0, np.float32)
    table["nn_label"] = np.zeros(0, np.int32)
    table["nn_dist"] = np.zeros(0) * u.pix
    table["isophotal_flux"] = np.zeros(0) * u.Jy
    table["isophotal_flux_err"] = np.zeros(0, np.float32) * u.Jy
    for system in ("abmag", "vegamag"):
        table[f"isophotal_{system}"] = np.zeros(0)
        table[f"isophotal_{system}_err"] = np.zeros(0)
    table["isophotal_area"] = np.zeros(0) * u.pix**2
    table["semimajor_sigma"] = np.zeros(0) * u.pix
    table["semiminor_sigma"] = np.zeros(0) * u.pix
    table["ellipticity"] = np.zeros(0) * u.dimensionless_unscaled
    table["orientation"] = np.zeros(0) * u.deg
    table["sky_orientation"] = np.zeros(0) * u.deg
    for corner in ("ll", "ul", "lr", "ur"):
        table[f"sky_bbox_{corner}"] = sky()
    set_formats(table)
    return table


def set_formats(table) -> None:
    """Number formats of the official catalog: centroids and CI .4f, fluxes .6e, the rest .6f."""
    for name in table.colnames:
        if name.startswith("sky_") and name != "sky_orientation":
            continue
        if name in ("xcentroid", "ycentroid") or name.startswith("CI_"):
            table[name].info.format = ".4f"
        elif "flux" in name:
            table[name].info.format = ".6e"
        elif table[name].dtype.kind == "f":
            table[name].info.format = ".6f"


def nearest_neighbours(x, y, labels):
    from scipy.spatial import cKDTree

    n = len(x)
    if n < 2:
        return np.full(n, -1, np.int32), np.full(n, np.nan) * u.pix
    points = np.transpose([np.nan_to_num(x, nan=-1e6), np.nan_to_num(y, nan=-1e6)])
    dist, index = cKDTree(points).query(points, k=2)
    return np.asarray(labels)[index[:, 1]].astype(np.int32), dist[:, 1] * u.pix


def north_angle(wcs, shape) -> float:
    """Angle (deg) from +x to North at the image centre."""
    ny, nx = shape
    x0, y0 = (nx - 1) / 2.0, (ny - 1) / 2.0
    ra, dec = wcs(x0, y0, with_bounding_box=False)
    x1, y1 = wcs.invert(ra, dec + 1.0 / 3600.0, with_bounding_box=False)
    return float(np.degrees(np.arctan2(y1 - y0, x1 - x0)))
