"""group_scale: undo on-board averaging done with a divisor other than NFRAMES.

The flight software averages the NFRAMES frames of a group with a power-of-two divisor
FRMDIVSR. When NFRAMES is not that divisor the groups are off by FRMDIVSR / NFRAMES.
NIRCam always uses NFRAMES = FRMDIVSR (1, 2, 4, 8), so the step is normally SKIPPED.
"""

from __future__ import annotations

import logging

import numpy as np  # noqa: F401  (array type in signatures)

from webbcal.steps.base import StepSpec
from webbcal.steps.containers import Ramp

log = logging.getLogger("webbcal.steps.group_scale")

SPEC = StepSpec(
    name="group_scale", stage="detector1", status_key="S_GRPSCL",
    doc="Rescale groups averaged on board with a divisor FRMDIVSR different from NFRAMES.",
)


def scale_needed(nframes: int | None, frame_divisor: int | None) -> float | None:
    """The factor FRMDIVSR / NFRAMES, or None when no scaling applies (official skip rules)."""
    if nframes is None or frame_divisor is None:
        return None  # covers "NFRAMES a power of two" and "FRMDIVSR unknown" alike
    if int(nframes) == int(frame_divisor):
        return None
    return float(frame_divisor) / int(nframes)


def rescale_groups(data: np.ndarray, factor: float) -> None:
    """Multiply every group of every integration by ``factor`` (in place)."""
    data *= factor  # a Python float: applied in the array's own precision, like the official


def apply(ramp: Ramp, refs: dict, params: dict) -> str:
    factor = scale_needed(ramp.meta.get("NFRAMES"), ramp.meta.get("FRMDIVSR"))
    if factor is None:
        log.info("NFRAMES=%s FRMDIVSR=%s: no group rescaling needed",
                 ramp.meta.get("NFRAMES"), ramp.meta.get("FRMDIVSR"))
        return "SKIPPED"
    log.info("rescaling all groups by FRMDIVSR/NFRAMES = %g", factor)
    rescale_groups(ramp.data, factor)
    return "COMPLETE"
