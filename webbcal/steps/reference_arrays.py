"""Reading a reference plane the way every step needs it: matched to the exposure.

The cache layer already cuts references to the exposure's subarray; this is the last
check before arithmetic, so a mismatch names the reference file instead of failing
inside numpy broadcasting.
"""

from __future__ import annotations

import numpy as np

from webbcal.errors import WebbcalError


def reference_plane(ref, extname: str, shape, reftype: str, dtype=None) -> np.ndarray:
    """``ref.arrays[extname]`` as an array of exactly the exposure's ``(ny, nx)`` shape."""
    array = np.asarray(ref.arrays[extname], dtype=dtype)
    if array.shape != tuple(shape):
        raise WebbcalError(getattr(ref, "path", None) or reftype,
                           f"{reftype.upper()} {extname} shape {array.shape} does not match "
                           f"the data {tuple(shape)}")
    return array


def required_plane(refs: dict, reftype: str, shape, step: str, extname: str = "SCI",
                   dtype=np.float32) -> np.ndarray:
    """The ``reftype`` plane a step cannot run without (gain, read noise)."""
    ref = refs.get(reftype)
    if ref is None:
        raise WebbcalError(reftype, f"{step} needs a {reftype.upper()} reference")
    return reference_plane(ref, extname, shape, reftype, dtype=dtype)
