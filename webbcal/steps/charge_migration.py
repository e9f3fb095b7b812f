"""charge_migration: flag groups affected by charge migration ("brighter-fatter").

Official ``jwst/charge_migration`` (skipped by default). Once a pixel exceeds
``signal_threshold`` DN, charge spills to its four edge neighbours: that group and all
later groups of the pixel and of the neighbours get CHARGELOSS | DO_NOT_USE. Groups whose
DQ is exactly DO_NOT_USE do not trigger. Needs at least 3 groups.
"""

from __future__ import annotations

import logging

import numpy as np

from webbcal import dqflags
from webbcal.steps.base import Param, StepSpec
from webbcal.steps.containers import Ramp

log = logging.getLogger("webbcal.steps.charge_migration")

SPEC = StepSpec(
    name="charge_migration", stage="detector1", status_key="S_CHGMIG", skip=True,
    params=(
        Param("signal_threshold", float, 25000.0,
              "science value (DN) above which a group and its 4 neighbours are flagged CHARGELOSS"),
    ),
    doc="Flag CHARGELOSS|DO_NOT_USE from the first group above signal_threshold onwards.",
)


def flag_charge_migration(data: np.ndarray, groupdq: np.ndarray, signal_threshold: float) -> None:
    """Set CHARGELOSS | DO_NOT_USE in place (see module doc); one integration at a time."""
    flag = np.uint8(dqflags.CHARGELOSS | dqflags.DO_NOT_USE)
    for i in range(data.shape[0]):
        # a group is hit once any earlier-or-equal group triggered: cumulative OR over groups
        hit = np.logical_or.accumulate(
            (data[i] > signal_threshold) & (groupdq[i] != dqflags.DO_NOT_USE), axis=0)
        spread = hit.copy()
        spread[:, 1:, :] |= hit[:, :-1, :]
        spread[:, :-1, :] |= hit[:, 1:, :]
        spread[:, :, 1:] |= hit[:, :, :-1]
        spread[:, :, :-1] |= hit[:, :, 1:]
        np.bitwise_or(groupdq[i], flag, out=groupdq[i], where=spread)


def apply(ramp: Ramp, refs: dict, params: dict) -> str:
    if ramp.data.shape[1] < 3:
        log.info("fewer than 3 groups per integration: charge_migration skipped")
        return "SKIPPED"
    flag_charge_migration(ramp.data, ramp.groupdq, float(params.get("signal_threshold", 25000.0)))
    return "COMPLETE"
