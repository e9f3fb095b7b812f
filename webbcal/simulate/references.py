"""Reference files that describe the simulated detector and optics exactly.

Everything the Detector1 and imaging stages use is written through
``webbcal.refs.formats.write_reference`` into a cache directory and registered with
``RefCache.add``. The contents are the simulator's own truth, so a pipeline using them
calibrates the simulation perfectly up to noise:

* mask: DEAD/HOT/WARM/LOW_QE (+DO_NOT_USE), REFERENCE_PIXEL on the border (no DNU).
* saturation: raw-DN threshold = superbias + 0.98 × measured signal at full well.
* superbias: the static bias (exposure-variable output offsets are for refpix).
* linearity: COEFFS (4, ny, nx), measured → linear; the detector applies their exact inverse.
* dark: per (read pattern, subarray, NGROUPS): the mean dark signal of each group
  (frame-averaged like the science, NFRAMES/GROUPGAP of the science), AVDRKCUR in DN/s
  (the unit ramp_fit effectively adds it in; see detector1.md §7).
* gain (e/DN), readnoise (CDS, DN).
* flat: pixel response × relative pixel area — the response to a uniform sky, so that
  flat-fielded images have a flat surface brightness (how JWST flats behave).
* photom: PHOTMJSR per filter (representative NIRCam values, MJy/sr per DN/s); area: the
  relative pixel area of the distortion, PIXAR_SR/PIXAR_A2 at the reference pixel.
* distortion (astropy model), filteroffset, apcorr (from the PSF model: exact for the
  pixelated Moffat drizzled into a mosaic, including the sky-annulus bias), abvegaoffset.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import numpy as np
from astropy.table import Table

from webbcal import dqflags
from webbcal.simulate import psf as psfmod
from webbcal.simulate.detector import SATURATION_MARGIN, DetectorState
from webbcal.simulate.readout import ExposureTiming
from webbcal.wcs.apertures import aperture
from webbcal.wcs.distortion import detector_to_v2v3_model, filteroffset_rows, pixel_area_map

log = logging.getLogger("webbcal.simulate.references")

USEAFTER = "2022-01-01T00:00:00"
# Representative PHOTMJSR (MJy/sr per DN/s) and uncertainties. [Order of magnitude of the
# flight values; not copied from CRDS.]
PHOTMJSR = {"F070W": 0.55, "F090W": 0.38, "F115W": 0.30, "F150W": 0.24, "F200W": 0.20,
            "F210M": 0.85, "F277W": 0.29, "F356W": 0.24, "F410M": 0.55, "F444W": 0.26}
# AB − Vega (mag), approximate NIRCam values (JDox "NIRCam Absolute Flux Calibration").
ABVEGA = {"F070W": 0.26, "F090W": 0.51, "F115W": 0.78, "F150W": 1.21, "F200W": 1.69,
          "F210M": 1.80, "F277W": 2.32, "F356W": 2.81, "F410M": 3.08, "F444W": 3.24}
SW_FILTERS = ("F070W", "F090W", "F115W", "F150W", "F200W", "F210M")
LW_FILTERS = ("F277W", "F356W", "F410M", "F444W")
EE_FRACTIONS = np.round(np.arange(0.1, 0.91, 0.1), 2)
SKY_ANNULUS_EE = (0.97, 0.99)  # skyin/skyout at these analytic EE radii


def channel_filters(channel: str) -> tuple[str, ...]:
    return SW_FILTERS if channel == "SHORT" else LW_FILTERS


@functools.lru_cache(maxsize=16)
def pixar(detector: str) -> tuple[float, float]:
    """(PIXAR_SR, PIXAR_A2): the distortion's pixel area at the reference pixel."""
    model = detector_to_v2v3_model(aperture(detector))
    h = 0.5
    a2, a3 = model(1023.5 + h, 1023.5)
    b2, b3 = model(1023.5 - h, 1023.5)
    c2, c3 = model(1023.5, 1023.5 + h)
    d2, d3 = model(1023.5, 1023.5 - h)
    a2_arcsec = abs((a2 - b2) * (c3 - d3) - (c2 - d2) * (a3 - b3))
    return a2_arcsec / 206264.80624709636**2, a2_arcsec


@functools.lru_cache(maxsize=4)
def relative_area(detector: str) -> np.ndarray:
    """Full-frame relative pixel area (cached; treat as read-only)."""
    _, a2 = pixar(detector)
    ap = aperture(detector)
    return pixel_area_map(detector_to_v2v3_model(ap), nominal_scale=np.sqrt(a2))


# The PSF of a drizzled mosaic (square kernel, pixfrac 1, scale ratio 1) is the optical PSF
# ⊗ the detector pixel ⊗ the drizzle's input-footprint/output-pixel overlap, which averages
# over source phases to two more pixel boxes: measured with drizzle on the simulator's PSF,
# EE at r = 1, 2, 3 px is 0.336, 0.745, 0.904 against 0.333, 0.743, 0.904 for three boxes
# (0.357, 0.759, 0.909 for two: the 5% low aperture-corrected fluxes of the first build).
MOSAIC_PIXEL_BOXES = 3


def apcorr_rows(filter_name: str, pixel_scale: float) -> list[dict]:
    return [dict(row) for row in _apcorr_rows(filter_name, pixel_scale)]


@functools.lru_cache(maxsize=32)
def _apcorr_rows(filter_name: str, pixel_scale: float) -> tuple[dict, ...]:
    """APCORR rows of one filter from the PSF model, as aperture photometry measures it on
    the resampled mosaic (PSF ⊗ ``MOSAIC_PIXEL_BOXES`` pixel boxes, pixel-sampled):
    ``radius`` encloses ``eefraction`` of the flux; ``apcorr`` = total / (aperture sum −
    annulus mean × aperture area), i.e. it also undoes the PSF light in the sky annulus."""
    psf = psfmod.psf_for(filter_name, pixel_scale)
    skyin, skyout = (float(r) for r in psf.radius_for_ee(SKY_ANNULUS_EE))
    radii = np.geomspace(0.25, 4.0 * psf.fwhm_pix + 2.0, 48)
    ee = psfmod.encircled_energy_measured(psf, np.concatenate([radii, [skyin, skyout]]),
                                          boxes=MOSAIC_PIXEL_BOXES, half=int(skyout) + 8)
    ee_r, ee_in, ee_out = ee[:-2], ee[-2], ee[-1]
    bkg_per_pix = (ee_out - ee_in) / (np.pi * (skyout**2 - skyin**2))
    rows = []
    for frac in EE_FRACTIONS:
        r = float(np.interp(frac, ee_r, radii))
        measured = frac - bkg_per_pix * np.pi * r**2
        rows.append({"filter": filter_name, "pupil": "CLEAR", "eefraction": float(frac), "radius": r,
                     "apcorr": float(1.0 / measured), "skyin": skyin, "skyout": skyout})
    return tuple(rows)  # cached: every simulated program of a session reuses them


def _common(state_or_detector) -> dict:
    det = state_or_detector if isinstance(state_or_detector, str) else state_or_detector.detector
    return {"USEAFTER": USEAFTER, "DETECTOR": det, "INSTRUME": "NIRCAM",
            "PEDIGREE": "DUMMY", "AUTHOR": "webbcal simulate"}


def _spatial(state: DetectorState) -> dict:
    ny, nx = state.shape
    return {"SUBARRAY": "FULL", "SUBSTRT1": 1, "SUBSTRT2": 1, "SUBSIZE1": nx, "SUBSIZE2": ny,
            "FASTAXIS": state.fastaxis, "SLOWAXIS": state.slowaxis}


class ReferenceWriter:
    """Writes references into ``cache_dir`` and registers them in its manifest."""

    def __init__(self, cache_dir: str | Path):
        from webbcal.refs import RefCache

        self.root = Path(cache_dir)
        self.root.mkdir(parents=True, exist_ok=True)
        if not (self.root / "manifest.json").exists():
            from webbcal.refs.cache import write_manifest

            write_manifest(self.root, [])
        self.cache = RefCache(self.root)
        self.written: list[Path] = []

    def write(self, name: str, reftype: str, meta: dict, arrays=None, tables=None, tree=None) -> Path:
        from webbcal.refs.formats import write_reference

        path = self.root / name
        write_reference(path, reftype, meta, arrays, tables=tables, tree=tree)
        self.cache.add(path, reftype)
        self.written.append(path)
        log.info("reference %s", path.name)
        return path

    # -- detector references (full frame) ---------------------------------------------

    def detector_references(self, state: DetectorState) -> None:
        det = state.detector.lower()
        meta = {**_common(state), **_spatial(state)}
        refpix = state.reference_pixels
        self.write(f"webbcal_{det}_mask.fits", "mask", {**meta, "DESCRIP": "simulated bad pixels"},
                   {"DQ": state.mask})
        sat = state.superbias + SATURATION_MARGIN * state.saturation_measured
        sat_dq = np.where(refpix, dqflags.NO_SAT_CHECK, 0).astype(np.uint32)
        sat = np.where(refpix, np.nan, np.minimum(sat, 65535.0)).astype(np.float32)
        self.write(f"webbcal_{det}_saturation.fits", "saturation", meta, {"SCI": sat, "DQ": sat_dq})
        self.write(f"webbcal_{det}_superbias.fits", "superbias", meta,
                   {"SCI": state.superbias, "ERR": np.full(state.shape, 0.5, np.float32),
                    "DQ": np.zeros(state.shape, np.uint32)})
        lin_dq = np.where(refpix, dqflags.NO_LIN_CORR, 0).astype(np.uint32)
        self.write(f"webbcal_{det}_linearity.fits", "linearity", meta,
                   {"COEFFS": state.lin_coeffs, "DQ": lin_dq})
        self.write(f"webbcal_{det}_gain.fits", "gain", meta, {"SCI": state.gain})
        self.write(f"webbcal_{det}_readnoise.fits", "readnoise", meta, {"SCI": state.readnoise_cds})

    def dark(self, state: DetectorState, timing: ExposureTiming, exp_type: str = "NRC_IMAGE") -> Path:
        """A dark matching this read pattern, subarray and NGROUPS (the dark step never cuts)."""
        win = timing.window
        cut = state.cut(win) if state.shape != win.shape else state
        # Mean end time (from the reset) of the frames averaged into each group.
        times = (timing.read_frame_indices() + 1).mean(axis=1) * timing.tframe
        planes = times[:, None, None].astype(np.float32) * cut.dark_rate[None]
        p = timing.pattern
        meta = {**_common(state), **win.keywords(), "FASTAXIS": state.fastaxis,
                "SLOWAXIS": state.slowaxis, "EXP_TYPE": exp_type, "READPATT": p.name,
                "NFRAMES": p.nframes, "GROUPGAP": p.groupgap, "NGROUPS": timing.ngroups,
                "NOUTPUTS": win.noutputs, "DESCRIP": "simulated dark, frame-averaged"}
        name = (f"webbcal_{state.detector.lower()}_{win.name.lower()}_{p.name.lower()}"
                f"_{timing.ngroups}_{exp_type.lower()}_dark.fits")
        return self.write(name, "dark", meta, {"SCI": planes, "DQ": np.zeros(win.shape, np.uint32),
                                               "AVDRKCUR": cut.dark_rate})

    def ipc(self, state: DetectorState) -> Path:
        nn = state.ipc_nn
        kernel = np.array([[0, nn, 0], [nn, 1 - 4 * nn, nn], [0, nn, 0]], np.float32)
        return self.write(f"webbcal_{state.detector.lower()}_ipc.fits", "ipc", _common(state), {"SCI": kernel})

    # -- optics references ---------------------------------------------------------------

    def flat(self, state: DetectorState, filter_name: str, pupil: str = "CLEAR") -> Path:
        """FLAT = pixel response × relative pixel area (reference pixels: NO_FLAT_FIELD)."""
        area = relative_area(state.detector)
        flat_dq = np.zeros(state.shape, np.uint32)
        flat_dq[state.reference_pixels] = dqflags.NO_FLAT_FIELD
        flat_dq[state.qe <= 0] |= dqflags.NO_FLAT_FIELD
        flat = np.where(state.reference_pixels, 1.0, state.qe * area).astype(np.float32)
        name = f"webbcal_{state.detector.lower()}_{filter_name.lower()}_{pupil.lower()}_flat.fits"
        return self.write(name, "flat", {**_common(state), **_spatial(state), "FILTER": filter_name,
                                         "PUPIL": pupil},
                          {"SCI": flat, "ERR": np.full(state.shape, 0.002, np.float32), "DQ": flat_dq})

    def optics_references(self, state: DetectorState, filters=None) -> None:
        """area, flats of ``filters`` (default: every filter of the channel), photom,
        distortion and filteroffset."""
        det = state.detector.lower()
        ap = aperture(state.detector)
        pixar_sr, pixar_a2 = pixar(state.detector)
        area = relative_area(state.detector)
        area_meta = {**_common(state), **_spatial(state), "PIXAR_SR": pixar_sr, "PIXAR_A2": pixar_a2}
        self.write(f"webbcal_{det}_area.fits", "area", area_meta, {"SCI": area})
        for f in filters or channel_filters(ap.channel):
            self.flat(state, f)
        filters = channel_filters(ap.channel)  # photom lists the whole channel
        photom = {"filter": list(filters), "pupil": ["CLEAR"] * len(filters),
                  "photmjsr": [PHOTMJSR[f] for f in filters],
                  "uncertainty": [0.01 * PHOTMJSR[f] for f in filters]}
        self.write(f"webbcal_{det}_photom.fits", "photom",
                   {**_common(state), "EXP_TYPE": "NRC_IMAGE", "PIXAR_SR": pixar_sr, "PIXAR_A2": pixar_a2},
                   tables={"PHOTOM": photom})
        self.write(f"webbcal_{det}_distortion.asdf", "distortion",
                   # No EXP_TYPE/PUPIL selector: one model serves imaging and grism exposures
                   # (CRDS files say so with P_ pattern keywords).
                   {**_common(state), "CHANNEL": ap.channel, "MODULE": ap.module,
                    "P_EXP_TYPE": "NRC_IMAGE|NRC_WFSS|NRC_TSIMAGE|NRC_TSGRISM|",
                    "P_PUPIL": "CLEAR|GRISMR|GRISMC|"},
                   tree={"model": detector_to_v2v3_model(ap)})
        self.write(f"webbcal_nrc{ap.module.lower()}_{ap.channel.lower()}_filteroffset.asdf", "filteroffset",
                   {"USEAFTER": USEAFTER, "INSTRUME": "NIRCAM", "CHANNEL": ap.channel, "MODULE": ap.module,
                    "DETECTOR": state.detector},
                   tree={"filters": filteroffset_rows(ap.channel)})

    def catalog_references(self) -> None:
        rows = []
        for f in SW_FILTERS + LW_FILTERS:
            scale = 0.031 if f in SW_FILTERS else 0.063
            if f.upper() in psfmod.FWHM_ARCSEC:
                rows.extend(apcorr_rows(f, scale))
        table = {k: [r[k] for r in rows] for k in rows[0]}
        meta = {"USEAFTER": USEAFTER, "INSTRUME": "NIRCAM", "EXP_TYPE": "NRC_IMAGE",
                "AUTHOR": "webbcal simulate", "PEDIGREE": "DUMMY"}
        self.write("webbcal_nircam_apcorr.fits", "apcorr", meta, tables={"APCORR": table})
        filters = SW_FILTERS + LW_FILTERS
        abvega = Table({"filter": list(filters), "pupil": ["CLEAR"] * len(filters),
                        "abvega_offset": [ABVEGA[f] for f in filters]})
        self.write("webbcal_nircam_abvegaoffset.asdf", "abvegaoffset", meta, tree={"abvega_offset": abvega})


def write_all_references(cache_dir, state: DetectorState, timings, *, ipc: bool = False,
                         filters=None) -> ReferenceWriter:
    """Every imaging reference for ``state``, one dark per distinct timing, flats of
    ``filters`` (default: the whole channel)."""
    writer = ReferenceWriter(cache_dir)
    writer.detector_references(state)
    seen = set()
    for timing in timings:
        key = (timing.pattern.name, timing.window.name, timing.ngroups)
        if key not in seen:
            seen.add(key)
            writer.dark(state, timing)
    if ipc:
        writer.ipc(state)
    writer.optics_references(state, filters)
    writer.catalog_references()
    return writer
