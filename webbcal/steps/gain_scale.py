"""gain_scale: rescale slopes taken with a non-standard gain (official ``jwst/gain_scale``).

The factor is GAINFACT from the science header, else from the GAIN reference header;
without one the step is SKIPPED (the normal case for NIRCam). SCI and ERR are multiplied
by the factor, the variances by its square. Applied to rate and rateints separately.
"""

from __future__ import annotations

import logging

import numpy as np

from webbcal.steps.base import StepSpec
from webbcal.steps.containers import SlopeImage

log = logging.getLogger("webbcal.steps.gain_scale")

SPEC = StepSpec(
    name="gain_scale", stage="detector1", status_key="S_GANSCL", reftypes=("gain",),
    doc="Multiply slopes by GAINFACT (variances by its square) when the exposure needs it.",
)


def gain_factor(sci_header, gain_header) -> float | None:
    for header in (sci_header, gain_header):
        if header is not None and header.get("GAINFACT") is not None:
            return float(header["GAINFACT"])
    return None


def scale_slopes(data: np.ndarray, err: np.ndarray, var_poisson: np.ndarray | None,
                 var_rnoise: np.ndarray | None, factor: float) -> None:
    """Scale values and errors by ``factor`` and variances by ``factor**2``, in place."""
    data *= factor
    err *= factor
    for var in (var_poisson, var_rnoise):
        if var is not None and var.size:
            var *= factor ** 2


def apply_to_slopes(slope: SlopeImage, refs: dict, params: dict) -> str:
    gain_ref = refs.get("gain")
    factor = gain_factor(slope.meta, None if gain_ref is None else gain_ref.meta)
    if factor is None:
        log.info("no GAINFACT in the exposure or the GAIN reference: gain_scale skipped")
        return "SKIPPED"
    log.info("rescaling slopes by GAINFACT = %g", factor)
    scale_slopes(slope.data, slope.err, slope.var_poisson, slope.var_rnoise, factor)
    slope.meta["GAINFACT"] = factor
    return "COMPLETE"
