"""linearity: correct the classic non-linearity of the ramps (official ``stcal.linearity``).

Default (group-level) path: every group not flagged SATURATED becomes
``sum_k c_k F^k`` with the LINEARITY COEFFS evaluated by Horner's rule.

Read-level path (jwst 3.0): when the reference carries INV_COEFFS and groups average more
than one frame, a group is not the average of linear reads, so correcting the average is
slightly wrong. Each group is then modelled as its individual reads: a linear ramp through
the corrected first and last unsaturated groups is "un-linearised" read by read with
INV_COEFFS, shifted to reproduce the measured group, linearised again read by read and
averaged.

Coefficient sanitising (both coefficient sets): pixels flagged NO_LIN_CORR in the
reference, with any NaN coefficient, or with a zero linear term get the identity
polynomial (the last two also gain NO_LIN_CORR in PIXELDQ).
"""

from __future__ import annotations

import logging

import numpy as np

from webbcal import dqflags
from webbcal.errors import WebbcalError
from webbcal.steps.base import StepSpec
from webbcal.steps.containers import Ramp
from webbcal.steps.saturation import group_frames

log = logging.getLogger("webbcal.steps.linearity")

SPEC = StepSpec(
    name="linearity", stage="detector1", status_key="S_LINEAR", reftypes=("linearity",),
    doc="Polynomial linearity correction of unsaturated groups (read-level with INV_COEFFS).",
)

ROW_BLOCK = 64  # rows per block in the read-level path (bounds the per-read temporaries)


def sanitize_coefficients(coeffs: np.ndarray, lin_dq: np.ndarray, pixeldq: np.ndarray
                          ) -> tuple[np.ndarray, np.ndarray]:
    """(coefficients, new pixeldq): unusable pixels get identity coefficients (copy)."""
    coeffs = np.asarray(coeffs)
    coeffs = coeffs.astype(coeffs.dtype.newbyteorder("="))  # a native copy: fast arithmetic
    identity = np.zeros(coeffs.shape[0], dtype=coeffs.dtype)
    identity[1] = 1
    new_pdq = pixeldq | np.asarray(lin_dq).astype(pixeldq.dtype, copy=False)
    flagged = (np.asarray(lin_dq) & dqflags.NO_LIN_CORR) != 0
    coeffs[:, flagged] = identity[:, None]
    has_nan = np.isnan(coeffs).any(axis=0)
    coeffs[:, has_nan] = identity[:, None]
    zero_slope = coeffs[1] == 0
    coeffs[:, zero_slope] = identity[:, None]
    new_pdq[has_nan | zero_slope] |= dqflags.NO_LIN_CORR
    return coeffs, new_pdq


def evaluate_polynomial(values: np.ndarray, coeffs: np.ndarray) -> np.ndarray:
    """``sum_k coeffs[k] * values**k`` by Horner's rule (same operation order as stcal)."""
    result = coeffs[-1] * values
    for c in coeffs[-2:0:-1]:
        result += c
        result *= values
    result += coeffs[0]
    return result


def correct_groups(data: np.ndarray, groupdq: np.ndarray, coeffs: np.ndarray) -> None:
    """Group-level correction of a (ngroups, ny, nx) integration in place; saturated untouched.

    By blocks of rows, every group of a block in turn, so that the block's coefficients
    stay in cache instead of being read from memory once per group and power.
    """
    for r0 in range(0, data.shape[1], ROW_BLOCK):
        rows = slice(r0, r0 + ROW_BLOCK)
        block_coeffs = coeffs[:, rows]
        for plane, gdq in zip(data[:, rows], groupdq[:, rows]):
            corrected = evaluate_polynomial(plane, block_coeffs)
            np.copyto(plane, corrected, where=(gdq & dqflags.SATURATED) == 0)


def correct_reads(data: np.ndarray, groupdq: np.ndarray, coeffs: np.ndarray,
                  inv_coeffs: np.ndarray, frames: list[list[int]]) -> None:
    """Read-level correction of a (ngroups, ny, nx) integration in place (row blocks)."""
    for r0 in range(0, data.shape[1], ROW_BLOCK):
        rows = slice(r0, r0 + ROW_BLOCK)
        _correct_reads_block(data[:, rows], groupdq[:, rows], coeffs[:, rows],
                             inv_coeffs[:, rows], frames)


def _correct_reads_block(data, groupdq, coeffs, inv_coeffs, frames) -> None:
    sat = dqflags.SATURATED
    mean_frame = np.array([np.mean(f) for f in frames])
    n_good = ((groupdq & sat) == 0).sum(axis=0, dtype=np.int32) - 1
    n_good[n_good < 2] = 2
    last = (n_good - 1)[None]  # second-to-last unsaturated group (official choice)

    def linearised(values, gdq):
        return np.where((gdq & sat) != 0, values, evaluate_polynomial(values, coeffs))

    first_lin = linearised(data[0], groupdq[0])
    last_lin = linearised(np.take_along_axis(data, last, axis=0)[0],
                          np.take_along_axis(groupdq, last, axis=0)[0])
    rate = (last_lin - first_lin) / (mean_frame[last[0]] - mean_frame[0])
    for g in range(data.shape[0]):
        offsets = np.array(frames[g]) - mean_frame[0]
        reads = first_lin[None] + rate[None] * offsets[:, None, None]
        raw_reads = evaluate_polynomial(reads, inv_coeffs)
        raw_reads += (data[g] - raw_reads.mean(axis=0))[None]
        corrected = np.mean([evaluate_polynomial(r, coeffs) for r in raw_reads], axis=0)
        np.copyto(data[g], corrected, where=(groupdq[g] & sat) == 0, casting="unsafe")


def correct_linearity(data: np.ndarray, groupdq: np.ndarray, pixeldq: np.ndarray,
                      coeffs: np.ndarray, lin_dq: np.ndarray, *,
                      inv_coeffs: np.ndarray | None = None,
                      frames: list[list[int]] | None = None,
                      zeroframe: np.ndarray | None = None) -> np.ndarray:
    """Correct ``data`` (and ``zeroframe``) in place; return the updated pixel DQ.

    ``inv_coeffs`` with ``frames`` selects the read-level path; otherwise group level.
    """
    coeffs, new_pdq = sanitize_coefficients(coeffs, lin_dq, pixeldq)
    if inv_coeffs is not None:
        if frames is None:
            raise ValueError("the read-level correction needs the frames of each group")
        inv_coeffs, new_pdq = sanitize_coefficients(inv_coeffs, lin_dq, new_pdq)
    for i in range(data.shape[0]):
        if inv_coeffs is None:
            correct_groups(data[i], groupdq[i], coeffs)
        else:
            correct_reads(data[i], groupdq[i], coeffs, inv_coeffs, frames)
    if zeroframe is not None:
        for plane in zeroframe:
            usable = plane != 0.0  # 0 marks unusable values; they stay 0
            np.copyto(plane, evaluate_polynomial(plane, coeffs), where=usable)
    return new_pdq


def apply(ramp: Ramp, refs: dict, params: dict) -> str:
    lin_ref = refs.get("linearity")
    if lin_ref is None:
        log.warning("no LINEARITY reference: linearity skipped")
        return "SKIPPED"
    path = getattr(lin_ref, "path", "linearity")
    coeffs = np.asarray(lin_ref.arrays["COEFFS"])
    if coeffs.ndim != 3 or coeffs.shape[0] < 2 or coeffs.shape[1:] != ramp.data.shape[-2:]:
        raise WebbcalError(path, f"COEFFS shape {coeffs.shape} does not fit the data {ramp.data.shape[-2:]}")
    lin_dq = lin_ref.arrays.get("DQ")
    if lin_dq is None:
        lin_dq = np.zeros(coeffs.shape[1:], dtype=np.uint32)
    inv_coeffs = lin_ref.arrays.get("INV_COEFFS")
    nframes = int(ramp.meta.get("NFRAMES", 1))
    frames = None
    # (the official also requires an empty meta.exposure.read_times; NIRCam never sets it)
    if inv_coeffs is not None and nframes > 1:
        frames = group_frames(ramp.data.shape[1], nframes)
        log.info("INV_COEFFS present and NFRAMES=%d: read-level linearity correction", nframes)
    else:
        inv_coeffs = None
    zeroframe = ramp.zeroframe if ramp.meta.get("ZEROFRAM", False) else None
    ramp.pixeldq = correct_linearity(ramp.data, ramp.groupdq, ramp.pixeldq, coeffs, lin_dq,
                                     inv_coeffs=None if inv_coeffs is None else np.asarray(inv_coeffs),
                                     frames=frames, zeroframe=zeroframe)
    return "COMPLETE"
