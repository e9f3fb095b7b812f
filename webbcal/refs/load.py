"""Open a reference file for one exposure: check it, expand its DQ, cut it to the subarray.

What a step receives is a ``Product`` whose arrays already cover exactly the exposure's
pixels and whose DQ holds standard flags, so no step repeats these rules:

* the file must be the requested reftype and serve the exposure's DETECTOR;
* DQ is expanded through DQ_DEF (``stdatamodels.dynamicdq.dynamic_mask`` semantics:
  each row maps the file's bit VALUE to the standard flag called NAME; unknown names are
  ignored with a warning; no/empty DQ_DEF leaves DQ as is);
* pixel maps are cut to SUBSTRT/SUBSIZE (``jwst.lib.reffile_utils`` rules, detector1.md
  §3.2: missing reference keywords mean full frame only for 2048x2048 arrays, the actual
  array size wins over SUBSIZE, the slice must lie inside the reference); darks are never
  cut: they must cover exactly the exposure's pixels.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
from astropy.io import fits

from webbcal import dqflags
from webbcal.errors import WebbcalError
from webbcal.refs.formats import FULL_FRAME, file_kind, format_for, models_for
from webbcal.refs.keywords import meta_to_keywords
from webbcal.refs.selection import UNSLICED, allowed_values, normalize

log = logging.getLogger("webbcal.refs.load")

SKIP_VALUES = frozenset({"N/A", "NONE", "SKIP"})  # an override that means "do without"


def load_reference(path: str | os.PathLike, reftype: str, sci_header, *,
                   sci_shape: tuple[int, ...] | None = None):
    """The reference ``path`` as a Product fitted to the exposure (see module docstring).

    ``sci_shape``: the exposure's actual array shape when known (it wins over SUBSIZE).
    """
    path = Path(path)
    reftype = reftype.lower()
    fmt = format_for(reftype, sci_header.get("EXP_TYPE"))
    kind = file_kind(path)
    if kind != fmt.kind:
        raise WebbcalError(path, f"is a {kind.upper()} file; {reftype} references are {fmt.kind.upper()}")
    product = _read(path, kind)
    _check_identity(path, reftype, product, sci_header)
    if fmt.kind == "asdf":
        return product

    fmt = format_for(reftype, product.meta.get("EXP_TYPE") or sci_header.get("EXP_TYPE"))
    for plane in fmt.planes:
        if plane.required and plane.name not in product.arrays:
            raise WebbcalError(path, f"{reftype} reference has no {plane.name} extension")
    for name in fmt.required_tables:
        if name not in product.tables:
            raise WebbcalError(path, f"{reftype} reference has no {name} table")

    if "DQ" in product.arrays:
        product.arrays["DQ"] = expand_dq(np.asarray(product.arrays["DQ"], dtype=np.uint32),
                                         product.tables.get("DQ_DEF"))
    if fmt.spatial or (reftype == "ipc" and np.ndim(product.arrays["SCI"]) == 4):
        _fit_to_exposure(path, reftype, fmt.primary.name, product, sci_header, sci_shape)
    _check_values(path, fmt.primary.name if fmt.primary else None, product)
    return product


def _read(path: Path, kind: str):
    from webbcal.io.product import Product, read_product

    if kind == "fits":
        return read_product(path, lazy=True)
    from webbcal.io.asdf_loader import load_asdf
    asdf = load_asdf()

    try:
        with asdf.open(path, lazy_load=False, memmap=False) as handle:
            tree = {key: value for key, value in handle.tree.items()
                    if key not in ("asdf_library", "history")}
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [""])[0]
        raise WebbcalError(path, f"unreadable ASDF reference: {type(exc).__name__}: {first}") from None
    header = fits.Header()
    for key, value in meta_to_keywords(tree.get("meta") or {}).items():
        if isinstance(value, (str, int, float, bool)):
            header[key] = value
    return Product(model=str(header.get("DATAMODL", "")), meta=header, tree=tree, path=path)


def _check_identity(path: Path, reftype: str, product, sci_header) -> None:
    found = normalize(product.meta.get("REFTYPE")).lower()
    if found != reftype:
        raise WebbcalError(path, f"is a {found or 'file without REFTYPE'}, not a {reftype} reference")
    model = product.meta.get("DATAMODL")
    if model and model not in models_for(reftype):
        raise WebbcalError(path, f"DATAMODL {model} is not a {reftype} model ({', '.join(models_for(reftype))})")
    served = allowed_values(product.meta.get("P_DETECT") or product.meta.get("DETECTOR"))
    wanted = normalize(sci_header.get("DETECTOR"))
    if served is not None and "MULTIPLE" not in served and wanted and wanted not in served:
        raise WebbcalError(path, f"is for DETECTOR {'|'.join(sorted(served))}, the exposure is {wanted}")


def expand_dq(dq: np.ndarray, dq_def) -> np.ndarray:
    """File DQ values -> standard flags through a DQ_DEF table (dynamic_mask semantics)."""
    if dq_def is None or np.size(dq_def) == 0:
        return dq
    out = np.zeros(dq.shape, dtype=dq.dtype)
    for value, name in zip(dq_def["VALUE"], dq_def["NAME"]):
        text = name.decode("ascii", "replace") if isinstance(name, bytes) else str(name)
        standard = dqflags.PIXEL.get(text.strip())
        if standard is None:
            log.warning("DQ_DEF flag %r is not a standard DQ flag; ignored", text.strip())
            continue
        out[(dq & np.uint32(value)) != 0] |= np.uint32(standard)
    return out


def _corner_and_size(header, shape_yx, what: str, where) -> tuple[int, int, int, int]:
    """(xstart, ystart, xsize, ysize), 1-based corners; the actual array size wins."""
    keys = ("SUBSTRT1", "SUBSTRT2", "SUBSIZE1", "SUBSIZE2")
    values = [header.get(k) for k in keys]
    if any(v is None for v in values):
        if shape_yx is not None and tuple(shape_yx) == (FULL_FRAME, FULL_FRAME):
            values = [1, 1, FULL_FRAME, FULL_FRAME]
        elif what == "exposure" and normalize(header.get("SUBARRAY")) == "FULL" and shape_yx is None:
            values = [1, 1, FULL_FRAME, FULL_FRAME]
        else:
            raise WebbcalError(where, f"{what} has no SUBSTRT1/2, SUBSIZE1/2 keywords and is not full frame")
    xstart, ystart, xsize, ysize = (int(v) for v in values)
    if xstart < 1 or ystart < 1:
        raise WebbcalError(where, f"{what} subarray corner SUBSTRT1/2 = {xstart},{ystart} is below 1")
    if shape_yx is not None and (ysize, xsize) != tuple(shape_yx):
        log.warning("%s: %s SUBSIZE %dx%d differs from its array %dx%d; using the array size",
                    where, what, xsize, ysize, shape_yx[1], shape_yx[0])
        ysize, xsize = (int(n) for n in shape_yx)
    return xstart, ystart, xsize, ysize


def _fit_to_exposure(path: Path, reftype: str, primary: str, product, sci_header, sci_shape) -> None:
    ref_yx = np.shape(product.arrays[primary])[-2:]
    ref = _corner_and_size(product.meta, ref_yx, "reference", path)
    sci_name = sci_header.get("FILENAME") or "exposure"
    sci = _corner_and_size(sci_header, None if sci_shape is None else tuple(sci_shape)[-2:], "exposure", sci_name)
    if ref == sci:
        return
    if reftype in UNSLICED:
        raise WebbcalError(path, f"{reftype} covers x {ref[0]}..{ref[0] + ref[2] - 1}, y {ref[1]}..{ref[1] + ref[3] - 1} "
                                 f"but the exposure covers x {sci[0]}..{sci[0] + sci[2] - 1}, y {sci[1]}..{sci[1] + sci[3] - 1}; "
                                 f"{reftype} references are never cut, one for SUBARRAY={sci_header.get('SUBARRAY')} is needed")
    x0, y0 = sci[0] - ref[0], sci[1] - ref[1]
    x1, y1 = x0 + sci[2], y0 + sci[3]
    if x0 < 0 or y0 < 0 or x1 > ref[2] or y1 > ref[3]:
        raise WebbcalError(path, f"reference covers x {ref[0]}..{ref[0] + ref[2] - 1}, y {ref[1]}..{ref[1] + ref[3] - 1}, "
                                 f"which does not contain the exposure's x {sci[0]}..{sci[0] + sci[2] - 1}, "
                                 f"y {sci[1]}..{sci[1] + sci[3] - 1}")
    for name, array in list(product.arrays.items()):
        if np.shape(array)[-2:] == tuple(ref_yx):
            product.arrays[name] = np.array(array[..., y0:y1, x0:x1])
    for key, value in zip(("SUBSTRT1", "SUBSTRT2", "SUBSIZE1", "SUBSIZE2"), sci):
        product.meta[key] = value
    if sci_header.get("SUBARRAY"):
        product.meta["SUBARRAY"] = sci_header["SUBARRAY"]


def _check_values(path: Path, primary: str, product) -> None:
    """Log NaN counts of the pixel maps (cubes skipped: a full-frame dark is gigabytes).

    NaN marks unusable pixels in official references (reference pixels of a saturation
    map), but a primary plane with no finite value, or with infinities, is a corrupt
    file: calibrating with it would silently turn every pixel into NaN or inf.
    """
    for name, array in product.arrays.items():
        data = np.asarray(array) if np.ndim(array) <= 2 else None
        if data is None or data.dtype.kind != "f" or data.size == 0:
            continue
        nans = int(np.count_nonzero(np.isnan(data)))
        if nans:
            log.info("%s: %s has %d NaN values", path.name, name, nans)
        if name != primary:
            continue
        infinite = int(np.count_nonzero(np.isinf(data)))
        if infinite:
            raise WebbcalError(path, f"{name} has {infinite} infinite values")
        if nans == data.size:
            raise WebbcalError(path, f"{name} has no finite value (all {data.size} pixels are NaN)")


def get_references(reftypes, header, cache=None, overrides: dict | None = None, *,
                   sci_shape: tuple[int, ...] | None = None) -> dict:
    """reftype -> Product for an exposure: an override path is used as is (still checked);
    an override of ``N/A`` leaves that reftype out; the rest come from ``cache.select``."""
    overrides = {k.lower(): v for k, v in (overrides or {}).items() if v not in (None, "")}
    out = {}
    for reftype in reftypes:
        reftype = reftype.lower()
        chosen = overrides.get(reftype)
        if chosen is not None and normalize(chosen) in SKIP_VALUES:
            continue
        if chosen is None:
            if cache is None:
                from webbcal.refs.cache import RefCache

                cache = RefCache.from_config(None)
            chosen = cache.select(reftype, header)
        out[reftype] = load_reference(chosen, reftype, header, sci_shape=sci_shape)
        log.debug("%s reference: %s", reftype, chosen)
    return out
