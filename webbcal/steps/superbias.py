"""superbias: subtract the bias image (official ``jwst/superbias``).

NaN bias values count as 0; the bias DQ is OR-ed into PIXELDQ; ZEROFRAME elements equal
to 0 (marked unusable by saturation) stay 0.
"""

from __future__ import annotations

import logging

import numpy as np

from webbcal.steps.base import StepSpec
from webbcal.steps.reference_arrays import reference_plane
from webbcal.steps.containers import Ramp

log = logging.getLogger("webbcal.steps.superbias")

SPEC = StepSpec(
    name="superbias", stage="detector1", status_key="S_SUPERB", reftypes=("superbias",),
    doc="Subtract the SUPERBIAS reference image from every group.",
)


def subtract_bias(data: np.ndarray, pixeldq: np.ndarray, bias: np.ndarray,
                  bias_dq: np.ndarray | None = None,
                  zeroframe: np.ndarray | None = None) -> None:
    """``data -= bias`` for all integrations and groups, in place (NaN bias -> 0)."""
    bias = np.where(np.isnan(bias), np.float32(0), bias).astype(data.dtype, copy=False)
    if bias_dq is not None:
        pixeldq |= np.asarray(bias_dq).astype(pixeldq.dtype, copy=False)
    for integration in data:  # one integration at a time keeps temporaries small
        integration -= bias
    if zeroframe is not None:
        unusable = zeroframe == 0.0
        zeroframe -= bias
        zeroframe[unusable] = 0.0


def apply(ramp: Ramp, refs: dict, params: dict) -> str:
    bias_ref = refs.get("superbias")
    if bias_ref is None:
        log.warning("no SUPERBIAS reference: superbias skipped")
        return "SKIPPED"
    bias = reference_plane(bias_ref, "SCI", ramp.data.shape[-2:], "superbias")
    zeroframe = ramp.zeroframe if ramp.meta.get("ZEROFRAM", False) else None
    subtract_bias(ramp.data, ramp.pixeldq, bias, bias_ref.arrays.get("DQ"), zeroframe)
    return "COMPLETE"
