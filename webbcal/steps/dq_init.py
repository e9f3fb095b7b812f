"""dq_init: seed PIXELDQ from the MASK reference and mark masked pixels unusable in GROUPDQ.

Official: ``jwst/dq_init``. The mask DQ (already remapped through DQ_DEF and cut to the
subarray by the reference cache) is OR-ed into PIXELDQ; its DO_NOT_USE bit is copied into
every group, so masked pixels have no usable group. An optional user DQ image is OR-ed
into the mask first.
"""

from __future__ import annotations

import logging

import numpy as np

from webbcal import dqflags
from webbcal.errors import WebbcalError
from webbcal.steps.base import Param, StepSpec
from webbcal.steps.reference_arrays import reference_plane
from webbcal.steps.containers import Ramp

log = logging.getLogger("webbcal.steps.dq_init")

SPEC = StepSpec(
    name="dq_init", stage="detector1", status_key="S_DQINIT", reftypes=("mask",),
    params=(
        Param("user_supplied_dq", str, None,
              "FITS file whose primary array (subarray shape) is OR-ed into the mask DQ",
              nullable=True),
    ),
    doc="Initialise PIXELDQ from the MASK reference; DO_NOT_USE reaches every group.",
)


def ensure_dq_arrays(data: np.ndarray, groupdq: np.ndarray | None,
                     pixeldq: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """GROUPDQ and PIXELDQ of the right shape: zero arrays replace missing or misshapen ones."""
    if pixeldq is None or pixeldq.shape != data.shape[-2:]:
        pixeldq = np.zeros(data.shape[-2:], dtype=np.uint32)
    if groupdq is None or groupdq.shape != data.shape:
        groupdq = np.zeros(data.shape, dtype=np.uint8)
    return groupdq, pixeldq


def initialize_dq(groupdq: np.ndarray, pixeldq: np.ndarray, mask: np.ndarray,
                  user_dq: np.ndarray | None = None) -> None:
    """OR ``mask`` (and ``user_dq``) into ``pixeldq`` and its DO_NOT_USE into every group."""
    mask = np.asarray(mask, dtype=np.uint32)
    if user_dq is not None:
        mask = mask | np.asarray(user_dq).astype(np.uint32)
    pixeldq |= mask.astype(pixeldq.dtype, copy=False)
    masked = np.nonzero(mask & dqflags.DO_NOT_USE)
    if masked[0].size > mask.size // 16:  # many: one broadcast pass over the ramp
        groupdq |= (mask & dqflags.DO_NOT_USE).astype(groupdq.dtype)
    elif masked[0].size:  # the usual few bad pixels: only their groups are touched
        groupdq[..., masked[0], masked[1]] |= groupdq.dtype.type(dqflags.DO_NOT_USE)


def read_user_dq(path: str, shape: tuple[int, int]) -> np.ndarray:
    from astropy.io import fits
    try:
        user_dq = fits.getdata(path)
    except (OSError, ValueError) as exc:
        raise WebbcalError(path, f"cannot read user-supplied DQ: {exc}") from None
    if user_dq is None or user_dq.shape != tuple(shape):
        got = None if user_dq is None else user_dq.shape
        raise WebbcalError(path, f"user-supplied DQ has shape {got}, expected {tuple(shape)}")
    return user_dq


def apply(ramp: Ramp, refs: dict, params: dict) -> str:
    mask_ref = refs.get("mask")
    if mask_ref is None:
        log.warning("no MASK reference: dq_init skipped")
        return "SKIPPED"
    ramp.groupdq, ramp.pixeldq = ensure_dq_arrays(ramp.data, ramp.groupdq, ramp.pixeldq)
    mask = reference_plane(mask_ref, "DQ", ramp.pixeldq.shape, "mask")
    user_dq = None
    if params.get("user_supplied_dq"):
        user_dq = read_user_dq(params["user_supplied_dq"], ramp.pixeldq.shape)
    initialize_dq(ramp.groupdq, ramp.pixeldq, mask, user_dq)
    return "COMPLETE"
