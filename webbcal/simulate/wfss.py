"""NIRCam wide-field slitless spectroscopy: references, dispersed count-rate images, exposures.

* ``write_wfss_references``: SPECWCS (one per filter and grism), WAVELENGTHRANGE, BKG
  (dispersed-sky shape per filter and grism) and the NRC_WFSS PHOTOM table, all consistent
  with the grism models of ``webbcal.simulate.grism``: the official ``assign_wcs`` built on
  them reproduces the simulator's traces, and the photom conversion (photmjsr x relresponse /
  dispersion) turns the dispersed count rates back into the true f_nu.
* ``disperse_sources`` / ``render_dispersed_rate``: the count-rate image (DN/s) of every
  source dispersed in orders +1 and +2 plus the scaled WFSS background, with truth.
* ``simulate_wfss``: the raw grism and direct-image exposures of one WFSS observation, their
  references, associations (spec2 paired with the direct image's Level-3 products) and truth.

Dispersion of a source is a convolution: its direct-image profile (a pixel stamp on the
detector grid) convolved with a kernel that holds the source's spectrum laid along the trace
(``f_nu * S * dlambda`` deposited bilinearly every 1/``samples_per_pixel`` pixel). The trace
shape is taken at the source centre; across a stamp the field dependence is < 0.01 px.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from astropy.io import fits
from astropy.table import Table, vstack
from scipy.signal import fftconvolve

from webbcal import dqflags
from webbcal.errors import WebbcalError
from webbcal.io import Product, write_product
from webbcal.io.atomic import atomic_path, atomic_write_text
from webbcal.refs.formats import nircam_module_channel, write_reference
from webbcal.simulate import program as prog
from webbcal.simulate import scene as scenemod
from webbcal.simulate.detector import ExposureSetup, make_detector_state, simulate_ramps
from webbcal.simulate.grism import FIELD_CENTRE, LW_FILTERS, LW_PIXAR_SR, GrismModel, lw_grism_model
from webbcal.simulate.psf import add_point_source, psf_for, sersic_bn
from webbcal.simulate.readout import ExposureTiming, read_pattern, subarray
from webbcal.simulate.references import ReferenceWriter, pixar, write_all_references
from webbcal.wcs.apertures import aperture
from webbcal.wcs.distortion import detector_to_v2v3_model, filteroffset_rows
from webbcal.wcs.pointing import detector_to_world, v2v3_to_sky, world_to_detector

log = logging.getLogger("webbcal.simulate.wfss")

FULL_SHAPE = (2048, 2048)
REFPIX_BORDER = 4  # reference pixels around a full-frame detector, never illuminated
USEAFTER = "2022-01-01T00:00:00"
# Extent of the grism field along the dispersion direction beyond the detector edges [pixel]:
# the pick-off mirror passes sky well beyond the detector on the side the spectra come from.
FIELD_BEYOND = (1000.0, 300.0)
ARCSEC_PER_DEG = 3600.0
# PSF stand-ins for filters the PSF model does not tabulate.
PSF_PROXY = {"F322W2": "F356W"}


# ---------------------------------------------------------------------------------------
# sensitivity and background


def photom_rows(model: GrismModel, pixar_sr: float = LW_PIXAR_SR, floor: float = 0.02) -> list[dict]:
    """NRC_WFSS PHOTOM rows of one filter/grism (one per order).

    The pipeline computes ``MJy/sr = DN/s * photmjsr * relresponse(lambda) / |dlambda/dpix|``;
    for the summed cross-dispersion profile to give f_nu this requires
    ``photmjsr * relresponse = 1 / (S * PIXAR_SR * 1e6)`` (photmjsr in MJy micron s/(DN sr)).
    The table covers where S >= ``floor`` * its peak (beyond, the pipeline flags the pixels).
    """
    rows = []
    for order in model.orders:
        sens = order.sensitivity
        keep = sens.value >= floor * sens.value.max()
        wave, value = sens.wavelength[keep], sens.value[keep]
        peak = float(value.max())
        rows.append({
            "filter": model.filter, "pupil": model.pupil, "order": order.order,
            "photmjsr": 1.0 / (peak * pixar_sr * 1e6), "uncertainty": 0.0,
            "nelem": int(wave.size), "wavelength": wave, "relresponse": peak / value,
            "reluncertainty": np.zeros_like(wave),
        })
    return rows


# Extraction-box heights (pixels) of the NRC_WFSS APCORR table.
APCORR_SIZES = np.arange(3, 41)


def cross_dispersion_fraction(psf, heights, phases: int = 41) -> np.ndarray:
    """Fraction of a point source's light inside a box ``heights`` pixels high across the
    dispersion, averaged over where the trace falls within its central pixel.

    The cross-dispersion profile of the dispersed PSF is the Moffat integrated along the
    dispersion, proportional to (1 + y^2/alpha^2)^(1/2 - beta); box edges are pixel edges,
    so no pixel integration is needed.
    """
    from scipy.integrate import quad

    def density(u):
        return (1.0 + u * u) ** (0.5 - psf.beta)

    half_total = quad(density, 0.0, np.inf)[0]

    def cdf(y):  # fraction within [0, |y|] (one side), in units of the whole line
        return np.sign(y) * quad(density, 0.0, abs(y) / psf.alpha)[0] / (2.0 * half_total)

    offsets = np.linspace(-0.5, 0.5, phases)
    return np.array([np.mean([cdf(h / 2 + d) + cdf(h / 2 - d) for d in offsets]) for h in heights])


def wfss_apcorr_rows(model: GrismModel, pixel_scale: float) -> list[dict]:
    """NRC_WFSS APCORR row of one filter/grism: 1 / (light inside the box) per box height.

    The simulator's PSF does not change with wavelength within a filter, so the table has
    the same column at the two ends of the filter's range."""
    psf = psf_for(PSF_PROXY.get(model.filter, model.filter), pixel_scale)
    correction = 1.0 / cross_dispersion_fraction(psf, APCORR_SIZES)
    wave = np.concatenate([order.sensitivity.wavelength for order in model.orders])
    wavelength = np.array([wave.min(), wave.max()], dtype=np.float32)
    table = np.tile(correction, (wavelength.size, 1)).astype(np.float32)  # (n_wave, n_size)
    return [{"filter": model.filter, "pupil": model.pupil, "wavelength": wavelength,
             "nelem_wl": wavelength.size, "size": APCORR_SIZES.astype(np.uint8),
             "nelem_size": APCORR_SIZES.size, "apcorr": table,
             "apcorr_err": np.zeros_like(table)}]


def _sky_spectrum(filter_name: str, wavelength):
    """Relative f_nu of the zodiacal + thermal sky across the band (1 at the band centre)."""
    band = LW_FILTERS[filter_name]
    centre = 0.5 * (band.edge_blue + band.edge_red)
    return (np.asarray(wavelength) / centre) ** 1.5


def dispersed_sky(model: GrismModel, shape=FULL_SHAPE, sky_mjy_sr: float = 1.0,
                  pixar_sr: float = LW_PIXAR_SR, samples: int = 800) -> np.ndarray:
    """Count rate (DN/s) of a uniform sky of ``sky_mjy_sr`` dispersed onto the detector.

    A pixel at along-dispersion coordinate ``a`` receives wavelength lambda of order m from
    the direct position ``a - d_m(lambda)``; it sees that light only if that position lies in
    the grism field, so the background falls off towards the edge the spectra come from.
    A 3 % cross-dispersion gradient stands in for the illumination pattern.
    """
    ny, nx = shape
    n_along = nx if model.dispaxis == 1 else ny
    along = np.arange(n_along, dtype=float)
    lo, hi = -FIELD_BEYOND[0], n_along - 1 + FIELD_BEYOND[1]
    profile = np.zeros(n_along)
    sky_jy = sky_mjy_sr * pixar_sr * 1e6
    for order in model.order_numbers:
        t = np.linspace(0.0, 1.0, samples)
        lam = model.order(order).displ(t, FIELD_CENTRE, FIELD_CENTRE)
        d = model.along(order)(t, FIELD_CENTRE, FIELD_CENTRE)
        weight = sky_jy * _sky_spectrum(model.filter, lam) * model.order(order).sensitivity(lam)
        dlam = np.gradient(lam)
        source = along[:, None] - d[None, :]
        seen = (source >= lo) & (source <= hi)
        profile += (seen * (weight * dlam)[None, :]).sum(axis=1)
    n_across = ny if model.dispaxis == 1 else nx
    gradient = 1.0 + 0.03 * (np.arange(n_across) - (n_across - 1) / 2) / n_across
    if model.dispaxis == 1:
        return gradient[:, None] * profile[None, :]
    return profile[:, None] * gradient[None, :]


def _lit(image: np.ndarray) -> np.ndarray:
    b = REFPIX_BORDER if image.shape == FULL_SHAPE else 0
    return image[b:image.shape[0] - b, b:image.shape[1] - b] if b else image


def background_shape(model: GrismModel, shape=FULL_SHAPE) -> np.ndarray:
    """The BKG reference image: dispersed sky normalised to median 1 on illuminated pixels."""
    image = dispersed_sky(model, shape)
    image /= np.median(_lit(image))
    if shape == FULL_SHAPE:
        b = REFPIX_BORDER
        image[:b], image[-b:], image[:, :b], image[:, -b:] = 0.0, 0.0, 0.0, 0.0
    return image.astype(np.float32)


def background_level(model: GrismModel, sky_mjy_sr: float, pixar_sr: float = LW_PIXAR_SR) -> float:
    """DN/s at the median of ``background_shape`` for a sky of ``sky_mjy_sr`` MJy/sr."""
    return float(np.median(_lit(dispersed_sky(model, FULL_SHAPE, sky_mjy_sr, pixar_sr))))


# ---------------------------------------------------------------------------------------
# reference files


def wavelengthrange_tree(filters) -> dict:
    models = [lw_grism_model(f, "GRISMR") for f in filters]
    ranges = [[int(o), m.filter, *map(float, m.wavelength_range(o))]
              for m in models for o in m.order_numbers]
    return {
        "wavelengthrange": ranges,
        "order": sorted({int(o) for m in models for o in m.order_numbers}),
        "waverange_selector": [m.filter for m in models],
        "extract_orders": [[m.filter, [1]] for m in models],
    }


def write_wfss_references(destination, detector: str = "NRCALONG", filters=("F444W",),
                          pupils=("GRISMR", "GRISMC"), *, useafter: str = USEAFTER,
                          pixar_sr: float = LW_PIXAR_SR, response: np.ndarray | None = None,
                          pixel_scale: float = 0.063) -> list:
    """Write SPECWCS, WAVELENGTHRANGE, BKG, NRC_WFSS PHOTOM and APCORR references.

    The APCORR table is exact for the simulator's PSF at ``pixel_scale`` (arcsec/pixel).

    ``response``: the detector's relative pixel response (full frame); the BKG image is in
    count-rate units before flat-fielding, so it carries that pattern (bkg_subtract runs
    before flat_field in spec2).

    ``destination`` is a directory, or a reference cache (anything with ``add(path,
    reftype=...)``: the files are written to a temporary directory and added). Returns the
    written paths (in the directory case) or the cache's return values.
    """
    detector = str(detector).upper()
    filters = [str(f).upper() for f in filters]
    pupils = [str(p).upper() for p in pupils]
    module, _ = nircam_module_channel(detector)
    if module is None or not detector.endswith("LONG"):
        raise WebbcalError("detector", f"WFSS needs a long-wave NIRCam detector, not {detector!r}")
    models = [lw_grism_model(f, p) for f in filters for p in pupils]
    common = {"USEAFTER": useafter, "INSTRUME": "NIRCAM", "EXP_TYPE": "NRC_WFSS",
              "PEDIGREE": "DUMMY", "AUTHOR": "webbcal simulate"}

    def write_all(outdir: Path) -> list[tuple[Path, str]]:
        written = []
        for m in models:
            tag = f"{m.filter}_{m.pupil}".lower()
            meta = {**common, "MODULE": module, "PUPIL": m.pupil, "FILTER": m.filter,
                    "DESCRIP": f"simulated NIRCam {m.filter} {m.pupil} dispersion, "
                               f"orders {m.order_numbers}"}
            path = outdir / f"webbcal_nircam_specwcs_mod{module.lower()}_{tag}.asdf"
            written.append((write_reference(path, "specwcs", meta, tree=m.specwcs_tree()), "specwcs"))
            meta = {**common, "DETECTOR": detector, "PUPIL": m.pupil, "FILTER": m.filter,
                    "DESCRIP": f"simulated NIRCam {m.filter} {m.pupil} dispersed sky"}
            shape = background_shape(m)
            if response is not None:
                shape = (shape * np.asarray(response, dtype=np.float32)).astype(np.float32)
            dq = np.zeros(shape.shape, dtype=np.uint32)
            b = REFPIX_BORDER
            dq[:b], dq[-b:], dq[:, :b], dq[:, -b:] = (dqflags.REFERENCE_PIXEL,) * 4
            path = outdir / f"webbcal_nircam_bkg_{detector.lower()}_{tag}.fits"
            arrays = {"SCI": shape, "ERR": (0.01 * shape).astype(np.float32), "DQ": dq}
            written.append((write_reference(path, "bkg", meta, arrays=arrays), "bkg"))
        meta = {**common, "DESCRIP": "simulated NIRCam WFSS wavelength ranges"}
        path = outdir / "webbcal_nircam_wavelengthrange_wfss.asdf"
        tree = wavelengthrange_tree(filters)
        written.append((write_reference(path, "wavelengthrange", meta, tree=tree), "wavelengthrange"))
        rows = [row for m in models for row in photom_rows(m, pixar_sr)]
        meta = {**common, "DETECTOR": detector, "PIXAR_SR": pixar_sr,
                "PIXAR_A2": pixar_sr * (180 / np.pi * ARCSEC_PER_DEG) ** 2,
                "PHOTUNIT": "MJy micron s / (DN sr)", "WAVEUNIT": "micron",
                "DESCRIP": "simulated NIRCam WFSS flux calibration"}
        path = outdir / f"webbcal_nircam_photom_{detector.lower()}_wfss.fits"
        tables = {"PHOTOM": _photom_table(rows)}
        written.append((write_reference(path, "photom", meta, tables=tables), "photom"))
        rows = [row for m in models for row in wfss_apcorr_rows(m, pixel_scale)]
        meta = {**common, "SIZEUNIT": "pixel",
                "DESCRIP": "simulated NIRCam WFSS aperture corrections (exact for the simulated PSF)"}
        path = outdir / "webbcal_nircam_apcorr_wfss.fits"
        written.append((write_reference(path, "apcorr", meta, tables={"APCORR": _apcorr_table(rows)}),
                        "apcorr"))
        return written

    if hasattr(destination, "add"):
        with tempfile.TemporaryDirectory() as tmp:
            return [destination.add(path, reftype=reftype) for path, reftype in write_all(Path(tmp))]
    outdir = Path(destination)
    outdir.mkdir(parents=True, exist_ok=True)
    return [path for path, _ in write_all(outdir)]


def _photom_table(rows: list[dict]) -> dict:
    """Rows with ragged wavelength arrays -> columns padded to the longest (``nelem`` valid)."""
    width = max(r["nelem"] for r in rows)

    def padded(key):
        out = np.zeros((len(rows), width), dtype=np.float32)
        for i, r in enumerate(rows):
            out[i, : r["nelem"]] = r[key]
        return out

    table = {key: np.array([r[key] for r in rows]) for key in
             ("filter", "pupil", "order", "photmjsr", "uncertainty", "nelem")}
    for key in ("wavelength", "relresponse", "reluncertainty"):
        table[key] = padded(key)
    return table


def _apcorr_table(rows: list[dict]) -> dict:
    """APCORR rows (all the same shape) -> columns."""
    return {key: np.array([r[key] for r in rows]) for key in
            ("filter", "pupil", "wavelength", "nelem_wl", "size", "nelem_size", "apcorr", "apcorr_err")}


# ---------------------------------------------------------------------------------------
# dispersing sources


@dataclass
class DispersedSource:
    """One source to disperse: its direct-image profile and spectrum."""

    source_id: int
    x0: float  # direct-image position in the grism exposure's frame (0-based full frame)
    y0: float
    stamp: np.ndarray  # profile on the detector pixel grid, normalised to sum 1
    origin: tuple[int, int]  # (row, column) of stamp[0, 0]
    sed: Callable[[np.ndarray], np.ndarray]  # f_nu [Jy] at wavelengths [micron]


@dataclass
class TraceTruth:
    """Where one order of one source lands, sampled once per pixel along the dispersion."""

    source_id: int
    order: int
    x0: float
    y0: float
    wavelength: np.ndarray  # micron
    x: np.ndarray  # grism-frame trace centre (0-based)
    y: np.ndarray
    flux_jy: np.ndarray  # true f_nu of the source
    sensitivity: np.ndarray  # DN/s per Jy per micron
    total_rate: float  # DN/s in this order (before clipping at the detector edges)


@dataclass
class DispersedImage:
    rate: np.ndarray  # DN/s
    traces: list[TraceTruth] = field(default_factory=list)
    background_scale: float = 0.0  # DN/s at the median of the BKG shape


def _trace_kernel(model: GrismModel, order: int, src: DispersedSource, local, samples_per_pixel: int):
    """Spectrum of ``src`` laid along its trace: (kernel (along, across), origin offsets, truth)."""
    x0, y0 = src.x0, src.y0
    sens = model.order(order).sensitivity
    d0, d1 = float(np.polyval(local.along, 0.0)), float(np.polyval(local.along, 1.0))
    n = max(1, int(np.ceil((d1 - d0) * samples_per_pixel)))
    d_edge = np.linspace(d0, d1, n + 1)
    t_edge = local.t_of_along(d_edge)
    t_edge[0], t_edge[-1] = 0.0, 1.0
    lam_edge = np.polyval(local.wavelength, t_edge)
    d_mid = 0.5 * (d_edge[:-1] + d_edge[1:])
    t_mid = local.t_of_along(d_mid)
    lam_mid = np.polyval(local.wavelength, t_mid)
    rate = src.sed(lam_mid) * sens(lam_mid) * np.diff(lam_edge)  # DN/s per sample
    c_mid = np.polyval(local.across, t_mid)

    a_lo, c_lo = int(np.floor(d_mid.min())), int(np.floor(c_mid.min()))
    fa, fc = d_mid - a_lo, c_mid - c_lo
    ia, ic = np.floor(fa).astype(int), np.floor(fc).astype(int)
    wa, wc = fa - ia, fc - ic
    n_a, n_c = int(ia.max()) + 2, int(ic.max()) + 2
    base = ia * n_c + ic
    index = np.concatenate([base, base + n_c, base + 1, base + n_c + 1])
    weight = np.concatenate([(1 - wa) * (1 - wc), wa * (1 - wc), (1 - wa) * wc, wa * wc])
    weight *= np.tile(rate, 4)
    kernel = np.bincount(index, weights=weight, minlength=n_a * n_c).reshape(n_a, n_c)

    d_pix = np.arange(np.ceil(d0), np.floor(d1) + 1)
    x, y, lam = model.trace(order, x0, y0, local.t_of_along(d_pix))
    truth = TraceTruth(src.source_id, order, x0, y0, lam, x, y, src.sed(lam), sens(lam),
                       float(rate.sum()))
    return kernel, (a_lo, c_lo), truth


def _misses_detector(local, src: DispersedSource, dispaxis: int, shape) -> bool:
    """True when the order's dispersed stamp cannot touch the detector (cheap bounding box)."""
    t = np.linspace(0.0, 1.0, 9)
    along, across = np.polyval(local.along, t), np.polyval(local.across, t)
    ny, nx = shape
    h, w = src.stamp.shape
    if dispaxis == 1:
        rows = (src.origin[0] + across.min() - 1, src.origin[0] + h + across.max() + 1)
        cols = (src.origin[1] + along.min() - 1, src.origin[1] + w + along.max() + 1)
    else:
        rows = (src.origin[0] + along.min() - 1, src.origin[0] + h + along.max() + 1)
        cols = (src.origin[1] + across.min() - 1, src.origin[1] + w + across.max() + 1)
    return rows[1] < 0 or rows[0] > ny or cols[1] < 0 or cols[0] > nx


def disperse_sources(model: GrismModel, sources: list[DispersedSource], shape=FULL_SHAPE,
                     orders=None, samples_per_pixel: int = 4) -> DispersedImage:
    """Count-rate image (DN/s) of ``sources`` dispersed in ``orders`` (default: all)."""
    ny, nx = shape
    image = np.zeros(shape, dtype=np.float64)
    result = DispersedImage(image)
    for order in (orders or model.order_numbers):
        for src in sources:
            local = model.local(order, src.x0, src.y0)
            if _misses_detector(local, src, model.dispaxis, shape):
                continue  # no truth either: nothing of this order is on the detector
            kernel, (a_lo, c_lo), truth = _trace_kernel(model, order, src, local, samples_per_pixel)
            result.traces.append(truth)
            if model.dispaxis == 1:  # kernel rows = along = x: transpose to (y, x)
                kernel, dr, dc = kernel.T, c_lo, a_lo
            else:
                dr, dc = a_lo, c_lo
            r0, c0 = src.origin[0] + dr, src.origin[1] + dc
            h = src.stamp.shape[0] + kernel.shape[0] - 1
            w = src.stamp.shape[1] + kernel.shape[1] - 1
            ra, rb, ca, cb = max(r0, 0), min(r0 + h, ny), max(c0, 0), min(c0 + w, nx)
            if ra >= rb or ca >= cb:
                continue
            dispersed = fftconvolve(src.stamp, kernel)
            np.maximum(dispersed, 0.0, out=dispersed)  # FFT round-off
            image[ra:rb, ca:cb] += dispersed[ra - r0:rb - r0, ca - c0:cb - c0]
    return result


# ---------------------------------------------------------------------------------------
# from the scene catalog


def _detector_angle(theta_sky_deg, jacobian):
    """Sky position angle (N through E) -> angle from +x counter-clockwise on the detector."""
    th = np.deg2rad(np.asarray(theta_sky_deg, float))
    east, north = np.sin(th), np.cos(th)
    dx = jacobian[0, 0] * east + jacobian[0, 1] * north
    dy = jacobian[1, 0] * east + jacobian[1, 1] * north
    return np.rad2deg(np.arctan2(dy, dx))


# Detector pixels per arcsec along (East, North) for North up, East left, 0.063"/pixel.
DEFAULT_JACOBIAN = np.array([[-1.0, 0.0], [0.0, 1.0]]) / 0.063


def _galaxy_stamp(psf, size: int, x: float, y: float, r_eff_pix: float, n: float, q: float,
                  theta_deg: float, psf_half: int, oversample: int = 3) -> np.ndarray:
    """Sersic profile (angle from +x, counter-clockwise) convolved with the PSF cut at
    ``psf_half`` pixels, on a sub-pixel grid, then integrated over pixels: the profile of
    ``psf.add_sersic`` with a kernel sized to the source's brightness. (Binning before the
    convolution would be cheaper but moves the centroid of cuspy profiles by ~0.05 px.)"""
    os = oversample
    sub = (np.arange(size * os) + 0.5) / os - 0.5
    sx, sy = sub - x, sub - y
    c, s = np.cos(np.deg2rad(theta_deg)), np.sin(np.deg2rad(theta_deg))
    u = sx[None, :] * c + sy[:, None] * s
    v = -sx[None, :] * s + sy[:, None] * c
    rr = np.sqrt(u**2 + (v / q) ** 2)
    galaxy = np.exp(-sersic_bn(n) * ((rr / r_eff_pix) ** (1.0 / n) - 1.0))
    k = np.arange(-psf_half * os, psf_half * os + 1) / os
    kernel = psf.profile(k[:, None] ** 2 + k[None, :] ** 2)
    image = fftconvolve(galaxy, kernel / kernel.sum(), mode="same")
    return image.reshape(size, os, size, os).sum(axis=(1, 3))


LOST_RATE = 0.02  # DN/s of a source's dispersed light allowed outside its profile stamp


def source_stamp(row, x0: float, y0: float, psf, jacobian=DEFAULT_JACOBIAN, total_rate: float = 1e4):
    """Unit-sum direct-image profile of a catalog row at (x0, y0): (stamp, (row0, col0)).

    The PSF part is cut where the wings hold less than ``LOST_RATE`` of ``total_rate`` (the
    source's dispersed DN/s), within [1e-4, 1e-2] of the flux; the stamp is renormalised.
    """
    px_per_arcsec = float(np.sqrt(abs(np.linalg.det(jacobian))))
    r_eff_pix = float(row["r_eff"]) * px_per_arcsec if bool(row["is_extended"]) else 0.0
    lost = float(np.clip(LOST_RATE / max(total_rate, 1e-30), 1e-4, 1e-2))
    half = psf_half = int(np.clip(np.ceil(psf.radius_for_ee(1.0 - lost)), 4, 256))
    if r_eff_pix > 0:
        half = int(np.clip(np.ceil(6 * r_eff_pix + 3), 5, 200)) + psf_half
    ix, iy = int(np.floor(x0 + 0.5)), int(np.floor(y0 + 0.5))
    col0, row0 = ix - half, iy - half
    stamp = np.zeros((2 * half + 1, 2 * half + 1))
    lx, ly = x0 - col0, y0 - row0
    if r_eff_pix > 0:
        angle = float(_detector_angle(row["theta"], jacobian))
        stamp = _galaxy_stamp(psf, 2 * half + 1, lx, ly, r_eff_pix, float(row["sersic_n"]),
                              float(row["axis_ratio"]), angle, psf_half)
    else:
        add_point_source(stamp, psf, lx, ly, 1.0)
    total = stamp.sum()
    if not total > 0:
        raise WebbcalError("scene", f"source {row['id']}: empty profile stamp")
    return stamp / total, (row0, col0)


def render_dispersed_rate(scene, direct_wcs_pixel_positions, filter_name: str, pupil: str,
                          shape=FULL_SHAPE, *, orders=(1, 2), background_scale: float = 0.0,
                          background: np.ndarray | None = None, jacobian=DEFAULT_JACOBIAN,
                          pixel_scale: float = 0.063, sed=None,
                          samples_per_pixel: int = 4) -> DispersedImage:
    """All sources of ``scene`` dispersed through ``filter_name``/``pupil``, plus background.

    ``scene``: the catalog (astropy Table, or an object with ``.catalog``);
    ``direct_wcs_pixel_positions``: (x0, y0) arrays, one per catalog row, in the grism
    exposure's imaging frame; ``background_scale`` (DN/s) multiplies ``background`` (default:
    the BKG reference shape of this filter/grism); ``jacobian``: detector pixels per arcsec
    along (East, North), for source sizes and orientations; ``sed(row, wavelength)``:
    default ``webbcal.simulate.scene.sed_flux_jy``.
    """
    catalog = getattr(scene, "catalog", scene)
    sed = sed or scenemod.sed_flux_jy
    model = lw_grism_model(filter_name, pupil)
    x0s, y0s = (np.asarray(v, dtype=float) for v in direct_wcs_pixel_positions)
    if len(x0s) != len(catalog) or len(y0s) != len(catalog):
        raise WebbcalError("scene", f"{len(catalog)} sources but {len(x0s)} direct-image positions")
    psf = psf_for(PSF_PROXY.get(model.filter, model.filter), pixel_scale)
    sources = []
    band = LW_FILTERS[model.filter]
    lam = np.linspace(band.trace_min, band.trace_max, 64)  # coarse: only sizes the stamps
    band_sens = sum(model.order(o).sensitivity(lam) for o in orders) * (lam[1] - lam[0])
    for row, x0, y0 in zip(catalog, x0s, y0s):
        total = float(np.sum(sed(row, lam) * band_sens))
        stamp, origin = source_stamp(row, x0, y0, psf, jacobian, total)
        sources.append(DispersedSource(int(row["id"]), float(x0), float(y0), stamp, origin,
                                       lambda lam, row=row: sed(row, lam)))
    result = disperse_sources(model, sources, shape, orders, samples_per_pixel)
    if background_scale:
        if background is None:
            background = background_shape(model, shape)
        result.rate += background_scale * np.asarray(background, dtype=float)
        result.background_scale = float(background_scale)
    return result


# ---------------------------------------------------------------------------------------
# a WFSS observation: grism exposures, the direct image, associations, truth

WFSS_DEFAULTS = {
    "wfss_detector": "NRCALONG",
    "wfss_filter": "F444W",
    "wfss_pupils": ("GRISMR", "GRISMC"),
    "wfss_readpatt": None,  # None: the program's read pattern and NGROUPS
    "wfss_ngroups": None,
    "wfss_direct_exposures": 1,
    "wfss_observation": None,  # None: the program's observation + 1
    "wfss_field_margin_arcsec": 25.0,  # sources this far outside the field still disperse in
    # Fainter sources (AB > 26.4) are left out of the grism image: spread over ~1200 x 3
    # pixels they add < 4e-4 DN/s per pixel, 0.1 % of the dispersed sky. They stay in the
    # direct image.
    "wfss_min_flux_jy": 1e-7,
}


@dataclass
class WfssPlan:
    """What one WFSS observation consists of (from the program settings)."""

    detector: str
    filter: str
    pupils: tuple[str, ...]
    observation: int
    readpatt: str
    ngroups: int
    direct_exposures: int
    field_margin_arcsec: float
    min_flux_jy: float

    @classmethod
    def from_settings(cls, settings) -> "WfssPlan":
        extra = {**WFSS_DEFAULTS, **(getattr(settings, "extra", None) or {})}
        pupils = extra["wfss_pupils"]
        pupils = tuple(p.upper() for p in ([pupils] if isinstance(pupils, str) else pupils))
        for p in pupils:
            if p not in ("GRISMR", "GRISMC"):
                raise WebbcalError("wfss_pupils", f"{p!r} is not a NIRCam grism (GRISMR, GRISMC)")
        if not pupils:
            raise WebbcalError("wfss_pupils", "no grism requested")
        observation = extra["wfss_observation"] or settings.observation + 1
        return cls(str(extra["wfss_detector"]).upper(), str(extra["wfss_filter"]).upper(), pupils,
                   int(observation), str(extra["wfss_readpatt"] or settings.readpatt).upper(),
                   int(extra["wfss_ngroups"] or settings.ngroups), int(extra["wfss_direct_exposures"]),
                   float(extra["wfss_field_margin_arcsec"]), float(extra["wfss_min_flux_jy"]))

    @property
    def acid(self) -> str:
        return f"o{self.observation:03d}"


def _program_seed(outdir: Path, rng) -> int:
    """The program's seed (the detector state must match references already in the cache)."""
    path = outdir / "truth" / "settings.json"
    if path.is_file():
        try:
            return int(json.loads(path.read_text())["seed"])
        except (ValueError, KeyError, TypeError):
            pass
    return int(rng.integers(2**31))


def _wfss_catalog(scene, rng, centre, width_arcsec: float, density_arcmin2: float):
    """The program's scene plus sources filling the (larger) WFSS field outside it."""
    catalog = getattr(scene, "catalog", scene)
    n = max(10, int(round(density_arcmin2 * (width_arcsec / 60.0) ** 2)))
    extra = scenemod.make_catalog(rng, centre[0], centre[1], width_arcsec, n)
    if len(catalog):
        ra, dec = np.asarray(catalog["ra"], float), np.asarray(catalog["dec"], float)
        inside = ((extra["ra"] >= ra.min()) & (extra["ra"] <= ra.max())
                  & (extra["dec"] >= dec.min()) & (extra["dec"] <= dec.max()))
        extra = extra[~inside]
        extra["id"] = np.arange(len(extra), dtype=np.int32) + int(np.max(catalog["id"])) + 1
        columns = [c for c in catalog.colnames if c in extra.colnames]
        merged = vstack([catalog[columns], extra[columns]], metadata_conflicts="silent")
    else:
        merged = extra
    merged.meta["description"] = "webbcal WFSS scene: program scene + sources of the grism field"
    return merged


def _sky_jacobian(header, distortion, filteroffset, x, y):
    """Detector pixels per arcsec along (East, North) at pixel (x, y)."""
    ra, dec = detector_to_world(x, y, header, distortion, filteroffset)
    step = 1.0 / ARCSEC_PER_DEG
    east = ra + step / np.cos(np.deg2rad(dec))
    xe, ye = world_to_detector(east, dec, header, distortion, filteroffset)
    xn, yn = world_to_detector(ra, dec + step, header, distortion, filteroffset)
    return np.array([[float(xe - x), float(xn - x)], [float(ye - y), float(yn - y)]])


def _trace_table(traces: list[TraceTruth], shape=FULL_SHAPE, margin: float = 10.0) -> Table:
    """One row per (source, order, pixel step along the trace) landing on the detector."""
    def column(values, dtype):
        return np.concatenate(values).astype(dtype) if values else np.zeros(0, dtype)

    n = [t.wavelength.size for t in traces]
    table = Table({
        "source_id": np.repeat([t.source_id for t in traces], n).astype(np.int32),
        "order": np.repeat([t.order for t in traces], n).astype(np.int16),
        "x0": np.repeat([t.x0 for t in traces], n).astype(np.float32),
        "y0": np.repeat([t.y0 for t in traces], n).astype(np.float32),
        "wavelength": column([t.wavelength for t in traces], np.float32),
        "x": column([t.x for t in traces], np.float32),
        "y": column([t.y for t in traces], np.float32),
        "flux_jy": column([t.flux_jy for t in traces], np.float32),
        "sensitivity": column([t.sensitivity for t in traces], np.float32),
    })
    ny, nx = shape
    on = ((table["x"] > -margin) & (table["x"] < nx - 1 + margin)
          & (table["y"] > -margin) & (table["y"] < ny - 1 + margin))
    table = table[on]
    table["wavelength"].unit, table["flux_jy"].unit = "um", "Jy"
    table.meta["comment"] = ("grism-frame trace centre (x, y; 0-based) and true f_nu of each source, "
                             "one row per pixel along the dispersion where the trace is on the "
                             "detector; x0, y0: direct-image position; sensitivity in DN/s per "
                             "Jy per micron")
    return table


def _write_fits_table(table, path: Path) -> None:
    with atomic_path(path) as tmp:
        table.write(tmp, format="fits", overwrite=True)


def _write_ecsv(table, path: Path) -> None:
    with atomic_path(path) as tmp:
        table.write(tmp, format="ascii.ecsv", overwrite=True)


def _write_rate_truth(path: Path, rate: np.ndarray, header, comment: str) -> None:
    hdr = fits.Header()
    for key in ("DETECTOR", "FILTER", "PUPIL", "EXP_TYPE", "SUBARRAY", "READPATT", "NGROUPS", "NINTS"):
        hdr[key] = header[key]
    hdr["BUNIT"] = "DN/s"
    hdr["COMMENT"] = comment
    with atomic_path(path) as tmp:
        fits.HDUList([fits.PrimaryHDU(header=hdr), fits.ImageHDU(rate.astype(np.float32), name="RATE")]
                     ).writeto(tmp, overwrite=True)


def level3_root(program: str, acid: str, filter_name: str, pupil: str) -> str:
    """``jw<program>-<acid>_t001_nircam_<opt_elem>`` (image2_image3_wfss.md §1.4)."""
    opt = "-".join(sorted([filter_name.lower(), pupil.lower()], key=str.lower))
    return f"jw{program}-{acid}_t001_nircam_{opt}"

def _grism_header(header, pupil: str, plan: WfssPlan):
    """An imaging header turned into the NRC_WFSS exposure of ``pupil``."""
    out = header.copy()
    out["EXP_TYPE"] = "NRC_WFSS"
    out["PUPIL"] = pupil
    out["TEMPLATE"] = "NIRCam Wide Field Slitless Spectroscopy"
    out["PATTTYPE"] = "NONE"
    out["FILTER"] = plan.filter
    return out


def simulate_wfss(outdir, settings, scene, rng, *, seed: int | None = None) -> dict:
    """One WFSS observation into ``outdir`` (the program's uncal/, refs/, asn/, truth/).

    Exposures (same pointing, in time order; EXPSPCIN increasing so the direct image is
    the one taken right after the grism exposures, as the spec2 pairing rule wants):
    one NRC_WFSS exposure per grism (F444W + GRISMR/GRISMC), then the direct image(s)
    (NRC_IMAGE, F444W + CLEAR). References: the detector set of the WFSS detector (when it
    is not the program's), a dark/distortion for NRC_WFSS, grism flats, and the WFSS set
    (``write_wfss_references``). Truth under ``truth/``: per grism exposure the true rate,
    the traces with the true spectra, and ``<acid>_wfss.json`` (background scale, files).
    """
    out = Path(outdir)
    for sub in ("uncal", "refs", "asn", "truth"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    plan = WfssPlan.from_settings(settings)
    if plan.filter not in LW_FILTERS:
        raise WebbcalError("wfss_filter",
                           f"no grism model for {plan.filter} (known: {', '.join(LW_FILTERS)})")
    direct_settings = dataclasses.replace(
        settings, filter=plan.filter, detector=plan.detector, subarray="FULL", readpatt=plan.readpatt,
        ngroups=plan.ngroups, ndither=max(1, plan.direct_exposures), observation=plan.observation,
        wfss=False).validate()
    rng_scene, rng_pointing, *rng_exposures = rng.spawn(2 + len(plan.pupils) + plan.direct_exposures)
    seed = _program_seed(out, rng) if seed is None else int(seed)

    ap = aperture(plan.detector)
    window = subarray("FULL")
    timing = ExposureTiming(read_pattern(plan.readpatt), window, plan.ngroups, direct_settings.nints)
    distortion = detector_to_v2v3_model(ap)
    filteroffset = filteroffset_rows(ap.channel)
    ref_v2, ref_v3 = (float(v) for v in distortion(FIELD_CENTRE, FIELD_CENTRE))
    pointing = prog.commanded_pointing(ap, ref_v2, ref_v3, (0.0, 0.0))

    # the scene over the grism field (plus the margin whose spectra reach the detector)
    width = 2048 * ap.scale * 1.45 + 2 * plan.field_margin_arcsec
    centre = v2v3_to_sky(ref_v2, ref_v3, *pointing, ref_v2, ref_v3)
    catalog = _wfss_catalog(scene, rng_scene, (float(centre[0]), float(centre[1])), width,
                            settings.source_density)
    _write_ecsv(catalog, out / "truth" / f"{plan.acid}_wfss_catalog.ecsv")
    grism_sources = catalog[np.asarray(catalog[scenemod.flux_column(plan.filter)]) >= plan.min_flux_jy]

    # references: the detector set (if the program used another detector) and the WFSS set
    state = make_detector_state(plan.detector, seed)
    if plan.detector != str(settings.detector).upper():
        writer = write_all_references(out / "refs", state, [timing], ipc=settings.ipc)
    else:
        writer = ReferenceWriter(out / "refs")
        writer.dark(state, timing)
    writer.dark(state, timing, exp_type="NRC_WFSS")
    _write_grism_optics(writer, state, plan, distortion, ap)
    pixar_sr, _ = pixar(plan.detector)
    write_wfss_references(writer.cache, plan.detector, (plan.filter,), plan.pupils,
                          pixar_sr=pixar_sr, response=state.qe, pixel_scale=ap.scale)

    # one visit, one (slightly wrong) attitude for every exposure
    err = rng_pointing.normal(0.0, prog.POINTING_ERROR_MAS / 1000.0, 2)
    true = {"RA_REF": pointing[0] + err[0] / 3600 / np.cos(np.deg2rad(pointing[1])),
            "DEC_REF": pointing[1] + err[1] / 3600,
            "ROLL_REF": pointing[2] + rng_pointing.normal(0.0, prog.ROLL_ERROR_ARCSEC) / 3600}
    sky_factor = float(1.0 + rng_pointing.normal(0.0, prog.SKY_OFFSET_FRACTION))
    sky = scenemod.sky_background(plan.filter) * sky_factor

    n_total = len(plan.pupils) + plan.direct_exposures
    start = prog.START + _dt.timedelta(days=1)
    grism_names, direct_names, truth_files = [], [], {}
    for number in range(1, n_total + 1):
        is_grism = number <= len(plan.pupils)
        header = prog.build_header(direct_settings, timing, number, start, pointing, ref_v2, ref_v3,
                                   (0.0, 0.0), n_total)
        name = prog.exposure_name(direct_settings, number)
        true_hdr = header.copy()
        true_hdr.update(true)
        if is_grism:
            pupil = plan.pupils[number - 1]
            header = _grism_header(header, pupil, plan)
            true_hdr = _grism_header(true_hdr, pupil, plan)
            x0, y0 = world_to_detector(np.asarray(grism_sources["ra"], float),
                                       np.asarray(grism_sources["dec"], float), true_hdr, distortion,
                                       filteroffset)
            model = lw_grism_model(plan.filter, pupil)
            scale = background_level(model, sky, pixar_sr)
            rendered = render_dispersed_rate(
                grism_sources, (x0, y0), plan.filter, pupil, window.shape, background_scale=scale,
                jacobian=_sky_jacobian(true_hdr, distortion, filteroffset, FIELD_CENTRE, FIELD_CENTRE),
                pixel_scale=ap.scale)
            rate = rendered.rate
        else:
            rate, sources = prog.render_rate(direct_settings, catalog, header, true, distortion,
                                             filteroffset, sky_factor, window)
        setup = ExposureSetup(timing, zeroframe=settings.zeroframe, ipc=settings.ipc,
                              start_time_s=(start - prog.START).total_seconds())
        sci, zero, truth = simulate_ramps(rate, setup, state, rng_exposures[number - 1])
        arrays = {"SCI": sci} if zero is None else {"SCI": sci, "ZEROFRAME": zero}
        sci_meta = {key: header[key] for key in prog.SCI_HDU_KEYWORDS if key in header}
        sci_meta["BUNIT"] = "DN"
        product = Product("Level1bModel", meta=header, arrays=arrays, ext_meta={"SCI": sci_meta},
                          tables={"GROUP": prog.group_table(timing, start),
                                  "INT_TIMES": prog.int_times_table(timing, start)})
        write_product(product, out / "uncal" / f"{name}_uncal.fits")
        _write_rate_truth(out / "truth" / f"{name}_rate.fits", truth["rate"], header,
                          "True illuminated count rate without dark (what Detector1 should measure)")
        if is_grism:
            _write_fits_table(_trace_table(rendered.traces), out / "truth" / f"{name}_traces.fits")
            grism_names.append((name, pupil))
            truth_files[name] = {"pupil": pupil, "background_scale_dn_s": rendered.background_scale,
                                 "traces": f"{name}_traces.fits", "rate": f"{name}_rate.fits"}
        else:
            _write_ecsv(sources, out / "truth" / f"{name}_sources.ecsv")
            direct_names.append(name)
        log.info("WFSS exposure %d/%d %s (%s)", number, n_total, name, header["PUPIL"])
        start += _dt.timedelta(seconds=timing.nints * timing.integration_duration + prog.OVERHEAD_S)

    summary = {
        "acid": plan.acid, "detector": plan.detector, "filter": plan.filter,
        "grism_exposures": [n for n, _ in grism_names], "direct_exposures": direct_names,
        "direct_level3_root": level3_root(settings.program, plan.acid, plan.filter, "CLEAR"),
        "sky_mjy_sr": sky, "true_pointing": true,
        "commanded_pointing": dict(zip(("RA_REF", "DEC_REF", "ROLL_REF"), pointing)),
        "exposures": truth_files, "catalog": f"{plan.acid}_wfss_catalog.ecsv",
        "dispersed_sources": int(len(grism_sources)), "min_flux_jy": plan.min_flux_jy,
        "seed": seed,
    }
    atomic_write_text(out / "truth" / f"{plan.acid}_wfss.json",
                      json.dumps(summary, indent=1, default=float))
    return summary


def _write_grism_optics(writer, state, plan: WfssPlan, distortion, ap) -> None:
    """Flats and a distortion that select for the grism exposures.

    The grism flat is the pixel response alone: the simulator's dispersed light is not
    scaled by pixel area (the area enters the imaging flats only)."""
    det = state.detector.lower()
    flat_dq = np.zeros(state.shape, np.uint32)
    refpix = state.reference_pixels
    flat_dq[refpix] = dqflags.NO_FLAT_FIELD
    flat_dq[state.qe <= 0] |= dqflags.NO_FLAT_FIELD
    flat = np.where(refpix, 1.0, state.qe).astype(np.float32)
    spatial = {"SUBARRAY": "FULL", "SUBSTRT1": 1, "SUBSTRT2": 1, "SUBSIZE1": state.shape[1],
               "SUBSIZE2": state.shape[0], "FASTAXIS": state.fastaxis, "SLOWAXIS": state.slowaxis}
    common = {"USEAFTER": USEAFTER, "DETECTOR": state.detector, "INSTRUME": "NIRCAM",
              "PEDIGREE": "DUMMY", "AUTHOR": "webbcal simulate"}
    for pupil in plan.pupils:
        writer.write(f"webbcal_{det}_{plan.filter.lower()}_{pupil.lower()}_flat.fits", "flat",
                     {**common, **spatial, "FILTER": plan.filter, "PUPIL": pupil,
                      "DESCRIP": "simulated grism flat: pixel response"},
                     {"SCI": flat, "ERR": np.full(state.shape, 0.002, np.float32), "DQ": flat_dq})
    writer.write(f"webbcal_{det}_wfss_distortion.asdf", "distortion",
                 {**common, "EXP_TYPE": "NRC_WFSS", "CHANNEL": ap.channel, "MODULE": ap.module},
                 tree={"model": distortion})
