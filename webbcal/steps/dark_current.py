"""dark_current: subtract the dark ramp (official ``stcal.dark_current``).

The DARK reference is a RAPID-like ramp (NFRAMES=1, GROUPGAP=0) for the science subarray;
it is extended by linear extrapolation when shorter than the exposure, averaged into the
science read pattern (frames ``g*(NFRAMES+GROUPGAP) ...`` for group g) and subtracted from
every integration. The step also records the average dark current (AVDRKCUR, e-/s) used
by ramp fitting for the Poisson variance: the ``average_dark_current`` parameter wins,
then a non-zero AVDRKCUR image in the reference, then its AVDRKCUR keyword, else 0.
"""

from __future__ import annotations

import logging
import math
import warnings

import numpy as np

from webbcal.errors import WebbcalError
from webbcal.steps.base import Param, StepSpec
from webbcal.steps.containers import Ramp

log = logging.getLogger("webbcal.steps.dark_current")

SPEC = StepSpec(
    name="dark_current", stage="detector1", status_key="S_DARK", reftypes=("dark",),
    params=(
        Param("dark_output", str, None,
              "file to save the frame-averaged dark that was subtracted", nullable=True),
        Param("average_dark_current", float, None,
              "average dark current of the detector in e-/s (overrides the reference)",
              nullable=True),
    ),
    doc="Subtract the DARK reference, averaged to the science read pattern.",
)


def total_frames(ngroups: int, nframes: int, groupgap: int) -> int:
    return ngroups * nframes + (ngroups - 1) * groupgap


def extrapolate_dark(dark: np.ndarray, extra: int) -> np.ndarray:
    """Append ``extra`` planes continuing the last difference of a (n, ny, nx) dark."""
    step = dark[-1] - dark[-2]
    k = np.arange(1, extra + 1).reshape(-1, 1, 1)
    return np.concatenate((dark, k * step + dark[-1]))


def pattern_usable(nframes: int, groupgap: int, dark_nframes: int = 1,
                   dark_groupgap: int = 0) -> bool:
    """False when the dark averages or skips more frames than the science (step skipped)."""
    return not (dark_nframes > nframes or dark_groupgap > groupgap)


def extend_dark(dark: np.ndarray, ngroups: int, nframes: int, groupgap: int,
                dark_nframes: int = 1, dark_groupgap: int = 0) -> np.ndarray:
    """``dark``, extrapolated when it has fewer frames than the exposure needs."""
    needed = total_frames(ngroups, nframes, groupgap)
    available = total_frames(dark.shape[0], dark_nframes, dark_groupgap)
    if needed <= available:
        return dark
    extra = math.ceil((needed - available + dark_groupgap) / (dark_nframes + dark_groupgap))
    log.warning("dark has %d frames, exposure needs %d: extrapolating %d planes",
                available, needed, extra)
    return extrapolate_dark(np.asarray(dark), extra)


def dark_plane(dark: np.ndarray, g: int, nframes: int, groupgap: int,
               dark_nframes: int = 1, dark_groupgap: int = 0) -> np.ndarray:
    """The dark of science group ``g`` (ny, nx), NaN as 0, from the (extended) dark.

    Read one plane (or the frames of one group) at a time, so a memory-mapped dark is
    never copied whole. Resampled planes are float32 as the official stores them; a dark
    already in the science pattern keeps its dtype (float64 once extrapolated).
    """
    if nframes == dark_nframes and groupgap == dark_groupgap:
        return _zero_nan(_native_copy(dark[g]))
    start = g * (nframes + groupgap)
    if nframes == 1:
        # float32 as the official stores it
        return _zero_nan(np.array(dark[start], dtype=np.float32))
    frames = _zero_nan(_native_copy(dark[start:start + nframes]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # frames beyond the dark: NaN
        return frames.mean(axis=0).astype(np.float32)


def _zero_nan(values: np.ndarray) -> np.ndarray:
    """NaN dark values count as 0 (in place; infinities are kept, as the official does)."""
    values[np.isnan(values)] = 0
    return values


def _native_copy(array) -> np.ndarray:
    array = np.asarray(array)
    return array.astype(array.dtype.newbyteorder("="))


def dark_for_pattern(dark: np.ndarray, ngroups: int, nframes: int, groupgap: int,
                     dark_nframes: int = 1, dark_groupgap: int = 0) -> np.ndarray | None:
    """The dark resampled to the science read pattern (ngroups, ny, nx), or None if impossible.

    None when the dark averages more frames or skips more frames than the science.
    NaN dark values become 0.
    """
    if not pattern_usable(nframes, groupgap, dark_nframes, dark_groupgap):
        return None
    dark = extend_dark(dark, ngroups, nframes, groupgap, dark_nframes, dark_groupgap)
    return np.stack([dark_plane(dark, g, nframes, groupgap, dark_nframes, dark_groupgap)
                     for g in range(ngroups)])


def subtract_dark(data: np.ndarray, dark: np.ndarray) -> None:
    """``data[i, g] -= dark[g]`` for every integration, in place (no saturation masking)."""
    for integration in data:
        for g, plane in enumerate(integration):
            plane -= dark[g]


def average_dark_current(param_value: float | None, ref_image: np.ndarray | None,
                         ref_keyword: float | None, shape: tuple[int, int]) -> np.ndarray:
    """AVDRKCUR image (e-/s) by the official priority: parameter, image, keyword, 0."""
    if param_value is not None:
        return np.full(shape, param_value, dtype=np.float32)
    if ref_image is not None and np.sum(ref_image) != 0.0:
        if np.shape(ref_image) == tuple(shape):
            return np.asarray(ref_image, dtype=np.float32)
        log.warning("dark AVDRKCUR image %s does not match the data %s: not used",
                    np.shape(ref_image), shape)
        return None
    return np.full(shape, 0.0 if ref_keyword is None else float(ref_keyword), dtype=np.float32)


def apply(ramp: Ramp, refs: dict, params: dict) -> str:
    dark_ref = refs.get("dark")
    if dark_ref is None:
        log.warning("no DARK reference: dark_current skipped")
        return "SKIPPED"
    path = getattr(dark_ref, "path", "dark")
    dark = dark_ref.arrays["SCI"]  # memory-mapped: read plane by plane
    shape = ramp.data.shape[-2:]
    if dark.ndim != 3 or dark.shape[1:] != shape:
        raise WebbcalError(path, f"dark shape {dark.shape} does not match the data {shape} "
                                 "(a dark for this subarray is needed)")
    avdrkcur = average_dark_current(params.get("average_dark_current"),
                                    dark_ref.arrays.get("AVDRKCUR"),
                                    dark_ref.meta.get("AVDRKCUR"), shape)
    if avdrkcur is not None:
        ramp.avdrkcur = avdrkcur
    meta = ramp.meta
    needed = total_frames(ramp.data.shape[1], int(meta.get("NFRAMES", 1)), int(meta.get("GROUPGAP", 0)))
    available = total_frames(dark.shape[0], int(dark_ref.meta.get("NFRAMES", 1)),
                             int(dark_ref.meta.get("GROUPGAP", 0)))
    if needed > available and dark.shape[0] < 2:
        # extrapolation continues the last frame-to-frame difference: it needs two planes
        raise WebbcalError(path, f"dark has {dark.shape[0]} plane(s) ({available} frames); the "
                                 f"exposure needs {needed} frames and one plane cannot be extrapolated")
    pattern = (int(meta.get("NFRAMES", 1)), int(meta.get("GROUPGAP", 0)),
               int(dark_ref.meta.get("NFRAMES", 1)), int(dark_ref.meta.get("GROUPGAP", 0)))
    if not pattern_usable(*pattern):
        log.warning("dark averages or skips more frames than the science: dark_current skipped")
        return "SKIPPED"
    dark = extend_dark(dark, ramp.data.shape[1], *pattern)
    dark_dq = dark_ref.arrays.get("DQ")
    if dark_dq is not None:
        ramp.pixeldq |= np.asarray(dark_dq).astype(ramp.pixeldq.dtype, copy=False)
    # group by group: the dark (as large as the ramp) is never resampled as a whole
    saved = [] if params.get("dark_output") else None
    for g in range(ramp.data.shape[1]):
        plane = dark_plane(dark, g, *pattern)
        for integration in ramp.data:
            integration[g] -= plane
        if saved is not None:
            saved.append(plane)
    if saved is not None:
        _save_dark(np.stack(saved), dark_dq, dark_ref, meta, params["dark_output"])
    return "COMPLETE"


def _save_dark(dark, dark_dq, dark_ref, meta, path) -> None:
    """Write the subtracted dark as a DarkModel-like FITS file (atomically)."""
    from webbcal.io.product import Product, write_product
    header = dark_ref.meta.copy()
    header["NFRAMES"] = int(meta.get("NFRAMES", 1))
    header["GROUPGAP"] = int(meta.get("GROUPGAP", 0))
    header["NGROUPS"] = dark.shape[0]
    arrays = {"SCI": dark.astype(np.float32)}
    if dark_dq is not None:
        arrays["DQ"] = np.asarray(dark_dq, dtype=np.uint32)
    write_product(Product("DarkModel", header, arrays, {}, {}, {}, None), path)
