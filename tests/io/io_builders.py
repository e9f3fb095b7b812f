"""Shared builders for the I/O tests: schema-valid NIRCam headers, a gwcs, product factories."""

from __future__ import annotations

import numpy as np
import pytest
from astropy import coordinates as coord
from astropy import units as u
from astropy.io import fits
from astropy.modeling import models

from webbcal.io.layouts import GROUP_COLUMNS, INT_TIMES_COLUMNS, wfss_spectable_dtype
from webbcal.io.product import Product

NINTS, NGROUPS, NY, NX = 2, 4, 16, 12


def nircam_header(**extra) -> fits.Header:
    """Primary keywords that satisfy the stdatamodels enums (strict validation)."""
    header = fits.Header()
    for key, value in {
        "TELESCOP": "JWST", "INSTRUME": "NIRCAM", "DETECTOR": "NRCA1", "MODULE": "A",
        "CHANNEL": "SHORT", "FILTER": "F200W", "PUPIL": "CLEAR", "EXP_TYPE": "NRC_IMAGE",
        "READPATT": "MEDIUM8", "NINTS": NINTS, "NGROUPS": NGROUPS, "NFRAMES": 8,
        "GROUPGAP": 2, "TFRAME": 10.73677, "TGROUP": 107.3677, "SUBARRAY": "FULL",
        "SUBSTRT1": 1, "SUBSTRT2": 1, "SUBSIZE1": NX, "SUBSIZE2": NY, "FASTAXIS": -1,
        "SLOWAXIS": 2, "NOUTPUTS": 4, "ZEROFRAM": False, "DATE-OBS": "2024-01-02",
        "TIME-OBS": "03:04:05.000", "EXPSTART": 60311.127835,
    }.items():
        header[key] = value
    for key, value in extra.items():
        header[key] = value
    return header


def group_table(nints: int = NINTS, ngroups: int = NGROUPS) -> np.ndarray:
    table = np.zeros(nints * ngroups, dtype=[(n, d) for n, d in GROUP_COLUMNS])
    table["integration_number"] = np.repeat(np.arange(1, nints + 1), ngroups)
    table["group_number"] = np.tile(np.arange(1, ngroups + 1), nints)
    table["group_end_time"] = b"2024-01-02T03:04:05.000"
    table["completion_code_text"] = b"COMPLETE"
    table["bary_end_time"] = 60311.1 + np.arange(nints * ngroups) * 1e-3
    return table


def int_times_table(nints: int = NINTS) -> np.ndarray:
    table = np.zeros(nints, dtype=[(n, d) for n, d in INT_TIMES_COLUMNS])
    table["integration_number"] = np.arange(1, nints + 1)
    for i, column in enumerate(INT_TIMES_COLUMNS[1:]):
        table[column[0]] = 60311.1 + np.arange(nints) * 0.01 + i * 1e-4
    return table


def imaging_wcs(crval=(53.16, -27.78), pixel_scale_deg=8.7e-6):
    """A small tangent-plane gwcs (detector -> ICRS) as assign_wcs would attach."""
    from gwcs import coordinate_frames as cf
    from gwcs import wcs as gwcs_wcs

    detector = cf.Frame2D(name="detector", axes_order=(0, 1), unit=(u.pix, u.pix))
    sky = cf.CelestialFrame(reference_frame=coord.ICRS(), name="world", unit=(u.deg, u.deg))
    transform = (
        (models.Shift(-NX / 2) & models.Shift(-NY / 2))
        | models.AffineTransformation2D(matrix=[[-pixel_scale_deg, 1e-7], [2e-7, pixel_scale_deg]])
        | models.Pix2Sky_TAN()
        | models.RotateNative2Celestial(crval[0], crval[1], 180.0)
    )
    return gwcs_wcs.WCS([(detector, transform), (sky, None)])


def _rng(seed=0):
    return np.random.default_rng(seed)


def make_uncal() -> Product:
    rng = _rng(1)
    sci = rng.integers(0, 65536, (NINTS, NGROUPS, NY, NX)).astype(np.uint16)
    sci.flat[:3] = [0, 32768, 65535]  # the edges of the BZERO encoding
    zeroframe = rng.integers(0, 65536, (NINTS, NY, NX)).astype(np.uint16)
    return Product(
        "Level1bModel", nircam_header(ZEROFRAM=True), {"SCI": sci, "ZEROFRAME": zeroframe},
        {"SCI": {"BUNIT": "DN"}}, {"GROUP": group_table(), "INT_TIMES": int_times_table()}, {},
    )


def make_ramp() -> Product:
    rng = _rng(2)
    arrays = {
        "SCI": rng.normal(1e4, 50, (NINTS, NGROUPS, NY, NX)).astype(np.float32),
        "PIXELDQ": rng.choice(np.array([0, 1, 2**31 + 4], dtype=np.uint32), (NY, NX)),
        "GROUPDQ": rng.choice(np.array([0, 2, 4], dtype=np.uint8), (NINTS, NGROUPS, NY, NX)),
        "AVDRKCUR": np.full((NY, NX), 0.002, np.float32),
    }
    meta = nircam_header(S_DQINIT="COMPLETE", S_SATURA="COMPLETE", S_JUMP="COMPLETE")
    return Product("RampModel", meta, arrays, {}, {"GROUP": group_table(), "INT_TIMES": int_times_table()}, {})


def _slope_planes(shape, seed):
    rng = _rng(seed)
    return {
        "SCI": rng.normal(1.0, 0.1, shape).astype(np.float32),
        "ERR": rng.uniform(0.01, 0.02, shape).astype(np.float32),
        "DQ": rng.choice(np.array([0, 1, 4, 2**31], dtype=np.uint32), shape),
        "VAR_POISSON": rng.uniform(1e-4, 2e-4, shape).astype(np.float32),
        "VAR_RNOISE": rng.uniform(1e-4, 2e-4, shape).astype(np.float32),
    }


def make_rate() -> Product:
    meta = nircam_header(S_RAMP="COMPLETE")
    return Product("ImageModel", meta, _slope_planes((NY, NX), 3), {"SCI": {"BUNIT": "DN/s"}, "ERR": {"BUNIT": "DN/s"}}, {}, {})


def make_rateints() -> Product:
    meta = nircam_header(S_RAMP="COMPLETE")
    return Product("CubeModel", meta, _slope_planes((NINTS, NY, NX), 4), {}, {"INT_TIMES": int_times_table()}, {})


def make_cal() -> Product:
    arrays = _slope_planes((NY, NX), 5)
    arrays["AREA"] = np.full((NY, NX), 1.01, np.float32)
    arrays["VAR_FLAT"] = np.full((NY, NX), 3e-6, np.float32)
    meta = nircam_header(S_WCS="COMPLETE", S_FLAT="COMPLETE", S_PHOTOM="COMPLETE", PHOTMJSR=0.21, PIXAR_SR=9.3e-14)
    sci_cards = {"BUNIT": "MJy/sr", "RA_REF": 53.16, "DEC_REF": -27.78}
    return Product("ImageModel", meta, arrays, {"SCI": sci_cards, "ERR": {"BUNIT": "MJy/sr"}}, {}, {"meta": {"wcs": imaging_wcs()}})


def make_i2d() -> Product:
    arrays = _slope_planes((NY, NX), 6)
    del arrays["DQ"]
    # context bits: negative int32 values are bit 31 set (the 32nd input image)
    arrays["CON"] = np.ascontiguousarray(np.broadcast_to(np.arange(NX, dtype=np.int32) - 5, (2, NY, NX)))
    arrays["WHT"] = np.full((NY, NX), 240.5, np.float32)
    arrays["VAR_FLAT"] = np.full((NY, NX), 2e-6, np.float32)
    meta = nircam_header(S_RESAMP="COMPLETE", S_PHOTOM="COMPLETE", EXP_TYPE="NRC_IMAGE")
    return Product("ImageModel", meta, arrays, {}, {}, {"meta": {"wcs": imaging_wcs()}})


def make_segm() -> Product:
    segm = np.zeros((NY, NX), np.uint32)
    segm[2:5, 3:6] = 1
    segm[9:12, 1:4] = 4_000_000_000  # beyond int32: the uint32 encoding must hold it
    return Product("SegmentationMapModel", nircam_header(), {"SCI": segm}, {}, {}, {})


def make_wfss_cal(nslits: int = 2) -> Product:
    rng = _rng(7)
    arrays, ext_meta = {}, {}
    for i in range(1, nslits + 1):
        shape = (6, 20 + i)
        for name in ("SCI", "ERR", "WAVELENGTH", "VAR_POISSON", "VAR_RNOISE", "VAR_FLAT"):
            arrays[f"{name},{i}"] = rng.uniform(0.1, 4.0, shape).astype(np.float32)
        arrays[f"DQ,{i}"] = np.zeros(shape, np.uint32)
        ext_meta[f"SCI,{i}"] = {
            "BUNIT": "MJy/sr", "SLTNAME": str(100 + i), "SOURCEID": 100 + i, "SLTSTRT1": 10 * i,
            "SLTSTRT2": 5 * i, "SLTSIZE1": shape[1], "SLTSIZE2": shape[0], "SRCTYPE": "POINT",
            "SPORDER": 1, "DISPAXIS": 1, "PIXAR_SR": 9.3e-14,
        }
        ext_meta[f"ERR,{i}"] = {"BUNIT": "MJy/sr"}
    meta = nircam_header(EXP_TYPE="NRC_WFSS", PUPIL="GRISMR", FILTER="F444W", DETECTOR="NRCALONG", CHANNEL="LONG")
    return Product("MultiSlitModel", meta, arrays, ext_meta, {}, {})


def make_x1d() -> Product:
    tables, ext_meta = {}, {}
    for i, nrows in ((1, 3), (2, 2)):
        table = np.zeros(nrows, dtype=wfss_spectable_dtype(15))
        table["SOURCE_ID"] = np.arange(1, nrows + 1)
        table["WAVELENGTH"] = np.linspace(3.9, 4.1, 15)
        table["FLUX"] = np.arange(nrows * 15).reshape(nrows, 15) * 1e-6
        table["DQ"] = 0
        table["N_ALONGDISP"] = 15
        table["SOURCE_TYPE"] = b"POINT"
        table["SOURCE_RA"] = 53.1 + np.arange(nrows) * 1e-3
        table["EXTRACT2D_XSTOP"] = 120
        tables[f"EXTRACT1D,{i}"] = table
        ext_meta[f"EXTRACT1D,{i}"] = {"FILENAME": f"exp{i}_cal.fits", "EXPGRPID": f"jw01_{i}_1", "SPORDER": 1, "DISPAXIS": 1}
    meta = nircam_header(EXP_TYPE="NRC_WFSS", PUPIL="GRISMR", FILTER="F444W", DETECTOR="NRCALONG", CHANNEL="LONG", S_EXTR1D="COMPLETE")
    return Product("WFSSMultiSpecModel", meta, {}, ext_meta, tables, {})


PRODUCT_FACTORIES = {
    "uncal": (make_uncal, "Level1bModel"),
    "ramp": (make_ramp, "RampModel"),
    "rate": (make_rate, "ImageModel"),
    "rateints": (make_rateints, "CubeModel"),
    "cal": (make_cal, "ImageModel"),
    "i2d": (make_i2d, "ImageModel"),
    "segm": (make_segm, "SegmentationMapModel"),
    "wfss_cal": (make_wfss_cal, "MultiSlitModel"),
    "x1d": (make_x1d, "WFSSMultiSpecModel"),
}


@pytest.fixture(scope="module")
def datamodels():
    """The official reader (slow import: once per module)."""
    from stdatamodels.jwst import datamodels as dm

    return dm
