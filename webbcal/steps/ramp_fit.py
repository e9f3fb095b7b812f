"""ramp_fit: count rates from up-the-ramp data (official ``OLS_C``, optimal weighting).

Official: ``jwst/ramp_fitting/ramp_fit_step.py`` with stcal ``ramp_fit``/``slope_fitter.c``.
Every pixel and integration is split into segments at jumps and unusable groups; each
segment gets an optimally weighted least-squares slope, and segments (and integrations)
are combined with read-noise-variance weights. VAR_POISSON comes from the pixel's median
rate, VAR_RNOISE from the READNOISE reference (CDS noise, DN). Results agree with stcal to
float32 rounding; the work is vectorized over blocks of detector rows
(``webbcal.steps._ramp_ols``).

Defaults that differ from the official (both switchable to the official behaviour):

* ``exact_variance``: VAR_POISSON and VAR_RNOISE are the variances of the weighted fit
  actually made (its coefficients, the Poisson covariance of frame-averaged groups). The
  official formulas assume end-point weights (Poisson) and uniform weights (read noise):
  on sky pixels of a 10-group BRIGHT2 ramp they miss 5-6 % of the variance. Slopes of
  single-segment ramps are unchanged; multi-segment slopes change only through the
  read-noise weights of their segments.
* ``use_row_noise``: the row (1/f) noise refpix leaves behind (keyword ROWNOISE) is added
  to the per-group read noise. The READNOISE reference cannot know it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from webbcal import dqflags
from webbcal.errors import WebbcalError
from webbcal.steps._ramp_ols import (RampFitResult, _Timing, clean_pixels, fit_clean_pixels,
                                     fit_segmented_pixels, per_group_read_noise)
from webbcal.steps import _row_noise as row_noise
from webbcal.steps.base import Param, StepSpec
from webbcal.steps.reference_arrays import required_plane
from webbcal.steps.containers import Ramp, SlopeImage

log = logging.getLogger("webbcal.steps.ramp_fit")

SPEC = StepSpec(
    name="ramp_fit", stage="detector1", status_key="S_RAMP", reftypes=("gain", "readnoise"),
    params=(
        Param("algorithm", str, "OLS_C", "ramp fitting algorithm (only OLS_C is implemented)",
              choices=("OLS_C", "LIKELY")),
        Param("int_name", str, "", "name of the per-integration product (unused)"),
        Param("save_opt", bool, False, "save the optional fit product (not implemented)"),
        Param("opt_name", str, "", "name of the optional fit product (unused)"),
        Param("suppress_one_group", bool, True,
              "treat integrations with only one good group as having none (slope NaN)"),
        Param("firstgroup", int, None, "ignore groups before this one (0-based)", nullable=True),
        Param("lastgroup", int, None, "ignore groups after this one (0-based)", nullable=True),
        Param("maximum_cores", str, "1", "cores for multiprocessing (webbcal runs one process)"),
        Param("exact_variance", bool, True,
              "webbcal extension: VAR_POISSON and VAR_RNOISE of the weighted fit actually made "
              "(Poisson covariance of frame-averaged groups); False = the official formulas, "
              "which assume end-point weights for Poisson and uniform weights for read noise"),
        Param("use_row_noise", bool, True,
              "webbcal extension: add the row (1/f) noise refpix left behind (keyword ROWNOISE) "
              "to the read noise in the weights and VAR_RNOISE/ERR (False = official)"),
    ),
    doc="Fit ramps: rate (exposure) and rateints (per integration) with OLS_C weighting.",
)

# Pixels fitted together (32 full-frame rows): the float64 working arrays stay a few MB,
# which the allocator recycles from block to block (larger blocks are fresh memory maps
# every time, and the page faults cost more system time than the fit takes).
_BLOCK_PIXELS = 1 << 16


def mask_group_range(groupdq: np.ndarray, firstgroup: int | None, lastgroup: int | None) -> None:
    """Set DO_NOT_USE on groups outside [firstgroup, lastgroup] (in place), as jwst does."""
    ngroups = groupdq.shape[1]
    first = 0 if firstgroup is None else max(int(firstgroup), 0)
    last = ngroups - 1 if lastgroup is None else int(lastgroup)
    if lastgroup is not None and last >= ngroups:
        log.warning("lastgroup %d >= NGROUPS %d", last, ngroups)
    if first >= last:
        log.warning("firstgroup (%d) >= lastgroup (%d): group selectors ignored", first, last)
        return
    dnu = np.uint8(dqflags.DO_NOT_USE)
    if first > 0:
        groupdq[:, :first] |= dnu
    if last < ngroups - 1:
        groupdq[:, last + 1:] |= dnu


def _empty_result(nints: int, ny: int, nx: int) -> RampFitResult:
    image, cube = (ny, nx), (nints, ny, nx)
    f32 = np.float32
    return RampFitResult(
        np.zeros(image, f32), np.zeros(image, f32), np.zeros(image, np.uint32),
        np.zeros(image, f32), np.zeros(image, f32),
        np.zeros(cube, f32), np.zeros(cube, f32), np.zeros(cube, np.uint32),
        np.zeros(cube, f32), np.zeros(cube, f32))


def fit_ramps(data: np.ndarray, groupdq: np.ndarray, pixeldq: np.ndarray,
              read_noise: np.ndarray, gain: np.ndarray, *, nframes: int, tgroup: float,
              tframe: float, dark_current: np.ndarray | None = None,
              zeroframe: np.ndarray | None = None,
              suppress_one_group: bool = True, groupgap: int = 0,
              exact_variance: bool = False) -> RampFitResult | None:
    """Fit every pixel of ``data`` (nints, ngroups, ny, nx) DN; None if nothing is usable.

    ``read_noise`` is the CDS read noise (DN), ``gain`` e-/DN, ``dark_current`` the average
    dark current added to the Poisson variance, ``zeroframe`` (nints, ny, nx) DN. Inputs
    are not modified. Returns None (as the official step) when group 0 is saturated in
    every pixel of every integration.
    """
    nints, ngroups, ny, nx = data.shape
    if groupdq.shape != data.shape or pixeldq.shape != (ny, nx):
        raise WebbcalError("ramp_fit", f"DQ shapes {groupdq.shape}/{pixeldq.shape} do not "
                                       f"match the data {data.shape}")
    if np.all(groupdq[:, 0] & dqflags.SATURATED):
        return None
    if ngroups == 1:
        suppress_one_group = False
    gain32 = np.asarray(gain, dtype=np.float32)
    rnoise = per_group_read_noise(np.asarray(read_noise), gain32, nframes)
    dark = (np.zeros((ny, nx), np.float32) if dark_current is None
            else np.asarray(dark_current, dtype=np.float32))
    frame32 = float(np.float32(tframe))
    timing = _Timing(group=float(np.float32(tgroup)), frame=frame32,
                     one_group=(float(np.float32(nframes)) + 1.0) * frame32 / 2.0,
                     suppress=bool(suppress_one_group), nframes=int(nframes),
                     frame_step=int(nframes) + int(groupgap), exact_variance=bool(exact_variance))

    res = _empty_result(nints, ny, nx)
    # Pass 1, by blocks of rows: the pixels without any flag (nearly all) take the
    # one-segment fast path. Pass 2: the others, gathered from every block, take the
    # general segment bookkeeping together (its per-call overhead is paid a few times,
    # not once per block).
    others = []
    rows = max(1, _BLOCK_PIXELS // max(nx, 1))
    for r0 in range(0, ny, rows):
        band = slice(r0, min(ny, r0 + rows))
        block = _PixelBlock.rows(data, groupdq, pixeldq, rnoise, gain32, dark, zeroframe, band)
        clean = (clean_pixels(block.data, block.groupdq, block.pixeldq, block.rnoise,
                              block.gain) if ngroups >= 3 else None)
        if clean is None or not clean.any():
            others.append(r0 * nx + np.arange(block.npix))
            continue
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            fitted = fit_clean_pixels(block.data, block.pixeldq, block.rnoise, block.gain,
                                      block.dark, timing)
        _store(res, fitted, (slice(None), band), (nints, band.stop - r0, nx))
        others.append(r0 * nx + np.flatnonzero(~clean))
    others = np.concatenate(others)
    for k in range(0, others.size, _BLOCK_PIXELS):
        ys, xs = np.divmod(others[k:k + _BLOCK_PIXELS], nx)
        block = _PixelBlock.pixels(data, groupdq, pixeldq, rnoise, gain32, dark, zeroframe,
                                   ys, xs)
        # NaN/inf from bad gains or NaN data propagate as in the C code and are masked
        # by the DQ rules, so floating-point warnings carry no information here.
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            fitted = fit_segmented_pixels(block.data, block.groupdq, block.pixeldq,
                                          block.rnoise, block.gain, block.dark,
                                          block.zeroframe, timing)
        _store(res, fitted, (slice(None), ys, xs), (nints, ys.size))
    return res


@dataclass
class _PixelBlock:
    """The arrays of some pixels as the fit needs them: float64, (nints, ngroups, npix)."""

    data: np.ndarray
    groupdq: np.ndarray
    pixeldq: np.ndarray
    rnoise: np.ndarray
    gain: np.ndarray
    dark: np.ndarray
    zeroframe: np.ndarray | None

    @property
    def npix(self) -> int:
        return self.data.shape[-1]

    @classmethod
    def rows(cls, data, groupdq, pixeldq, rnoise, gain, dark, zeroframe, rows: slice):
        nints, ngroups, _, nx = data.shape
        npix = (rows.stop - rows.start) * nx
        # one conversion pass each into fresh contiguous arrays (the fit modifies its data)
        block = np.empty((nints, ngroups, npix))
        block.reshape(nints, ngroups, -1, nx)[...] = _as_float32(data[:, :, rows])
        block_gdq = np.empty((nints, ngroups, npix), np.uint8)
        block_gdq.reshape(nints, ngroups, -1, nx)[...] = groupdq[:, :, rows]
        zf = None if zeroframe is None else _as_float32(zeroframe[:, rows]).reshape(nints, npix)
        return cls(block, block_gdq, np.asarray(pixeldq[rows]).reshape(npix),
                   rnoise[rows].reshape(npix).astype(np.float64),
                   gain[rows].reshape(npix).astype(np.float64),
                   dark[rows].reshape(npix).astype(np.float64),
                   None if zf is None else zf.astype(np.float64))

    @classmethod
    def pixels(cls, data, groupdq, pixeldq, rnoise, gain, dark, zeroframe, ys, xs):
        zf = None if zeroframe is None else _as_float32(zeroframe[:, ys, xs]).astype(np.float64)
        return cls(_as_float32(data[:, :, ys, xs]).astype(np.float64),
                   np.asarray(groupdq[:, :, ys, xs], dtype=np.uint8),
                   np.asarray(pixeldq[ys, xs]), rnoise[ys, xs].astype(np.float64),
                   gain[ys, xs].astype(np.float64), dark[ys, xs].astype(np.float64), zf)


def _as_float32(values: np.ndarray) -> np.ndarray:
    """The data as the C code reads them (float32)."""
    return values if values.dtype == np.float32 else values.astype(np.float32)


def _store(res: RampFitResult, fitted, where: tuple, int_shape: tuple) -> None:
    """Write one fit result (``fit_block`` layout) into the output images at ``where``."""
    exposure, ints, int_dq = fitted
    image_where, image_shape = where[1:], int_shape[1:]
    for name, values in zip(("slope", "err", "dq", "var_poisson", "var_rnoise"), exposure):
        getattr(res, name)[image_where] = values.reshape(image_shape)
    for name, key in (("int_slope", "slope"), ("int_err", "err"),
                      ("int_var_poisson", "var_p"), ("int_var_rnoise", "var_r")):
        getattr(res, name)[where] = ints[key].reshape(int_shape)
    res.int_dq[where] = int_dq.reshape(int_shape)


def _exposure_times(meta) -> tuple[int, float, float]:
    try:
        nframes = int(meta["NFRAMES"])
        tgroup = float(meta["TGROUP"])
        tframe = float(meta["TFRAME"])
    except (KeyError, TypeError, ValueError) as exc:
        raise WebbcalError(meta.get("FILENAME"),
                           f"ramp_fit needs NFRAMES, TGROUP and TFRAME: {exc}") from None
    if nframes < 1 or tgroup <= 0 or tframe <= 0:
        raise WebbcalError(meta.get("FILENAME"),
                           f"invalid readout timing NFRAMES={nframes} TGROUP={tgroup} "
                           f"TFRAME={tframe}")
    return nframes, tgroup, tframe


def apply(ramp: Ramp, refs: dict, params: dict) -> tuple[SlopeImage, SlopeImage] | None:
    """Fit ``ramp``: (rate, rateints), or None when every pixel saturates in group 0."""
    if str(params.get("algorithm", "OLS_C")).upper() != "OLS_C":
        raise WebbcalError("ramp_fit.algorithm", "only the OLS_C algorithm is implemented")
    if params.get("save_opt"):
        raise WebbcalError("ramp_fit.save_opt", "the optional fit product is not implemented")
    nframes, tgroup, tframe = _exposure_times(ramp.meta)
    shape = ramp.data.shape[-2:]
    gain = required_plane(refs, "gain", step="ramp_fit", shape=shape)
    read_noise = row_noise.effective_read_noise(required_plane(refs, "readnoise", step="ramp_fit", shape=shape),
                                                ramp.meta, nframes,
                                                bool(params.get("use_row_noise", True)))
    groupdq = ramp.groupdq
    if params.get("firstgroup") is not None or params.get("lastgroup") is not None:
        groupdq = groupdq.copy()
        mask_group_range(groupdq, params.get("firstgroup"), params.get("lastgroup"))
    result = fit_ramps(ramp.data, groupdq, ramp.pixeldq, read_noise, gain, nframes=nframes,
                       tgroup=tgroup, tframe=tframe, dark_current=ramp.avdrkcur,
                       zeroframe=ramp.zeroframe,
                       suppress_one_group=bool(params.get("suppress_one_group", True)),
                       groupgap=int(ramp.meta.get("GROUPGAP", 0) or 0),
                       exact_variance=bool(params.get("exact_variance", True)))
    if result is None:
        log.warning("every pixel is saturated in group 0: no rate product")
        return None
    meta = ramp.meta.copy()
    gainfact = refs["gain"].meta.get("GAINFACT") if hasattr(refs["gain"], "meta") else None
    if gainfact is not None:
        meta["GAINFACT"] = gainfact
    meta["BUNIT"] = "DN/s"
    rate = SlopeImage(result.slope, result.err, result.dq, result.var_poisson,
                      result.var_rnoise, meta)
    rateints = SlopeImage(result.int_slope, result.int_err, result.int_dq,
                          result.int_var_poisson, result.int_var_rnoise, meta.copy())
    return rate, rateints
