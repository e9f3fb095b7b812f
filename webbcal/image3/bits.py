"""Good-bit expressions of the stage-3 steps (``'~DO_NOT_USE+NON_SCIENCE'``, ``'0'``, ``None``).

A pixel is good when its DQ has none of the *bad* bits. ``'A+B'`` (names or integers) lists
bits that are ignored (all others bad); a leading ``~`` inverts: the listed bits are the
bad ones. ``None`` ignores DQ entirely (astropy ``bitfield_to_boolean_mask`` semantics).
"""

from __future__ import annotations

import numpy as np

from webbcal import dqflags
from webbcal.errors import WebbcalError

ALL_BITS = np.uint32(0xFFFFFFFF)


def bad_bits(expression, source="good_bits") -> np.uint32:
    """The DQ bits that make a pixel bad under ``expression``."""
    if expression is None or str(expression).strip().lower() in ("", "none"):
        return np.uint32(0)
    text = str(expression).strip().replace(" ", "")
    invert = text.startswith("~")
    text = text.lstrip("~")
    value = 0
    for token in text.replace(",", "+").replace("|", "+").split("+"):
        if not token:
            continue
        if token.lstrip("-").isdigit():
            value |= int(token)
        elif token.upper() in dqflags.PIXEL:
            value |= dqflags.PIXEL[token.upper()]
        else:
            raise WebbcalError(source, f"unknown DQ flag {token!r} in {expression!r}")
    return np.uint32(value) if invert else np.uint32(~np.uint32(value) & ALL_BITS)


def good_mask(dq: np.ndarray, data: np.ndarray, expression, source="good_bits") -> np.ndarray:
    """Finite pixels without any bad bit."""
    bad = bad_bits(expression, source)
    good = np.isfinite(data)
    if bad:
        good &= (np.asarray(dq, dtype=np.uint32) & bad) == 0
    return good
