"""A simulated NIRCam imaging program: dithered uncal exposures, references, associations, truth.

``simulate_program(outdir, settings, seed)`` writes::

    outdir/uncal/jw<ppppp><ooo><vvv>_<gg><s><aa>_<eeeee>_<det>_uncal.fits   Level1bModel
    outdir/refs/            reference cache (manifest.json) — see references.py
    outdir/asn/             image2 association per exposure, one image3 for the dither set
    outdir/abs_refcat.ecsv  astrometric reference catalog of the scene's brighter stars
                            (Gaia-like errors; ``tweakreg.abs_refcat``), see scene.py
    outdir/truth/           catalog.ecsv (the scene), abs_refcat.ecsv (its true positions
                            and drawn errors), per exposure: <exp>_rate.fits (true
                            count rate, DN/s, what Detector1 should measure), <exp>_crs.ecsv
                            (injected cosmic rays), <exp>_sources.ecsv (true pixel positions
                            and count rates), pointing.json (commanded vs true attitude, sky
                            offsets), settings.json

The uncal headers hold only what a real exposure holds: the *commanded* pointing. The
telescope really pointed ``POINTING_ERROR_MAS`` (rms per axis, official test data: 22–46 mas
header errors) and ``ROLL_ERROR_ARCSEC`` away, and each exposure's sky differs by
``SKY_OFFSET_FRACTION`` (rms); both are recorded only in the truth.

Randomness: every stream is ``default_rng([seed, purpose, index])``, so an exposure does
not depend on the order or number of the others (except through the optional persistence).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table

from webbcal.asn import write_associations as generate_associations_into
from webbcal.errors import WebbcalError
from webbcal.io.atomic import atomic_path, atomic_write_text
from webbcal.simulate import psf as psfmod
from webbcal.simulate import scene as scenemod
from webbcal.simulate.detector import ExposureSetup, make_detector_state, simulate_ramps, update_persistence
from webbcal.simulate.readout import ExposureTiming, read_pattern, subarray
from webbcal.simulate.references import LW_FILTERS, PHOTMJSR, pixar, relative_area, write_all_references
from webbcal.wcs.apertures import aperture
from webbcal.wcs.distortion import detector_to_v2v3_model, filteroffset_rows, ideal_to_v2v3
from webbcal.wcs.pointing import detector_to_world, pa_v3, position_angle, v2v3_to_sky, world_to_detector

log = logging.getLogger("webbcal.simulate.program")

POINTING_ERROR_MAS = 22.0  # per axis rms → ~32 mas total, as in the official test data
ROLL_ERROR_ARCSEC = 2.0
SKY_OFFSET_FRACTION = 0.025
FIELD_CENTRE = (53.1600, -27.7900)  # GOODS-S-like, low zodiacal background
ROLL_DEG = 71.3
START = _dt.datetime(2024, 1, 15, 3, 0, 0)
OVERHEAD_S = 60.0  # between exposures (slew + reset)
SOURCE_DENSITY_ARCMIN2 = 500.0
MAX_PATTERN = 16  # the scene covers a 2 x 8 dither pattern whatever NDITHER is  # sources per arcmin² to the catalog limit
# Stream purposes for SeedSequence([seed, purpose, index]).
_SCENE, _EXPOSURE, _POINTING, _REFCAT = 11, 12, 13, 14
REFCAT_NAME = "abs_refcat.ecsv"
# Keywords that stdatamodels reads from the SCI extension header (wcsinfo.schema etc.).
SCI_HDU_KEYWORDS = ("RA_REF", "DEC_REF", "ROLL_REF", "V2_REF", "V3_REF", "V3I_YANG", "VPARITY",
                    "PA_V3", "RA_V1", "DEC_V1", "PA_APER", "VA_SCALE", "RADESYS", "XPOSURE", "TELAPSE",
                    "XREF_SCI", "YREF_SCI", "WCSAXES", "CRPIX1", "CRPIX2", "CRVAL1", "CRVAL2",
                    "CTYPE1", "CTYPE2", "CUNIT1", "CUNIT2", "CDELT1", "CDELT2", "PC1_1", "PC1_2",
                    "PC2_1", "PC2_2", "S_REGION")


@dataclass
class Settings:
    filter: str = "F150W"
    detector: str = "NRCA1"
    subarray: str = "FULL"
    readpatt: str = "BRIGHT2"
    ngroups: int = 10
    nints: int = 1
    ndither: int = 8
    nsources: int | None = None  # None: from source_density over the scene area
    source_density: float = SOURCE_DENSITY_ARCMIN2
    ipc: bool = False
    persistence: bool = False
    zeroframe: bool = False
    program: str = "09999"
    observation: int = 1
    visit: int = 1
    wfss: bool = False  # handled by webbcal.simulate.wfss (WFSS engineer)
    write_references: bool = True  # False: exposures and truth only (e.g. a re-run)
    extra: dict = field(default_factory=dict)  # free-form options for the WFSS hook

    def validate(self) -> "Settings":
        self.filter = self.filter.upper()
        self.detector = self.detector.upper()
        ap = aperture(self.detector)
        subarray(self.subarray)
        read_pattern(self.readpatt)
        scenemod.flux_column(self.filter)
        if (self.filter in LW_FILTERS) != (ap.channel == "LONG"):
            raise WebbcalError("filter", f"{self.filter} is not a filter of the {ap.channel}-wave "
                               f"detector {self.detector}")
        if self.ndither < 1:
            raise WebbcalError("ndither", f"need at least one exposure, not {self.ndither}")
        return self


PRESETS = {
    # Small: SUB640, 6 BRIGHT2 groups, 4 dithers — seconds.
    "demo": dict(subarray="SUB640", readpatt="BRIGHT2", ngroups=6, nints=1, ndither=4),
    # The official comparison set (official_pipeline_offline.md).
    "benchmark": dict(subarray="FULL", readpatt="BRIGHT2", ngroups=10, nints=1, ndither=8,
                      nsources=947),
}


def settings_for(preset: str | None = None, **overrides) -> Settings:
    base = dict(PRESETS.get(preset or "demo", {})) if preset else {}
    if preset and preset not in PRESETS:
        raise WebbcalError("preset", f"unknown preset {preset!r} (known: {', '.join(PRESETS)})")
    base.update({k: v for k, v in overrides.items() if v is not None})
    if overrides.get("detector") is None and str(base.get("filter", "")).upper() in LW_FILTERS:
        base["detector"] = "NRCALONG"  # a long-wave filter implies a long-wave detector
    return Settings(**base).validate()


# --- dithers and pointing ----------------------------------------------------------------

SUBPIXEL_STEPS = [(0.0, 0.0), (5.5, 3.25), (2.25, 7.5), (8.75, 10.75), (11.5, 1.5), (1.25, 12.25),
                  (13.75, 6.5), (6.0, 14.25)]  # pixels: half/quarter-pixel phases + small steps
PRIMARY_FRACTION = 0.06  # primary step as a fraction of the field width


def dither_positions(ndither: int) -> list[tuple[int, int]]:
    """(primary, sub-pixel) index of each exposure: the first ``ndither`` of one fixed
    sequence — 4 sub-pixel points at primary 1, 4 at primary 2, then the next 4 at each —
    so exposure k is the same pointing whatever NDITHER is (2 × 4 = 8 for the benchmark)."""
    seq = [(p, s) for block in range(len(SUBPIXEL_STEPS) // 4) for p in (0, 1)
           for s in range(4 * block, 4 * block + 4)]
    while len(seq) < ndither:  # beyond 16: keep stepping along a diagonal
        k = len(seq)
        seq.append((k % 2, k))
    return seq[:ndither]


def dither_offsets(ndither: int, scale: float, width_pix: int) -> list[tuple[float, float]]:
    """Ideal-frame offsets (arcsec) of every exposure: primary step (≈ 6 % of the field,
    so bad pixels and edges move) plus a sub-pixel step (NIRCam STANDARD-like)."""
    step = PRIMARY_FRACTION * width_pix * scale
    out = []
    for p, s in dither_positions(ndither):
        sx, sy = SUBPIXEL_STEPS[s] if s < len(SUBPIXEL_STEPS) else (3.37 * s, 2.61 * s)
        out.append((p * step + sx * scale, p * 0.8 * step + sy * scale))
    return out


def commanded_pointing(ap, ref_v2, ref_v3, offset):
    """Header pointing of one dither: the base attitude moved by ``offset`` (ideal arcsec)."""
    base = (FIELD_CENTRE[0], FIELD_CENTRE[1], ROLL_DEG, ref_v2, ref_v3)
    v2, v3 = ideal_to_v2v3(ap, -offset[0], -offset[1])
    v2 = v2 - ap.v2_ref + ref_v2
    v3 = v3 - ap.v3_ref + ref_v3
    ra, dec = v2v3_to_sky(v2, v3, *base)
    ra1, dec1 = v2v3_to_sky(v2, v3 + 1.0, *base)
    roll = float(position_angle(ra, dec, ra1, dec1))
    return float(ra), float(dec), roll


# --- one exposure ------------------------------------------------------------------------

@dataclass
class Exposure:
    index: int  # 1-based exposure number
    name: str  # jw..._nrca1 (no suffix)
    header: fits.Header
    sci_header: dict
    true_pointing: dict
    sky_factor: float
    start: _dt.datetime


def exposure_name(settings: Settings, number: int) -> str:
    return (f"jw{settings.program}{settings.observation:03d}{settings.visit:03d}_02101_{number:05d}"
            f"_{settings.detector.lower()}")


def _mjd(t: _dt.datetime) -> float:
    return (t - _dt.datetime(1858, 11, 17)).total_seconds() / 86400.0


def build_header(settings: Settings, timing: ExposureTiming, number: int, start: _dt.datetime,
                 pointing: tuple[float, float, float], ref_v2: float, ref_v3: float,
                 offset: tuple[float, float], ndither: int) -> fits.Header:
    """The primary header of a real NIRCam imaging uncal (spec detector1 §2.6)."""
    ap = aperture(settings.detector)
    win = timing.window
    ra, dec, roll = pointing
    duration = timing.nints * timing.integration_duration
    end = start + _dt.timedelta(seconds=duration)
    mid = start + _dt.timedelta(seconds=duration / 2)
    ra_v1, dec_v1 = v2v3_to_sky(0.0, 0.0, ra, dec, roll, ref_v2, ref_v3)
    h = fits.Header()
    cards = {
        "TELESCOP": "JWST", "INSTRUME": "NIRCAM", "DETECTOR": ap.detector, "MODULE": ap.module,
        "CHANNEL": ap.channel, "FILTER": settings.filter, "PUPIL": "CLEAR",
        "EXP_TYPE": "NRC_IMAGE", "PROGRAM": settings.program,
        "OBSERVTN": f"{settings.observation:03d}", "VISIT": f"{settings.visit:03d}",
        "VISITGRP": "02", "SEQ_ID": "1", "ACT_ID": "01", "EXPOSURE": f"{number:05d}",
        "OBS_ID": f"V{settings.program}{settings.observation:03d}{settings.visit:03d}P0000000002101",
        "VISIT_ID": f"{settings.program}{settings.observation:03d}{settings.visit:03d}",
        "TEMPLATE": "NIRCam Imaging", "OBSLABEL": "webbcal simulated field",
        "TARGNAME": "WEBBCAL-FIELD", "TARGPROP": "WEBBCAL-FIELD", "TARG_RA": FIELD_CENTRE[0],
        "TARG_DEC": FIELD_CENTRE[1], "TSOVISIT": False, "EXPCOUNT": ndither,
        "EXPSPCIN": number, "PNTGTYPE": "science",
        "DATE-OBS": start.strftime("%Y-%m-%d"), "TIME-OBS": start.strftime("%H:%M:%S.%f")[:-3],
        "DATE-BEG": start.isoformat(timespec="milliseconds"), "DATE-END": end.isoformat(timespec="milliseconds"),
        "EXPSTART": _mjd(start), "EXPMID": _mjd(mid), "EXPEND": _mjd(end),
        "ZEROFRAM": bool(settings.zeroframe), "DATAPROB": False,
        **timing.keywords(),
        **win.keywords(), "FASTAXIS": ap.fastaxis, "SLOWAXIS": ap.slowaxis,
        **_pattern_keywords(number, ndither),
        "XOFFSET": round(offset[0], 4), "YOFFSET": round(offset[1], 4),
        "RA_REF": ra, "DEC_REF": dec, "ROLL_REF": roll, "V2_REF": ref_v2, "V3_REF": ref_v3,
        "V3I_YANG": ap.v3_idl_yang, "VPARITY": ap.vparity,
        "PA_V3": pa_v3(ra, dec, roll, ref_v2, ref_v3), "RA_V1": float(ra_v1), "DEC_V1": float(dec_v1),
        "PA_APER": roll - ap.vparity * ap.v3_idl_yang, "VA_SCALE": 1.0, "RADESYS": "ICRS",
    }
    cards.update(_fits_wcs_keywords(ap, win, ra, dec, roll, ref_v2, ref_v3, settings.filter))
    for key, value in cards.items():
        h[key] = value
    return h


def _pattern_keywords(number: int, ndither: int) -> dict:
    positions = dither_positions(ndither)
    primary = {p for p, _ in positions}
    primary_k, sub_k = positions[number - 1]
    return {"PATTTYPE": "INTRAMODULEBOX" if len(primary) > 1 else "NONE",
            "PATT_NUM": primary_k + 1, "NUMDTHPT": len(primary), "PATTSIZE": "SMALL",
            "SUBPXPAT": "STANDARD" if ndither > len(primary) else "NONE",
            "SUBPXPTS": max(1, ndither // len(primary)), "SUBPXNUM": sub_k + 1}


def _fits_wcs_keywords(ap, win, ra, dec, roll, ref_v2, ref_v3, filter_name) -> dict:
    """The pre-assign_wcs FITS WCS of a raw exposure: TAN at the aperture reference pixel
    (XREF_SCI/YREF_SCI, 1-based), orientation from ROLL_REF, V3I_YANG, VPARITY
    (jwst ``util.calc_rotation_matrix`` convention), and the S_REGION footprint."""
    xref = (win.xsize - 1) / 2 + 1.0
    yref = (win.ysize - 1) / 2 + 1.0
    theta = np.deg2rad(roll - ap.vparity * ap.v3_idl_yang)
    hdr = {"V2_REF": ref_v2, "V3_REF": ref_v3, "RA_REF": ra, "DEC_REF": dec, "ROLL_REF": roll,
           "SUBSTRT1": win.xstart, "SUBSTRT2": win.ystart, "FILTER": filter_name, "PUPIL": "CLEAR"}
    model = detector_to_v2v3_model(ap)
    x = np.array([-0.5, win.xsize - 0.5, win.xsize - 0.5, -0.5])
    y = np.array([-0.5, -0.5, win.ysize - 0.5, win.ysize - 0.5])
    cra, cdec = detector_to_world(x, y, hdr, model, filteroffset_rows(ap.channel))
    region = "POLYGON ICRS  " + " ".join(f"{a:.9f} {d:.9f}" for a, d in zip(cra, cdec))
    return {
        "XREF_SCI": xref, "YREF_SCI": yref, "WCSAXES": 2, "CRPIX1": xref, "CRPIX2": yref,
        "CRVAL1": ra, "CRVAL2": dec, "CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN",
        "CUNIT1": "deg", "CUNIT2": "deg", "CDELT1": ap.scale / 3600, "CDELT2": ap.scale / 3600,
        "PC1_1": ap.vparity * np.cos(theta), "PC1_2": np.sin(theta),
        "PC2_1": -ap.vparity * np.sin(theta), "PC2_2": np.cos(theta), "S_REGION": region,
    }


def group_table(timing: ExposureTiming, start: _dt.datetime) -> np.ndarray:
    """GROUP rows (one per integration × group) with their end times."""
    from webbcal.io.layouts import GROUP_COLUMNS

    rows = np.zeros(timing.nints * timing.ngroups, dtype=[(n, d) for n, d in GROUP_COLUMNS])
    win = timing.window
    k = 0
    last_frame = timing.read_frame_indices()[:, -1]
    for i in range(timing.nints):
        t0 = start + _dt.timedelta(seconds=i * timing.integration_duration + timing.tframe)
        for g in range(timing.ngroups):
            t = t0 + _dt.timedelta(seconds=float((last_frame[g] + 1) * timing.tframe))
            doy = t.timetuple().tm_yday
            ms = (t - t.replace(hour=0, minute=0, second=0, microsecond=0)).total_seconds() * 1e3
            rows[k] = (i + 1, g + 1, doy, int(ms), int(round((ms % 1) * 1e3)),
                       t.isoformat(timespec="microseconds")[:26].encode(),
                       win.xsize, win.ysize, timing.pattern.groupgap, 0, b"COMPLETE", _mjd(t), _mjd(t))
            k += 1
    return rows


def int_times_table(timing: ExposureTiming, start: _dt.datetime) -> np.ndarray:
    from webbcal.io.layouts import INT_TIMES_COLUMNS

    rows = np.zeros(timing.nints, dtype=[(n, d) for n, d in INT_TIMES_COLUMNS])
    for i in range(timing.nints):
        s = _mjd(start) + i * timing.integration_duration / 86400.0
        e = s + timing.integration_duration / 86400.0
        # No barycentric correction is simulated: BJD_TDB columns repeat the UTC MJDs.
        rows[i] = (i + 1, s, (s + e) / 2, e, s, (s + e) / 2, e)
    return rows


# --- the scene on the detector -----------------------------------------------------------

def render_rate(settings: Settings, catalog: Table, header: fits.Header, true_pointing: dict,
                distortion, filteroffset, sky_factor: float, window) -> tuple[np.ndarray, Table]:
    """Illuminated count rate (DN/s, no dark, uniform detector response) and source table."""
    ap = aperture(settings.detector)
    pixar_sr, _ = pixar(settings.detector)
    photmjsr = PHOTMJSR[settings.filter]
    area = relative_area(settings.detector)[window.slices]  # cached full frame
    sky = scenemod.sky_background(settings.filter) * sky_factor
    rate = (sky / photmjsr * area).astype(np.float32)  # a pixel collects sky ∝ its area
    true_hdr = fits.Header(header, copy=True)
    for k in ("RA_REF", "DEC_REF", "ROLL_REF"):
        true_hdr[k] = true_pointing[k]
    ra, dec = np.asarray(catalog["ra"], float), np.asarray(catalog["dec"], float)
    x, y = world_to_detector(ra, dec, true_hdr, distortion, filteroffset)
    # Local north and east directions on the detector, for galaxy orientation.
    xn, yn = world_to_detector(ra, dec + 0.2 / 3600, true_hdr, distortion, filteroffset)
    xe, ye = world_to_detector(ra + 0.2 / 3600 / np.cos(np.deg2rad(dec)), dec, true_hdr, distortion, filteroffset)
    dn_per_jy = 1.0 / (photmjsr * 1e6 * pixar_sr)
    flux = np.asarray(catalog[scenemod.flux_column(settings.filter)], float) * dn_per_jy
    psf = psfmod.psf_for(settings.filter, ap.scale)
    ny, nx = window.shape
    margin = 60
    for k in np.flatnonzero((x > -margin) & (x < nx + margin) & (y > -margin) & (y < ny + margin)):
        if not catalog["is_extended"][k]:
            psfmod.add_point_source(rate, psf, x[k], y[k], flux[k])
        else:
            th = np.deg2rad(catalog["theta"][k])
            dx = np.cos(th) * (xn[k] - x[k]) + np.sin(th) * (xe[k] - x[k])
            dy = np.cos(th) * (yn[k] - y[k]) + np.sin(th) * (ye[k] - y[k])
            psfmod.add_sersic(rate, psf, x[k], y[k], flux[k], catalog["r_eff"][k] / ap.scale,
                              catalog["sersic_n"][k], catalog["axis_ratio"][k],
                              np.rad2deg(np.arctan2(dy, dx)))
    sources = Table({"id": catalog["id"], "x": x, "y": y, "rate_dn_s": flux,
                     "flux_jy": catalog[scenemod.flux_column(settings.filter)],
                     "is_extended": catalog["is_extended"]})
    sources["on_detector"] = (x >= -0.5) & (x < nx - 0.5) & (y >= -0.5) & (y < ny - 0.5)
    sources.meta["comment"] = "x, y: 0-based pixel of the exposure array (true pointing)"
    return rate, sources


# --- the program ---------------------------------------------------------------------------

def _rng(seed: int, purpose: int, index: int = 0) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), purpose, index]))


def simulate_program(outdir, settings: Settings, seed: int = 1) -> dict:
    """Simulate the whole program into ``outdir``; returns a summary dict."""
    from webbcal.io import Product, write_product

    settings = settings.validate()
    out = Path(outdir)
    for sub in ("uncal", "refs", "asn", "truth"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    ap = aperture(settings.detector)
    window = subarray(settings.subarray)
    timing = ExposureTiming(read_pattern(settings.readpatt), window, settings.ngroups, settings.nints)
    distortion = detector_to_v2v3_model(ap)
    filteroffset = filteroffset_rows(ap.channel)

    # Scene: a square covering the window and the dither span with a margin.
    offsets = dither_offsets(settings.ndither, ap.scale, max(window.xsize, window.ysize))
    # Scene size from the largest pattern, so a given exposure does not depend on NDITHER.
    largest = dither_offsets(max(settings.ndither, MAX_PATTERN), ap.scale, max(window.xsize, window.ysize))
    span = max(max(abs(o[0]), abs(o[1])) for o in largest)
    width = max(window.xsize, window.ysize) * ap.scale * 1.45 + 2 * span + 6.0
    nsources = settings.nsources
    if nsources is None:
        nsources = max(10, int(round(settings.source_density * (width / 60.0) ** 2)))
    # The aperture reference point of a subarray: its centre (in full-frame pixels).
    cx = window.xstart - 1 + (window.xsize - 1) / 2
    cy = window.ystart - 1 + (window.ysize - 1) / 2
    ref_v2, ref_v3 = (float(v) for v in distortion(cx, cy))
    ra_c, dec_c = v2v3_to_sky(ref_v2, ref_v3, FIELD_CENTRE[0], FIELD_CENTRE[1], ROLL_DEG, ref_v2, ref_v3)
    catalog = scenemod.make_catalog(_rng(seed, _SCENE), float(ra_c), float(dec_c), width, nsources)
    _write_table(catalog, out / "truth" / "catalog.ecsv")
    refcat, refcat_truth = scenemod.reference_catalog(catalog, settings.filter, _rng(seed, _REFCAT))
    _write_table(refcat, out / REFCAT_NAME)
    _write_table(refcat_truth, out / "truth" / REFCAT_NAME)
    log.info("scene: %d sources in %.0f\" x %.0f\"", len(catalog), width, width)

    state = make_detector_state(settings.detector, seed)
    written = []
    if settings.write_references:
        writer = write_all_references(out / "refs", state, [timing], ipc=settings.ipc,
                                      filters=[settings.filter])
        written = writer.written
        log.info("references: %d files in %s", len(written), out / "refs")

    exposures, pointing_truth = [], []
    start = START
    for k, offset in enumerate(offsets, start=1):
        t0 = time.perf_counter()
        ra, dec, roll = commanded_pointing(ap, ref_v2, ref_v3, offset)
        header = build_header(settings, timing, k, start, (ra, dec, roll), ref_v2, ref_v3, offset,
                              settings.ndither)
        prng = _rng(seed, _POINTING, k)
        err = prng.normal(0.0, POINTING_ERROR_MAS / 1000.0, 2)  # arcsec, along RA·cosδ and Dec
        true = {"RA_REF": ra + err[0] / 3600 / np.cos(np.deg2rad(dec)),
                "DEC_REF": dec + err[1] / 3600,
                "ROLL_REF": roll + prng.normal(0.0, ROLL_ERROR_ARCSEC) / 3600}
        sky_factor = float(1.0 + prng.normal(0.0, SKY_OFFSET_FRACTION))
        name = exposure_name(settings, k)
        rate, sources = render_rate(settings, catalog, header, true, distortion, filteroffset,
                                    sky_factor, window)
        setup = ExposureSetup(timing, zeroframe=settings.zeroframe, ipc=settings.ipc,
                              persistence=settings.persistence,
                              start_time_s=(start - START).total_seconds())
        sci, zero, truth = simulate_ramps(rate, setup, state, _rng(seed, _EXPOSURE, k))
        if settings.persistence:
            update_persistence(state, truth)

        arrays = {"SCI": sci}
        if zero is not None:
            arrays["ZEROFRAME"] = zero
        sci_meta = {key: header[key] for key in SCI_HDU_KEYWORDS if key in header}
        sci_meta["BUNIT"] = "DN"
        product = Product("Level1bModel", meta=header, arrays=arrays, ext_meta={"SCI": sci_meta},
                          tables={"GROUP": group_table(timing, start), "INT_TIMES": int_times_table(timing, start)})
        write_product(product, out / "uncal" / f"{name}_uncal.fits")
        _write_truth(out / "truth", name, truth, sources, header)

        pointing_truth.append({
            "exposure": name, "commanded": {"RA_REF": ra, "DEC_REF": dec, "ROLL_REF": roll},
            "true": true, "error_mas": {"ra_cosdec": float(err[0] * 1e3), "dec": float(err[1] * 1e3)},
            "sky_mjy_sr": scenemod.sky_background(settings.filter) * sky_factor, "sky_factor": sky_factor,
            "cosmic_ray_events": int(len(np.unique(truth["cosmic_rays"][["int", "event"]])))
            if len(truth["cosmic_rays"]) else 0,
            "ideal_offset_arcsec": list(offset)})
        exposures.append(name)
        log.info("exposure %d/%d %s: %.1f s", k, len(offsets), name, time.perf_counter() - t0)
        start = start + _dt.timedelta(seconds=timing.nints * timing.integration_duration + OVERHEAD_S)

    atomic_write_text(out / "truth" / "pointing.json", json.dumps(pointing_truth, indent=1))
    atomic_write_text(out / "truth" / "settings.json",
                      json.dumps({**dataclasses.asdict(settings), "seed": seed}, indent=1, default=str))
    if settings.wfss:
        try:
            from webbcal.simulate.wfss import simulate_wfss
        except ImportError as exc:
            raise WebbcalError("wfss", f"WFSS simulation is not available ({exc})") from None
        simulate_wfss(out, settings, catalog, _rng(seed, 21), seed=seed)
    # Associations as the official asn_generate would build them from these headers.
    asns = generate_associations_into(out / "uncal", out / "asn")

    elapsed = time.perf_counter() - t_start
    log.info("program simulated in %.1f s: %d exposures", elapsed, len(exposures))
    return {"exposures": exposures, "associations": [str(p) for p in asns],
            "references": [str(p) for p in written], "refcat": str(out / REFCAT_NAME),
            "seconds": elapsed}


def _write_table(table: Table, path: Path) -> None:
    with atomic_path(path) as tmp:
        table.write(tmp, format="ascii.ecsv", overwrite=True)


def _write_truth(truth_dir: Path, name: str, truth: dict, sources: Table, header: fits.Header) -> None:
    hdr = fits.Header()
    for key in ("DETECTOR", "FILTER", "SUBARRAY", "SUBSTRT1", "SUBSTRT2", "READPATT", "NGROUPS", "NINTS"):
        hdr[key] = header[key]
    hdr["BUNIT"] = "DN/s"
    hdr["COMMENT"] = "True illuminated count rate without dark (what Detector1 should measure)"
    hdul = fits.HDUList([fits.PrimaryHDU(header=hdr),
                         fits.ImageHDU(truth["rate"].astype(np.float32), name="RATE"),
                         fits.ImageHDU(truth["saturation_group"], name="SATGROUP")])
    with atomic_path(truth_dir / f"{name}_rate.fits") as tmp:
        hdul.writeto(tmp, overwrite=True)
    _write_table(Table(truth["cosmic_rays"]), truth_dir / f"{name}_crs.ecsv")
    _write_table(sources, truth_dir / f"{name}_sources.ecsv")


# --- associations ---------------------------------------------------------------------------

