"""``Resampler``: one output-size accumulator fed one input image at a time.

Per input (``stcal.resample.Resample.add_model``, spec §3.4 "Per input model"):

1. pixel map input → output (``pixmap.pixel_map``);
2. weight map: good pixels (no DO_NOT_USE / NON_SCIENCE) × 1/VAR_RNOISE (``ivm``, non-finite
   → 0, ones without VAR_RNOISE) or × TMEASURE/EFFEXPTM (``exptime``);
3. ``drizzle.resample.Drizzle.add_image`` of SCI (minus BKGLEVEL when it was not
   subtracted) into SCI, WHT and CON;
4. for each VAR_* plane: drizzle sqrt(var) alone, square it (v); w = 1/v_rnoise (ivm) or the
   exposure time; accumulate ``S += v·w²`` and ``W += w``; at the end
   ``VAR = S / ratio² / W²`` and ``ERR = sqrt(nansum(VAR_*))``.

Memory is the output arrays (SCI, WHT, CON, 2 per variance, 2 scratch) plus the one input
being added; inputs can be added from files one after the other (``add_file``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from webbcal import dqflags
from webbcal.errors import WebbcalError
from webbcal.resample import square
from webbcal.resample.grid import OutputGrid
from webbcal.resample.pixmap import pixel_map

log = logging.getLogger("webbcal.resample")

KERNELS = ("square", "gaussian", "point", "turbo", "lanczos2", "lanczos3")
# stcal order: read noise first (it sets the ivm weights); ERR sums them in this order
VARIANCES = ("var_rnoise", "var_flat", "var_poisson")
BAD_BITS = np.uint32(dqflags.DO_NOT_USE | dqflags.NON_SCIENCE)  # good_bits "~DO_NOT_USE+NON_SCIENCE"


@dataclass
class ResampleInput:
    """What resampling needs from one calibrated exposure."""

    data: np.ndarray
    dq: np.ndarray
    wcs: object
    meta: object                      # header-like: EFFEXPTM, TMEASURE, BKGLEVEL, ...
    var_rnoise: np.ndarray | None = None
    var_poisson: np.ndarray | None = None
    var_flat: np.ndarray | None = None
    name: str = ""

    @classmethod
    def from_image(cls, image) -> "ResampleInput":
        if image.wcs is None:
            raise WebbcalError(image.path, "has no WCS; run assign_wcs before resample")
        return cls(data=image.data, dq=image.dq, wcs=image.wcs, meta=image.meta,
                   var_rnoise=image.var_rnoise, var_poisson=image.var_poisson,
                   var_flat=image.var_flat, name=str(image.path or ""))


@dataclass
class ResampleResult:
    data: np.ndarray
    wht: np.ndarray
    con: np.ndarray | None
    err: np.ndarray | None
    dq: np.ndarray | None = None
    variances: dict[str, np.ndarray] = field(default_factory=dict)
    ninputs: int = 0
    group_ids: list[str] = field(default_factory=list)
    times: dict = field(default_factory=dict)


def exposure_time(meta) -> float:
    """Measurement time for exptime weights: TMEASURE if present, else EFFEXPTM."""
    for key in ("TMEASURE", "EFFEXPTM", "XPOSURE", "EXPTIME"):
        value = meta.get(key)
        if value is not None and float(value) > 0:
            return float(value)
    return 1.0


def group_id(meta) -> str:
    """jw{PROGRAM}{OBSERVTN}{VISIT}_{VISITGRP}{SEQ_ID}{ACT_ID}_{EXPOSURE}: one per pointing."""
    keys = ("PROGRAM", "OBSERVTN", "VISIT", "VISITGRP", "SEQ_ID", "ACT_ID", "EXPOSURE")
    v = [str(meta.get(k, "")) for k in keys]
    return f"jw{v[0]}{v[1]}{v[2]}_{v[3]}{v[4]}{v[5]}_{v[6]}"


def weight_map(item: ResampleInput, weight_type: str | None) -> np.ndarray:
    bad = (np.asarray(item.dq) & BAD_BITS) != 0
    if weight_type == "ivm":
        if item.var_rnoise is None or item.var_rnoise.shape != item.data.shape:
            log.warning("%s: no VAR_RNOISE, ivm weights set to 1", item.name)
            return (~bad).astype(np.float32)
        # 1/VAR_RNOISE (float32), 0 where not finite or flagged: stcal's ``inverse * good``
        # up to the sign of zero weights, which drizzle skips either way
        weights = np.empty(item.data.shape, np.float32)
        with np.errstate(divide="ignore", invalid="ignore"):
            np.divide(np.float32(1.0), item.var_rnoise, out=weights, dtype=np.float32)
        weights[bad | ~np.isfinite(weights)] = 0.0
        return weights
    good = (~bad).astype(np.float32)
    if weight_type == "exptime":
        return (np.float32(exposure_time(item.meta)) * good).astype(np.float32)
    if weight_type is None:
        return good
    raise WebbcalError("resample.weight_type", f"unknown weight type {weight_type!r} (ivm, exptime)")


def input_range(wcs, shape) -> tuple[int, int, int, int]:
    """(xmin, xmax, ymin, ymax) input pixels inside the WCS bounding box (``resample_range``)."""
    ny, nx = shape
    if wcs.bounding_box is None:
        return 0, nx - 1, 0, ny - 1
    (x1, x2), (y1, y2) = wcs.bounding_box.bounding_box(order="F")
    xmin, ymin = max(0, int(x1 + 0.5)), max(0, int(y1 + 0.5))
    return xmin, max(xmin, min(nx - 1, int(x2 + 0.5))), ymin, max(ymin, min(ny - 1, int(y2 + 0.5)))


class Resampler:
    """Drizzle inputs one by one onto ``grid``; ``finalize`` returns the arrays."""

    def __init__(self, grid: OutputGrid, *, kernel: str = "square", pixfrac: float = 1.0,
                 fillval="NAN", weight_type: str | None = "ivm", pixel_scale_ratio: float = 1.0,
                 enable_ctx: bool = True, enable_var: bool = True, enable_err: bool = True,
                 n_inputs: int | None = None, pixmap_stepsize: float = 1.0, pixmap_order: int = 1,
                 propagate_dq: bool = False):
        from drizzle.resample import Drizzle

        if kernel not in KERNELS:
            raise WebbcalError("resample.kernel", f"unknown kernel {kernel!r} (known: {', '.join(KERNELS)})")
        if not 0.0 < pixfrac <= 1.0:
            raise WebbcalError("resample.pixfrac", f"must be in (0, 1], got {pixfrac}")
        self.grid = grid
        self.kernel, self.pixfrac, self.weight_type = kernel, float(pixfrac), weight_type
        self.pixel_scale_ratio = float(pixel_scale_ratio)
        self.enable_var = enable_var or enable_err
        self.enable_err = enable_err
        self.pixmap_stepsize, self.pixmap_order = pixmap_stepsize, pixmap_order
        self.propagate_dq = propagate_dq
        shape = grid.shape
        self._driz = Drizzle(kernel=kernel, fillval=fillval, out_shape=shape, disable_ctx=not enable_ctx,
                             max_ctx_id=None if n_inputs is None else max(n_inputs - 1, 0))
        # The square kernel (the default) goes through webbcal's one-pass multi-plane drizzle
        # when it was built: SCI and the three sqrt(VAR_*) planes share each overlap's
        # geometry (0.40 s instead of 4 x 0.33 s per full frame), bit-identical to drizzle.
        self._one_pass = square.handles(kernel, pixfrac) and not propagate_dq
        self._fill = _effective_fill(fillval)
        # the one-pass path writes into the Drizzle's arrays; only CON may need to grow
        self._ctx = self._driz.out_ctx
        self._var_sum = {}
        self._var_wt = {}
        # One input (Image2): each variance is final as soon as it is drizzled, so no running
        # sums are kept (same float32 arithmetic as the sums would do).
        self._single = n_inputs == 1
        self._var_final: dict[str, np.ndarray] = {}
        if self.enable_var:
            for name in VARIANCES if not self._single else ():
                self._var_sum[name] = np.full(shape, np.nan, np.float32)
                self._var_wt[name] = np.zeros(shape, np.float32)
            self._scratch_img = np.zeros(shape, np.float32)
            self._scratch_wht = np.zeros(shape, np.float32)
            # one-pass drizzle: one fresh output per variance plane (the first is _scratch_img)
            self._scratch_planes = [self._scratch_img] + (
                [np.zeros(shape, np.float32) for _ in VARIANCES[1:]] if self._one_pass else [])
        self.ninputs = 0
        self.group_ids: list[str] = []
        self.times = {"EFFEXPTM": 0.0, "XPOSURE": 0.0, "DURATION": 0.0, "TELAPSE": 0.0,
                      "TMEASURE": 0.0, "EXPSTART": None, "EXPEND": None}
        self._has_tmeasure = True

    # ----------------------------------------------------------------- adding inputs
    def add(self, item: ResampleInput, pixmap: np.ndarray | None = None) -> None:
        """Drizzle ``item``; ``pixmap`` is its input → grid pixel map if already computed
        (with this resampler's pixmap_stepsize and pixmap_order)."""
        if self._single and self.ninputs:
            raise WebbcalError(item.name or None, "this resampler was set up for one input")
        data = np.asarray(item.data, dtype=np.float32)
        if data.ndim != 2:
            raise WebbcalError(item.name or None, f"resample needs 2-D images, got {data.shape}")
        if pixmap is None:
            pixmap = pixel_map(item.wcs, self.grid.wcs, data.shape, self.pixmap_stepsize,
                               self.pixmap_order)
        elif pixmap.shape != (*data.shape, 2):
            raise WebbcalError(item.name or None, f"pixel map {pixmap.shape} does not fit {data.shape}")
        weights = weight_map(item, self.weight_type)
        level = item.meta.get("BKGLEVEL")
        if level is not None and not _true(item.meta.get("BKGSUB", False)):
            data = data - np.float32(level)
        xmin, xmax, ymin, ymax = input_range(item.wcs, data.shape)
        common = dict(exptime=exposure_time(item.meta), pixmap=pixmap,
                      pixel_scale_ratio=self.pixel_scale_ratio, iscale=1.0, weight_map=weights,
                      wht_scale=1.0, pixfrac=self.pixfrac, in_units="cps",
                      xmin=xmin, xmax=xmax, ymin=ymin, ymax=ymax)
        if self._one_pass:
            self._add_one_pass(data, item, common)
        elif self.propagate_dq:  # OR of the DQ of every contributing input pixel
            self._driz.add_image(data, dq=np.asarray(item.dq, dtype=np.uint32), **common)
        else:
            self._driz.add_image(data, **common)
        if self.enable_var and not self._one_pass:
            self._add_variances(item, common)
        self.ninputs += 1
        gid = group_id(item.meta)
        if gid not in self.group_ids:
            self.group_ids.append(gid)
            self._update_times(item.meta)

    def add_file(self, path) -> None:
        """Read one cal file (memory-mapped), add it, and let it go."""
        from webbcal.io.product import read_product
        from webbcal.steps.image_model import CalImage

        image = CalImage.from_product(read_product(path, expect="ImageModel"))
        self.add(ResampleInput.from_image(image))

    # ----------------------------------------------------------------- one-pass drizzle
    def _context_plane(self):
        """(context plane, bit) of the input being added; a plane is added every 32 inputs."""
        if self._ctx is None:
            return None, 1
        plane = self.ninputs // 32
        if plane >= self._ctx.shape[0]:
            extra = np.zeros((plane + 1 - self._ctx.shape[0], *self.grid.shape), np.int32)
            self._ctx = np.concatenate([self._ctx, extra])
        return self._ctx[plane], 1 << (self.ninputs % 32)

    def _add_one_pass(self, data, item: ResampleInput, common: dict) -> None:
        """SCI into the mosaic and each sqrt(VAR_*) into a fresh plane, in one pass."""
        planes = self._variance_planes(item) if self.enable_var else []
        extra_data = [getattr(item, name) for name in planes]  # square-rooted by the kernel
        extra_out = self._scratch_planes[:len(planes)] if planes else []
        for plane in extra_out:
            plane.fill(0.0)
        if planes:
            self._scratch_wht.fill(0.0)
        context, bit = self._context_plane()
        square.add_image(data, out_img=self._driz.out_img, out_wht=self._driz.out_wht,
                         out_ctx=context, ctx_bit=bit, extra_data=extra_data, extra_out=extra_out,
                         extra_wht=self._scratch_wht if planes else None, fillval=self._fill,
                         extra_fillval="NaN", extra_sqrt=True, **common)
        weight = self._exptime_weight(item)
        for name, resampled in zip(planes, extra_out):
            var = np.square(resampled, out=resampled)  # the scratch is refilled next input
            weight = self._fold_variance(name, var, weight)

    def _variance_planes(self, item: ResampleInput) -> list[str]:
        return [n for n in VARIANCES
                if getattr(item, n) is not None and getattr(item, n).shape == item.data.shape]

    def _exptime_weight(self, item: ResampleInput):
        if self.weight_type == "exptime":
            return np.float64(exposure_time(item.meta))  # a scalar (stcal: float64 full array)
        return None

    def _fold_variance(self, name: str, var: np.ndarray, weight):
        """Add one resampled variance to the sums; returns the weights (set by the first)."""
        if weight is None:  # ivm: 1 / resampled VAR_RNOISE (read first), else ones
            weight = np.zeros(self.grid.shape, np.float32)
            if name == "var_rnoise":
                ok = (var > 0) & np.isfinite(var)
                weight[ok] = np.reciprocal(var[ok])
            else:
                weight[:] = 1.0
        self._accumulate(name, var, weight)
        return weight

    def _add_variances(self, item: ResampleInput, common: dict) -> None:
        """Drizzle sqrt(VAR_*) one plane at a time and fold it into the running sums.

        dtypes follow ``stcal.resample.Resample.resample_variance_arrays`` (float32 resampled
        variance, weights 1/VAR_RNOISE in float32 promoted to float64 in the sums) so the
        results are bit-identical; the sums run over row blocks to keep temporaries small.
        """
        weight = self._exptime_weight(item)
        for name in self._variance_planes(item):
            var = self._resample_sqrt(getattr(item, name), common)
            weight = self._fold_variance(name, var, weight)

    def _resample_sqrt(self, variance, common: dict) -> np.ndarray:
        """(drizzled sqrt(variance))², float32, in a fresh array (scratch reused for drizzle)."""
        from drizzle.resample import Drizzle

        self._scratch_img.fill(0.0)
        self._scratch_wht.fill(0.0)
        driz = Drizzle(kernel=self.kernel, fillval=np.nan, out_img=self._scratch_img,
                       out_wht=self._scratch_wht, disable_ctx=True)
        with np.errstate(invalid="ignore"):
            driz.add_image(np.sqrt(variance), **common)
        return np.square(driz.out_img)  # a fresh array: later folded in place

    def _accumulate(self, name: str, var: np.ndarray, weight) -> None:
        """``S += v·w²`` (NaN start: first value replaces it), ``W += w`` where v, w valid."""
        if self._single:
            self._var_final[name] = self._single_variance(var, weight)
            return
        total, wt = self._var_sum[name], self._var_wt[name]
        # float64 sums stored back as float32, masked copies rather than boolean indexing
        # (3x faster, same bits)
        for r0 in range(0, var.shape[0], 128):
            rows = slice(r0, r0 + 128)
            v = var[rows]
            w = np.broadcast_to(weight, var.shape)[rows].astype(np.float64)
            ok = (v >= 0) & np.isfinite(v) & (w > 0)
            block_total, block_wt = total[rows], wt[rows]
            current = block_total.astype(np.float64)
            summed = v * w * w
            np.add(current, summed, out=summed, where=~np.isnan(current))
            np.copyto(block_total, summed, where=ok, casting="same_kind")
            np.copyto(block_wt, block_wt + w, where=ok, casting="same_kind")

    def _single_variance(self, var: np.ndarray, weight) -> np.ndarray:
        """``float32(v·w²) / ratio² / float32(w)²`` where valid, NaN elsewhere; computed in
        place (``var`` is a fresh array this resampler owns) to keep Image2's peak low."""
        scaling = 1.0 / self.pixel_scale_ratio**2
        for r0 in range(0, var.shape[0], 256):
            rows = slice(r0, r0 + 256)
            v = var[rows]
            w = (np.broadcast_to(weight, var.shape)[rows]).astype(np.float64)
            ok = (v >= 0) & np.isfinite(v) & (w > 0)
            total = (v[ok] * w[ok] * w[ok]).astype(np.float32)
            wt = w[ok].astype(np.float32)
            result = np.full(v.shape, np.nan, np.float32)
            result[ok] = total * scaling / wt / wt
            v[...] = result
        return var

    def _update_times(self, meta) -> None:
        t = self.times
        for key in ("EFFEXPTM", "XPOSURE", "DURATION", "TELAPSE"):
            t[key] += float(meta.get(key, 0.0) or 0.0)
        if meta.get("TMEASURE") is None:
            self._has_tmeasure = False
        else:
            t["TMEASURE"] += float(meta["TMEASURE"])
        for key, pick in (("EXPSTART", min), ("EXPEND", max)):
            if meta.get(key) is not None:
                t[key] = float(meta[key]) if t[key] is None else pick(t[key], float(meta[key]))

    # ----------------------------------------------------------------- results
    def finalize(self) -> ResampleResult:
        if self.ninputs == 0:
            raise WebbcalError("resample", "no input image was resampled")
        variances = {}
        err = None
        if self.enable_var:
            scaling = 1.0 / self.pixel_scale_ratio**2
            with np.errstate(divide="ignore", invalid="ignore"):
                for name in VARIANCES:
                    if self._single:
                        variances[name] = self._var_final.pop(name, None)
                        if variances[name] is None:  # the input had no such plane
                            variances[name] = np.full(self.grid.shape, np.nan, np.float32)
                        continue
                    wt = self._var_wt.pop(name)
                    variances[name] = (self._var_sum.pop(name) * scaling / wt / wt).astype(np.float32)
            if self.enable_err:
                # nansum over the planes in order, NaN where all are NaN (stcal "from_var")
                err = np.zeros(self.grid.shape, np.float32)
                all_nan = np.ones(self.grid.shape, bool)
                for name in VARIANCES:
                    plane = variances[name]
                    nan = np.isnan(plane)
                    all_nan &= nan
                    err += np.where(nan, np.float32(0), plane)
                np.sqrt(err, out=err)
                err[all_nan] = np.nan
            self._scratch_img = self._scratch_wht = self._scratch_planes = None
        times = dict(self.times)
        if not self._has_tmeasure:
            times.pop("TMEASURE")
        con = self._ctx if self._one_pass else self._driz.out_ctx
        return ResampleResult(data=self._driz.out_img, wht=self._driz.out_wht, con=con, err=err,
                              dq=self._driz.out_dq if self.propagate_dq else None,
                              variances=variances, ninputs=self.ninputs,
                              group_ids=list(self.group_ids), times=times)


def _effective_fill(fillval):
    """The fill drizzle applies when it allocates the output: INDEF/None mean NaN there."""
    if fillval is None or (isinstance(fillval, str) and fillval.strip().upper() in ("", "INDEF")):
        return "NaN"
    return fillval


def _true(value) -> bool:
    return value is True or str(value).strip().upper() in ("T", "TRUE", "1")
