"""refpix: remove bias drifts and 1/f row noise with the reference pixels (NIR, non-IRS2).

Official ``jwst/refpix/reference_pixels.py``. The 2048² H2RG has a 4-pixel reference border
(no light-sensitive diode) read through the same four outputs (amplifiers, 512 detector
columns each). Per integration and group, in the *detector* frame (DMS↔detector through
FASTAXIS/SLOWAXIS):

1. amplifier offsets: per amplifier, sigma-clipped means of the top and bottom reference
   rows, separately for even and odd detector columns (the two column ADC phases), are
   averaged top/bottom and subtracted from that amplifier's columns;
2. side (row) correction, 4-output readouts: a running median over
   ``side_smoothing_length`` rows of the left (columns 0-3) and right (2044-2047)
   reference columns, mirrored at the detector edges, is averaged left/right and
   ``side_gain`` times it subtracted from each whole row;
3. one-output subarrays (official): one sigma-clipped mean per column parity of all
   reference pixels inside the subarray (PIXELDQ REFERENCE_PIXEL, not DO_NOT_USE),
   subtracted from the whole subarray.

Deliberate deviation (``subarray_side_correction=True``): for one-output subarrays that
contain side reference columns (e.g. SUB640, SUBxxxP at detector corners) the official
stops after step 3; here step 2 then runs with the side columns the subarray has, which
removes the row-correlated 1/f noise as on full frames. Set it False to match the official.

Reference pixels flagged DO_NOT_USE are ignored; parts of the full-frame geometry outside
a subarray count as missing (the official embeds the subarray in a DO_NOT_USE frame; the
result is the same without ever building a 2048² array). ``refpix_algorithm='sirs'``
needs a SIRSKERNEL reference that webbcal does not use: the running median is used, as the
official does when that reference is unavailable. IRS2 and MIRI parameters are accepted
for compatibility and have no effect on NIRCam.

After the correction the row noise it leaves behind (1/f faster than the side smoothing,
plus the reference pixels' own noise; ~1 DN per group on the simulated NRCA1) is measured
on the science pixels and recorded as ``ROWNOISE`` for jump and ramp_fit
(``webbcal.steps._row_noise``).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from webbcal import dqflags
from webbcal.errors import WebbcalError
from webbcal.steps import _row_noise as row_noise
from webbcal.steps.base import Param, StepSpec
from webbcal.steps.containers import Ramp

log = logging.getLogger("webbcal.steps.refpix")

SPEC = StepSpec(
    name="refpix", stage="detector1", status_key="S_REFPIX",
    params=(
        Param("odd_even_columns", bool, True,
              "compute the reference signal separately for even and odd columns"),
        Param("use_side_ref_pixels", bool, True,
              "use the side reference pixels for a row-by-row reference signal"),
        Param("side_smoothing_length", int, 11,
              "height in rows of the running-median window on the side reference pixels",
              minimum=1),
        Param("side_gain", float, 1.0,
              "factor applied to the side reference signal before subtracting it from rows"),
        Param("odd_even_rows", bool, True,
              "separate even/odd rows (MIRI only; no effect on NIRCam)"),
        Param("ovr_corr_mitigation_ftr", float, 3.0,
              "IRS2 overcorrection mitigation factor (NIRSpec IRS2 only; no effect)"),
        Param("preserve_irs2_refpix", bool, False,
              "keep IRS2 reference pixels in the output (NIRSpec IRS2 only; no effect)"),
        Param("irs2_mean_subtraction", bool, False,
              "mean offset subtraction before IRS2 correction (NIRSpec IRS2 only; no effect)"),
        Param("refpix_algorithm", str, "median",
              "side-pixel algorithm; 'sirs' needs a SIRSKERNEL reference and falls back to median",
              choices=("median", "sirs")),
        Param("sigreject", float, 4.0, "SIRS: number of sigmas to reject as outliers"),
        Param("gaussmooth", float, 1.0, "SIRS: width of the Gaussian low-pass kernel"),
        Param("halfwidth", int, 30, "SIRS: half-width of the convolution kernel"),
        Param("siglimit", float, 3.0,
              "sigma-clipping limit for the means of the reference pixels"),
        Param("subarray_side_correction", bool, True,
              "webbcal extension: also apply the side (1/f row) correction in one-output "
              "subarrays that contain side reference columns (False = official behaviour)"),
    ),
    doc="Subtract amplifier offsets and 1/f row noise measured in the reference pixels.",
)

FULL = 2048
NREF = 4
AMP_WIDTH = 512
LEFT_COLUMNS = (0, NREF)
RIGHT_COLUMNS = (FULL - NREF, FULL)


# --------------------------------------------------------------------------- geometry
def to_detector(array: np.ndarray, fastaxis: int, slowaxis: int) -> np.ndarray:
    """View of ``array`` (last two axes in DMS orientation) in the detector frame."""
    fast, slow = int(np.sign(fastaxis)), int(np.sign(slowaxis))
    if abs(fastaxis) == 1:
        return array[..., ::slow, ::fast]
    return np.swapaxes(array[..., ::fast, ::slow], -1, -2)


def _flipped_range(start: int, size: int, sign: int) -> tuple[int, int]:
    return (start, size) if sign > 0 else (FULL - start - size, size)


@dataclass(frozen=True)
class Footprint:
    """Where a (sub)array sits on the detector, in the detector frame (0-based)."""

    row0: int
    col0: int
    nrows: int
    ncols: int

    def rows(self, lo: int, hi: int) -> slice | None:
        """Local slice of detector rows [lo, hi) inside the footprint, or None."""
        a, b = max(lo, self.row0), min(hi, self.row0 + self.nrows)
        return slice(a - self.row0, b - self.row0) if a < b else None

    def cols(self, lo: int, hi: int) -> tuple[int, int] | None:
        a, b = max(lo, self.col0), min(hi, self.col0 + self.ncols)
        return (a - self.col0, b - self.col0) if a < b else None


def detector_footprint(xstart: int, ystart: int, nx: int, ny: int,
                       fastaxis: int, slowaxis: int) -> Footprint:
    """Footprint of a DMS subarray (0-based starts) once turned to the detector frame."""
    fast, slow = int(np.sign(fastaxis)), int(np.sign(slowaxis))
    if abs(fastaxis) == 1:
        (r0, nr), (c0, nc) = _flipped_range(ystart, ny, slow), _flipped_range(xstart, nx, fast)
    else:  # detector rows run along DMS columns
        (c0, nc), (r0, nr) = _flipped_range(ystart, ny, fast), _flipped_range(xstart, nx, slow)
    return Footprint(r0, c0, nr, nc)


# --------------------------------------------------------------------------- statistics
def clipped_mean(values: np.ndarray, dq: np.ndarray, siglimit: float):
    """Mean of the non-DO_NOT_USE ``values`` after iterative sigma clipping, or None.

    Same semantics (and float32 arithmetic) as the official: ``scipy.stats.sigmaclip``
    with ``siglimit`` both sides, a plain float64 mean when the values have zero spread.
    """
    good = values[(dq & dqflags.DO_NOT_USE) == 0]
    if good.size == 0:
        return None
    if np.std(good, dtype=np.float64) == 0.0:
        return good.mean(dtype=np.float64)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # NaN reference values give NaN, quietly
        kept = good.ravel()
        while True:
            mean, std, size = kept.mean(), kept.std(), kept.size
            kept = kept[(kept >= mean - std * siglimit) & (kept <= mean + std * siglimit)]
            if kept.size == size:
                break
        return kept.mean()


def _average(a, b):
    if a is None:
        return b
    if b is None:
        return a
    return 0.5 * (a + b)


def running_median(values: np.ndarray, good: np.ndarray, length: int) -> np.ndarray:
    """Median of the good entries of ``values`` (nrows, k) over ``length`` rows centred on
    each row, the rows mirrored about the first/last row (which is not repeated).

    Returns float64 (nrows,), NaN where a window has no good entry. Vectorised: every
    window is sorted once with the bad entries pushed to the end.
    """
    if length % 2 == 0:
        length += 1  # the official makes the window odd the same way
    half = length // 2
    padded = np.pad(np.where(good, values, np.inf).astype(values.dtype), ((half, half), (0, 0)),
                    mode="reflect")
    padded_good = np.pad(good, ((half, half), (0, 0)), mode="reflect")
    nrows = values.shape[0]
    windows = np.sort(sliding_window_view(padded, length, axis=0).reshape(nrows, -1), axis=1)
    ngood = sliding_window_view(padded_good, length, axis=0).reshape(nrows, -1).sum(axis=1)
    nan_in_window = sliding_window_view(np.pad(good & np.isnan(values), ((half, half), (0, 0)),
                                               mode="reflect"), length, axis=0).reshape(nrows, -1).any(axis=1)
    lo = np.take_along_axis(windows, np.maximum(ngood - 1, 0)[:, None] // 2, axis=1)[:, 0]
    hi = np.take_along_axis(windows, np.minimum(ngood // 2, windows.shape[1] - 1)[:, None], axis=1)[:, 0]
    with np.errstate(invalid="ignore", over="ignore"):
        median = ((lo + hi) / values.dtype.type(2)).astype(np.float64)  # numpy's even-n median
    median[(ngood == 0) | nan_in_window] = np.nan  # np.median propagates NaN
    return median


# --------------------------------------------------------------------------- corrections
def amplifier_offsets(plane: np.ndarray, dq: np.ndarray, fp: Footprint, *,
                      odd_even_columns: bool, siglimit: float) -> np.ndarray:
    """Step 1: the offset (float64) to subtract from each footprint column.

    Measured on the top and bottom reference rows, in float64 as the full-frame path
    computes. Amplifiers the official leaves uncorrected (no usable reference pixel for
    one column parity) get 0.
    """
    offsets = np.zeros(plane.shape[1])
    edges = [fp.rows(0, NREF), fp.rows(FULL - NREF, FULL)]  # bottom, top
    for amp in range(FULL // AMP_WIDTH):
        cols = fp.cols(amp * AMP_WIDTH, (amp + 1) * AMP_WIDTH)
        if cols is None:
            continue
        c_lo, c_hi = cols
        if odd_even_columns:
            # official "odd" = 1st, 3rd... column of the amplifier = even detector columns
            starts = [c_lo + (fp.col0 + c_lo) % 2, c_lo + (fp.col0 + c_lo + 1) % 2]
            signals = [_average(*[_edge_mean(plane, dq, rows, slice(start, c_hi, 2), siglimit)
                                  for rows in (edges[1], edges[0])]) for start in starts]
            if any(s is None for s in signals):
                continue  # the official leaves such an amplifier uncorrected
            for start, signal in zip(starts, signals):
                offsets[start:c_hi:2] = signal
        else:
            signal = _average(*[_edge_mean(plane, dq, rows, slice(c_lo, c_hi), siglimit)
                                for rows in (edges[1], edges[0])])
            if signal is not None:
                offsets[c_lo:c_hi] = signal
    return offsets


def _edge_mean(plane, dq, rows: slice | None, cols: slice, siglimit: float):
    if rows is None:
        return None
    return clipped_mean(plane[rows, cols].astype(np.float64), dq[rows, cols], siglimit)


def side_reference_signal(plane: np.ndarray, dq: np.ndarray, fp: Footprint,
                          smoothing_length: int,
                          column_offsets: np.ndarray | None = None) -> np.ndarray | None:
    """Row signal (float64, footprint rows) from the side reference columns, or None if
    the footprint has none. Rows of the full detector outside the footprint count as bad.

    With ``column_offsets`` (float64, per footprint column) the side columns are read as
    ``plane - column_offsets`` in float64: the values the amplifier correction would have
    left, without correcting the whole plane first.
    """
    sides = []
    dtype = plane.dtype if column_offsets is None else np.float64
    for lo, hi in (LEFT_COLUMNS, RIGHT_COLUMNS):
        stack = np.zeros((FULL, hi - lo), dtype=dtype)
        good = np.zeros((FULL, hi - lo), dtype=bool)
        cols = fp.cols(lo, hi)
        if cols is not None:
            dst = slice(fp.col0 + cols[0] - lo, fp.col0 + cols[1] - lo)
            rows = slice(fp.row0, fp.row0 + fp.nrows)
            values = plane[:, cols[0]:cols[1]]
            if column_offsets is not None:
                values = values.astype(np.float64) - column_offsets[cols[0]:cols[1]]
            stack[rows, dst] = values
            good[rows, dst] = (dq[:, cols[0]:cols[1]] & dqflags.DO_NOT_USE) == 0
        sides.append((cols is not None, stack, good))
    if not any(present for present, _, _ in sides):
        return None
    left, right = (running_median(stack, good, smoothing_length)[fp.row0:fp.row0 + fp.nrows]
                   for _, stack, good in sides)
    combined = np.where(np.isnan(left), right, np.where(np.isnan(right), left, 0.5 * (left + right)))
    return np.nan_to_num(combined, nan=0.0)


def subtract_subarray_offsets(plane: np.ndarray, refmask: np.ndarray, fp: Footprint, *,
                              odd_even_columns: bool, siglimit: float) -> None:
    """Official one-output subarray correction on a detector-frame plane, in place."""
    nodq = np.zeros(1, dtype=np.uint32)
    if odd_even_columns:
        for parity in (0, 1):  # detector column parity
            start = (parity - fp.col0) % 2
            values = plane[:, start::2][refmask[:, start::2]]
            mean = clipped_mean(values, np.broadcast_to(nodq, values.shape), siglimit)
            if mean is not None:
                plane[:, start::2] -= mean
    else:
        values = plane[refmask]
        mean = clipped_mean(values, np.broadcast_to(nodq, values.shape), siglimit)
        if mean is not None:
            plane -= mean


def subtract_reference_pixels(data: np.ndarray, pixeldq: np.ndarray, *, xstart: int = 0,
                              ystart: int = 0, fastaxis: int = 1, slowaxis: int = 2,
                              noutputs: int = 4, odd_even_columns: bool = True,
                              use_side_ref_pixels: bool = True, side_smoothing_length: int = 11,
                              side_gain: float = 1.0, siglimit: float = 3.0,
                              subarray_side_correction: bool = True) -> str:
    """Reference-pixel correction of ``data`` (nints, ngroups, ny, nx) in place.

    ``xstart``/``ystart`` are the 0-based DMS corner of the subarray. Returns "COMPLETE",
    or "SKIPPED" when the subarray does not fit on the detector.
    """
    ny, nx = data.shape[-2:]
    if xstart < 0 or ystart < 0 or xstart + nx > FULL or ystart + ny > FULL:
        log.warning("subarray does not fit in the 2048x2048 detector: refpix skipped")
        return "SKIPPED"
    fp = detector_footprint(xstart, ystart, nx, ny, fastaxis, slowaxis)
    det_data = to_detector(data, fastaxis, slowaxis)
    dq = to_detector(pixeldq, fastaxis, slowaxis)
    full_frame_algorithm = (ny == FULL and nx == FULL) or noutputs == 4
    refmask = None
    if not full_frame_algorithm:
        refmask = (((dq & dqflags.REFERENCE_PIXEL) != 0) & ((dq & dqflags.DO_NOT_USE) == 0))
        if not refmask.any():
            log.warning("no usable reference pixels in the subarray: no offset correction")
    side_wanted = use_side_ref_pixels and (full_frame_algorithm or subarray_side_correction)
    for integration in det_data:
        for plane in integration:
            if full_frame_algorithm:
                _correct_four_outputs(plane, dq, fp, odd_even_columns=odd_even_columns,
                                      siglimit=siglimit, side_wanted=side_wanted,
                                      side_smoothing_length=side_smoothing_length,
                                      side_gain=side_gain)
                continue
            # the one-output path works in float32, as the official does
            if refmask.any():
                subtract_subarray_offsets(plane, refmask, fp, odd_even_columns=odd_even_columns,
                                          siglimit=siglimit)
            if side_wanted:
                signal = side_reference_signal(plane, dq, fp, side_smoothing_length)
                if signal is not None:
                    plane -= (side_gain * signal)[:, None]
    return "COMPLETE"


_ROW_BLOCK = 128  # rows corrected together: a float64 block of a full frame is 2 MB


def _correct_four_outputs(plane, dq, fp: Footprint, *, odd_even_columns: bool, siglimit: float,
                          side_wanted: bool, side_smoothing_length: int, side_gain: float) -> None:
    """Steps 1 and 2 on one detector-frame plane, in place.

    The corrections are computed in float64 and the result rounded once (the official
    effectively does the same from its second group on): ``plane - column offset - side
    signal``, evaluated by blocks of rows so the float64 copy stays in cache.
    """
    offsets = amplifier_offsets(plane, dq, fp, odd_even_columns=odd_even_columns,
                                siglimit=siglimit)
    signal = None
    if side_wanted:
        signal = side_reference_signal(plane, dq, fp, side_smoothing_length, offsets)
    row_signal = None if signal is None else (side_gain * signal)[:, None]
    for r0 in range(0, plane.shape[0], _ROW_BLOCK):
        rows = slice(r0, r0 + _ROW_BLOCK)
        work = plane[rows].astype(np.float64)
        work -= offsets
        if row_signal is not None:
            work -= row_signal[rows]
        plane[rows] = work


def apply(ramp: Ramp, refs: dict, params: dict) -> str:
    meta = ramp.meta
    if params.get("refpix_algorithm", "median") == "sirs":
        log.warning("refpix_algorithm='sirs' needs a SIRSKERNEL reference: using the running median")
    fastaxis, slowaxis = meta.get("FASTAXIS"), meta.get("SLOWAXIS")
    if fastaxis is None or slowaxis is None:
        raise WebbcalError(meta.get("FILENAME"), "FASTAXIS/SLOWAXIS missing: cannot orient the detector")
    options = dict(
        xstart=int(meta.get("SUBSTRT1", 1)) - 1, ystart=int(meta.get("SUBSTRT2", 1)) - 1,
        fastaxis=int(fastaxis), slowaxis=int(slowaxis), noutputs=int(meta.get("NOUTPUTS", 4)),
        odd_even_columns=bool(params.get("odd_even_columns", True)),
        use_side_ref_pixels=bool(params.get("use_side_ref_pixels", True)),
        side_smoothing_length=int(params.get("side_smoothing_length", 11)),
        side_gain=float(params.get("side_gain", 1.0)), siglimit=float(params.get("siglimit", 3.0)),
        subarray_side_correction=bool(params.get("subarray_side_correction", True)))
    status = subtract_reference_pixels(ramp.data, ramp.pixeldq, **options)
    if status == "COMPLETE":
        # what the correction leaves behind, for jump and ramp_fit's noise model
        meta[row_noise.KEYWORD] = (round(row_noise.residual_row_noise(
            ramp.data, ramp.groupdq, ramp.pixeldq), 4), row_noise.COMMENT)
    if status == "COMPLETE" and meta.get("ZEROFRAM", False) and ramp.zeroframe is not None:
        # the ZEROFRAME is corrected as a one-group ramp; unusable (0) values stay 0
        unusable = ramp.zeroframe == 0.0
        subtract_reference_pixels(ramp.zeroframe[:, None], ramp.pixeldq, **options)
        ramp.zeroframe[unusable] = 0.0
    return status
