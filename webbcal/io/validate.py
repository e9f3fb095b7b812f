"""Check a Product read from disk against its model's layout; return a one-line problem."""

from __future__ import annotations

import numpy as np

from webbcal.io.layouts import Layout

# Integer keywords whose wrong type makes every shape check meaningless.
_INT_KEYWORDS = ("NINTS", "NGROUPS", "NFRAMES", "GROUPGAP", "SUBSTRT1", "SUBSTRT2", "SUBSIZE1", "SUBSIZE2")
_STR_KEYWORDS = ("INSTRUME", "DETECTOR", "EXP_TYPE", "READPATT", "SUBARRAY", "FILTER", "PUPIL")


def _kinds_for(schema_dtype: str) -> str:
    """dtype kinds accepted for a schema dtype (stdatamodels casts within these on open)."""
    kind = np.dtype(schema_dtype).kind
    return "f" if kind == "f" else "iu"


def check_header(meta) -> str | None:
    for key in _INT_KEYWORDS:
        value = meta.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer))):
            return f"malformed header: {key}={value!r} is not an integer"
        if value is not None and key in ("NINTS", "NGROUPS") and value < 1:
            return f"malformed header: {key}={value} must be at least 1"
    for key in _STR_KEYWORDS:
        value = meta.get(key)
        if value is not None and not isinstance(value, str):
            return f"malformed header: {key}={value!r} is not a string"
    return None


def check_layout(product, layout: Layout, *, writing: bool = False) -> str | None:
    """The first problem of ``product`` against ``layout``, or None.

    ``writing``: integer arrays for float extensions are fine (the writer casts them).
    """
    problem = check_header(product.meta)
    if problem:
        return problem
    present = {}
    for key in (*product.arrays, *product.tables):
        name, _, _ver = key.partition(",")
        present.setdefault(name, []).append(key)
    for ext in layout.extensions:
        keys = present.get(ext.name, [])
        if ext.required and not keys:
            return f"{layout.model} lacks the required {ext.name} extension"
        for key in keys:
            problem = _check_extension(product, ext, key, writing)
            if problem:
                return problem
    for check in layout.checks:
        problem = check(product)
        if problem:
            return problem
    return None


def _check_extension(product, ext, key: str, writing: bool = False) -> str | None:
    if ext.is_table:
        if key in product.arrays:
            return f"{key} is an image, {ext.name} must be a table"
        names = set(product.tables[key].dtype.names or ())
        missing = [name for name, _ in ext.columns if name not in names]
        if missing:
            return f"table {key} lacks columns {', '.join(missing)}"
        return None
    if key in product.tables:
        return f"{key} is a table, {ext.name} must be an image"
    array = product.arrays[key]
    allowed = _kinds_for(ext.dtype) + ("iu" if writing else "")
    if array.dtype.kind not in allowed:
        return f"{key} has dtype {array.dtype.name}, {ext.name} must be {ext.dtype}"
    if ext.ndim and array.ndim not in ext.ndim:
        expected = " or ".join(str(n) for n in ext.ndim)
        return f"{key} is {array.ndim}-D {tuple(array.shape)}, {ext.name} must be {expected}-D"
    return None
