"""Box extraction of WFSS slits and the x1d product (WFSSMultiSpecModel layout).

jwst 3.0 ``extract_1d`` for WFSS (spec image2_image3_wfss.md §4.9): the aperture is the
whole cut-out, weight 1 where both WAVELENGTH and SCI are finite; along the dispersion

    sum = Σ SCI,  NPIXELS = Σ w,  VAR_k = Σ w² VAR_k          (k = POISSON, RNOISE, FLAT)
    FLUX = sum · PIXAR_SR · 1e6 [Jy],  SURF_BRIGHT = sum / NPIXELS [MJy/sr]
    FLUX_ERROR = sqrt(Σ_k FLUX_VAR_k),  DQ = DO_NOT_USE where FLUX is NaN

with the 1-D wavelength the mean WAVELENGTH across the dispersion; only elements with a
finite wavelength are kept. No background is subtracted (BACKGROUND = 0, as officially
for WFSS). Point sources get the APCORR aperture correction when an NRC_WFSS APCORR
reference is given.

``x1d_product``: one EXTRACT1D table per spectral order, one row per source sorted by
SOURCE_ID, vector columns padded with NaN (DQ with 1) to the longest spectrum.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from astropy.io import fits

from webbcal import dqflags
from webbcal.io.layouts import wfss_spectable_dtype

_VARIANCES = ("POISSON", "RNOISE", "FLAT")


@dataclass
class Spectrum:
    """One extracted spectrum (1-D arrays of equal length) and its slit's metadata."""

    source_id: int
    order: int
    source_type: str
    wavelength: np.ndarray
    flux: np.ndarray
    flux_var: dict  # POISSON/RNOISE/FLAT -> array
    surf_bright: np.ndarray
    sb_var: dict
    npixels: np.ndarray
    dq: np.ndarray
    source_xpos: float
    source_ypos: float
    source_ra: float
    source_dec: float
    extract2d: tuple[int, int, int, int]  # xstart, ystart, xstop, ystop (1-based as written)

    @property
    def flux_error(self) -> np.ndarray:
        return np.sqrt(sum(self.flux_var.values()))

    @property
    def sb_error(self) -> np.ndarray:
        return np.sqrt(sum(self.sb_var.values()))


def box_sums(slit) -> tuple[np.ndarray, ...]:
    """(wavelength, sum, npixels, {k: variance}) along the dispersion of a slit."""
    axis = 0 if slit.dispaxis == 1 else 1  # the cross-dispersion axis to sum over
    wavelength = np.asarray(slit.wavelength, dtype=float)
    data = np.asarray(slit.data, dtype=float)
    weight = np.isfinite(wavelength) & np.isfinite(data)
    total = np.where(weight, data, 0.0).sum(axis=axis)
    npixels = weight.sum(axis=axis).astype(float)
    variances = {}
    for kind in _VARIANCES:
        array = getattr(slit, f"var_{kind.lower()}")
        if array is None:
            variances[kind] = np.zeros_like(total)
        else:
            values = np.asarray(array, dtype=float)
            variances[kind] = np.where(weight & np.isfinite(values), values, 0.0).sum(axis=axis)
    finite_wave = np.isfinite(wavelength)
    counts = finite_wave.sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        wave_1d = np.where(finite_wave, wavelength, 0.0).sum(axis=axis) / counts
    wave_1d[counts == 0] = np.nan
    return wave_1d, total, npixels, variances


def extract_slit(slit, apcorr=None) -> Spectrum | None:
    """Box-extract one slit; None when it has no pixel with a wavelength."""
    wavelength, total, npixels, variances = box_sums(slit)
    keep = np.isfinite(wavelength)
    if not keep.any():
        return None
    wavelength, total, npixels = wavelength[keep], total[keep], npixels[keep]
    variances = {k: v[keep] for k, v in variances.items()}
    empty = npixels <= 0
    total = np.where(empty, np.nan, total)
    calibrated = slit.bunit == "MJy/sr" and slit.keywords.get("PIXAR_SR")
    to_flux = float(slit.keywords["PIXAR_SR"]) * 1e6 if calibrated else 1.0
    flux = total * to_flux
    flux_var = {k: v * to_flux**2 for k, v in variances.items()}
    n = np.where(empty, 1.0, npixels)
    surf_bright = total / n
    sb_var = {k: v / n**2 for k, v in variances.items()}
    if apcorr is not None and slit.source_type == "POINT":
        correction = apcorr(wavelength, npixels)
        flux, surf_bright = flux * correction, surf_bright * correction
        flux_var = {k: v * correction**2 for k, v in flux_var.items()}
        sb_var = {k: v * correction**2 for k, v in sb_var.items()}
    dq = np.where(np.isnan(flux), dqflags.DO_NOT_USE, 0).astype(np.uint32)
    ny, nx = slit.shape
    extent = (slit.xstart + 1, slit.ystart + 1, slit.xstart + 1 + nx, slit.ystart + 1 + ny)
    return Spectrum(slit.source_id, slit.order, slit.source_type or "", wavelength, flux, flux_var,
                    surf_bright, sb_var, npixels, dq, slit.source_xpos, slit.source_ypos,
                    slit.source_ra, slit.source_dec, extent)


# --------------------------------------------------------------------------- the product

def exposure_group_id(meta) -> str:
    """jwst ``group_id`` of an exposure: jw<program><obs><visit>_<group><seq><act>_<exposure>."""
    keys = ("PROGRAM", "OBSERVTN", "VISIT", "VISITGRP", "SEQ_ID", "ACT_ID", "EXPOSURE")
    parts = [str(meta.get(k, "")).strip() for k in keys]
    if all(parts):
        p = dict(zip(keys, parts))
        return (f"jw{p['PROGRAM']}{p['OBSERVTN']}{p['VISIT']}_{p['VISITGRP']}{p['SEQ_ID']}{p['ACT_ID']}"
                f"_{p['EXPOSURE']}")
    return str(meta.get("FILENAME", "exposure")).split("_cal")[0].split("_rate")[0]


def spectra_table(spectra: list[Spectrum]) -> np.ndarray:
    """EXTRACT1D rows (sorted by SOURCE_ID) padded to the longest spectrum."""
    spectra = sorted(spectra, key=lambda s: s.source_id)
    width = max(s.wavelength.size for s in spectra)
    table = np.zeros(len(spectra), dtype=wfss_spectable_dtype(width))
    for name in table.dtype.names:
        if table.dtype[name].base.kind == "f":
            table[name] = np.nan
    table["DQ"] = dqflags.DO_NOT_USE
    for i, s in enumerate(spectra):
        n = s.wavelength.size
        row = table[i]
        row["SOURCE_ID"] = s.source_id
        row["WAVELENGTH"][:n] = s.wavelength
        row["FLUX"][:n] = s.flux
        row["FLUX_ERROR"][:n] = s.flux_error
        row["SURF_BRIGHT"][:n] = s.surf_bright
        row["SB_ERROR"][:n] = s.sb_error
        for kind in _VARIANCES:
            row[f"FLUX_VAR_{kind}"][:n] = s.flux_var[kind]
            row[f"SB_VAR_{kind}"][:n] = s.sb_var[kind]
            row[f"BKGD_VAR_{kind}"][:n] = 0.0
        row["BACKGROUND"][:n] = 0.0
        row["BKGD_ERROR"][:n] = 0.0
        row["DQ"][:n] = s.dq
        row["NPIXELS"][:n] = s.npixels
        row["N_ALONGDISP"] = n
        row["SOURCE_TYPE"] = s.source_type.encode("ascii")
        row["SOURCE_XPOS"], row["SOURCE_YPOS"] = s.source_xpos, s.source_ypos
        row["SOURCE_RA"], row["SOURCE_DEC"] = s.source_ra, s.source_dec
        (row["EXTRACT2D_XSTART"], row["EXTRACT2D_YSTART"],
         row["EXTRACT2D_XSTOP"], row["EXTRACT2D_YSTOP"]) = s.extract2d
    return table


def x1d_product(meta: fits.Header, spectra: list[Spectrum], *, filename: str | None = None):
    """The WFSSMultiSpecModel Product: one EXTRACT1D per spectral order of the exposure."""
    from webbcal.io.product import Product

    header = fits.Header(meta, copy=True)
    for key in ("BUNIT", "S_REGION"):
        header.remove(key, ignore_missing=True, remove_all=True)
    group = exposure_group_id(meta)
    tables, ext_meta = {}, {}
    orders = sorted({s.order for s in spectra})
    for number, order in enumerate(orders, start=1):
        key = f"EXTRACT1D,{number}"
        tables[key] = spectra_table([s for s in spectra if s.order == order])
        cards = {"FILENAME": filename or str(meta.get("FILENAME", "")), "EXPGRPID": f"{group}_{order}",
                 "SPORDER": int(order), "DISPAXIS": int(meta.get("DISPAXIS", 1))}
        for keyword in ("EFFEXPTM", "EFFINTTM"):
            if meta.get(keyword) is not None:
                cards[keyword] = meta[keyword]
        ext_meta[key] = cards
    return Product(model="WFSSMultiSpecModel", meta=header, tables=tables, ext_meta=ext_meta)
