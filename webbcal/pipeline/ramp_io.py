"""Conversions between files (Products) and the arrays a Detector1 stage works on."""

from __future__ import annotations

import numpy as np
from astropy.io import fits

from webbcal.errors import WebbcalError
from webbcal.io.product import Product
from webbcal.steps.containers import Ramp, SlopeImage

RAMP_MODELS = ("Level1bModel", "RampModel")


def ramp_from_product(product: Product) -> Ramp:
    """A float32 working ramp from an uncal (Level1b) or ramp product.

    uncal SCI is uint16 raw DN; it becomes float32 here (as the official steps do when
    they open a Level1bModel as a RampModel), with zero-filled DQ arrays.
    """
    sci = product.arrays.get("SCI")
    if sci is None or sci.ndim != 4:
        raise WebbcalError(product.path, "expected a 4-D SCI ramp (nints, ngroups, ny, nx)")
    data = np.array(sci, dtype=np.float32)  # one owned, native-endian copy
    if sci.dtype.kind == "f":  # a raw uncal (integers) is always finite
        finite = np.isfinite(data)
        if np.isinf(data).any():
            raise WebbcalError(product.path, f"SCI has {int(np.isinf(data).sum())} infinite values")
        if not finite.any():
            raise WebbcalError(product.path, "SCI has no finite value (all NaN)")
    nints, ngroups, ny, nx = data.shape
    groupdq = product.arrays.get("GROUPDQ")
    groupdq = (np.zeros(data.shape, np.uint8) if groupdq is None or groupdq.shape != data.shape
               else np.array(groupdq, dtype=np.uint8))
    pixeldq = product.arrays.get("PIXELDQ")
    pixeldq = (np.zeros((ny, nx), np.uint32) if pixeldq is None or pixeldq.shape != (ny, nx)
               else np.array(pixeldq, dtype=np.uint32))
    zeroframe = product.arrays.get("ZEROFRAME")
    if zeroframe is not None:
        zeroframe = np.array(zeroframe, dtype=np.float32)
    avdrkcur = product.arrays.get("AVDRKCUR")
    if avdrkcur is not None:
        avdrkcur = np.array(avdrkcur, dtype=np.float32)
    meta = product.meta.copy()
    return Ramp(data=data, groupdq=groupdq, pixeldq=pixeldq, meta=meta, zeroframe=zeroframe,
                avdrkcur=avdrkcur, tables=dict(product.tables))


# Readout keywords the Detector1 steps compute with (spec detector1.md §2.6).
READOUT_KEYWORDS = {
    "NINTS": (int, "integrations"), "NGROUPS": (int, "groups per integration"),
    "NFRAMES": (int, "frames averaged per group; used by saturation, linearity, dark_current, "
                     "jump and ramp_fit"),
    "TFRAME": (float, "frame time; used by ramp_fit"),
    "TGROUP": (float, "group time; used by jump and ramp_fit"),
}


# Keywords that select the reference files (and so the calibration) of an exposure.
SELECTION_KEYWORDS = {
    "INSTRUME": "instrument", "DETECTOR": "detector", "EXP_TYPE": "exposure type",
    "READPATT": "readout pattern; selects superbias, readnoise and the dark",
}


def check_readout_keywords(meta: fits.Header, path) -> None:
    """Fail with one line naming the first missing or invalid readout keyword."""
    for key, what in SELECTION_KEYWORDS.items():
        value = meta.get(key)
        if value is None or not str(value).strip():
            raise WebbcalError(path, f"keyword {key} ({what}) is missing")
    for key, (kind, what) in READOUT_KEYWORDS.items():
        value = meta.get(key)
        if value is None or isinstance(value, bool):
            raise WebbcalError(path, f"keyword {key} ({what}) is missing")
        try:
            number = kind(value)
        except (TypeError, ValueError):
            raise WebbcalError(path, f"keyword {key}={value!r} is not a number") from None
        if number <= 0:
            raise WebbcalError(path, f"keyword {key}={value} must be positive")


def ramp_to_product(ramp: Ramp, tree: dict | None = None) -> Product:
    arrays = {"SCI": ramp.data, "PIXELDQ": ramp.pixeldq, "GROUPDQ": ramp.groupdq}
    if ramp.zeroframe is not None:
        arrays["ZEROFRAME"] = ramp.zeroframe
    if ramp.avdrkcur is not None:
        arrays["AVDRKCUR"] = ramp.avdrkcur
    meta = ramp.meta.copy()
    return Product(model="RampModel", meta=meta, arrays=arrays,
                   ext_meta={"SCI": {"BUNIT": "DN"}}, tables=dict(ramp.tables),
                   tree=dict(tree or {}), path=None)


def slope_to_product(slope: SlopeImage, *, per_integration: bool,
                     tables: dict | None = None, tree: dict | None = None) -> Product:
    """rate (ImageModel) or rateints (CubeModel, with INT_TIMES) from a fit result."""
    meta = slope.meta.copy()
    for key in ("NAXIS3", "NAXIS4"):
        meta.remove(key, ignore_missing=True)
    arrays = {"SCI": slope.data, "ERR": slope.err, "DQ": slope.dq,
              "VAR_POISSON": slope.var_poisson, "VAR_RNOISE": slope.var_rnoise}
    kept_tables = {}
    if per_integration and tables and "INT_TIMES" in tables:
        kept_tables["INT_TIMES"] = tables["INT_TIMES"]
    return Product(model="CubeModel" if per_integration else "ImageModel", meta=meta,
                   arrays=arrays, ext_meta={"SCI": {"BUNIT": "DN/s"}, "ERR": {"BUNIT": "DN/s"}},
                   tables=kept_tables, tree=dict(tree or {}), path=None)


def new_header(meta: fits.Header) -> fits.Header:
    return meta.copy()
