"""HDRTAB: the per-input header table of a mosaic (jwst ``model_blender``, ``blendheaders``).

One row per input exposure, one column per keyword found in any input's primary header
(first-seen order), as the official table keeps every schema keyword that some input has.
Column types follow the official ``TableBuilder``: booleans as int8, numbers as int64 or
float64, the rest as ASCII strings; a keyword an input lacks is NaN (the text ``nan`` in
a string column), as there.
"""

from __future__ import annotations

import numbers

import numpy as np
from astropy.io import fits

# FITS structure and free text, not metadata.
_NOT_METADATA = {"SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "NAXIS3", "EXTEND", "COMMENT",
                 "HISTORY", "", "PCOUNT", "GCOUNT", "XTENSION", "EXTNAME", "EXTVER"}


def header_table(headers: list[fits.Header]) -> np.ndarray:
    """Structured array of ``headers`` (one row each)."""
    columns: dict[str, list] = {}
    for row, header in enumerate(headers):
        for key, value in header.items():
            if key in _NOT_METADATA or isinstance(value, fits.card.Undefined):
                continue
            columns.setdefault(key, [None] * len(headers))[row] = value
    arrays, dtype = [], []
    for key, values in columns.items():
        array = _column(values)
        arrays.append(array)
        dtype.append((key, array.dtype))
    return np.rec.fromarrays(arrays, dtype=dtype) if arrays else np.zeros(len(headers), dtype=[])


def _column(values: list) -> np.ndarray:
    present = [v for v in values if v is not None]
    if all(isinstance(v, (bool, np.bool_)) for v in present) and len(present) == len(values):
        return np.array(values, np.int8)
    if all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in present) \
            and len(present) == len(values):
        return np.array(values, np.int64)
    if all(isinstance(v, numbers.Real) for v in present):
        return np.array([np.nan if v is None else float(v) for v in values], np.float64)
    text = ["nan" if v is None else str(v) for v in values]
    width = max(1, max(len(t) for t in text))
    return np.array(text, dtype=f"S{width}")
