"""Square-kernel drizzle of several planes in one pass (C extension ``_square``).

``add_image`` does what ``drizzle.resample.Drizzle(kernel="square").add_image`` does to
``data`` and, in the same pass, what one fresh ``Drizzle`` per extra plane would do (all
extra planes share one counts array, ``extra_wht``): each overlap's geometry is computed
once. Every output is bit-identical to drizzle's.

The input pixels visited are chosen by a copy of drizzle's image scanner, so inputs
reaching beyond the output frame (or missing it) give drizzle's result as well; only
``pixfrac`` <= 0.001 (drizzle's point kernel) raises ``Unsupported``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

try:
    from webbcal.resample import _square
except ImportError:  # built without a compiler
    _square = None


class Unsupported(ValueError):
    """These inputs need drizzle itself (the extension is missing, or the point kernel)."""


def available() -> bool:
    """Whether the C extension was built."""
    return _square is not None


def _input_limits(shape, xmin, xmax, ymin, ymax) -> tuple[int, int, int, int]:
    """``Drizzle.add_image``'s defaults and clipping of the input pixel range."""
    ny, nx = shape
    xmin = 0 if xmin is None or xmin < 0 else int(xmin)
    ymin = 0 if ymin is None or ymin < 0 else int(ymin)
    xmax = nx - 1 if xmax is None or xmax > nx - 1 else int(xmax)
    ymax = ny - 1 if ymax is None or ymax > ny - 1 else int(ymax)
    return xmin, xmax, ymin, ymax


# At or below this pixfrac drizzle switches the square kernel to its point kernel.
POINT_KERNEL_PIXFRAC = 0.001


def handles(kernel: str, pixfrac: float) -> bool:
    """Whether ``add_image`` gives drizzle's result for this kernel and pixfrac."""
    return _square is not None and kernel == "square" and pixfrac > POINT_KERNEL_PIXFRAC


def _fill_value(fillval) -> float | None:
    """drizzle's fill strings: None / "INDEF" leave empty pixels alone, else a number."""
    if fillval is None:
        return None
    if isinstance(fillval, str):
        text = fillval.strip()
        if text.upper() in ("", "INDEF"):
            return None
        return float(np.float32(float(text)))
    return float(np.float32(fillval))


def _as_int32(bit: int) -> int:
    """The bit value as the signed 32-bit integer the context plane holds (bit 31 < 0)."""
    bit = int(bit) & 0xFFFFFFFF
    return bit - (1 << 32) if bit >= 1 << 31 else bit


def _float32(array, name: str) -> np.ndarray:
    array = np.ascontiguousarray(array, dtype=np.float32)
    if array.ndim != 2:
        raise ValueError(f"'{name}' must be 2-D, got shape {array.shape}")
    return array


def add_image(data, *, exptime: float, pixmap, out_img: np.ndarray, out_wht: np.ndarray,
              out_ctx: np.ndarray | None = None, ctx_bit: int = 1,
              extra_data: Sequence = (), extra_out: Sequence[np.ndarray] = (),
              extra_wht: np.ndarray | None = None,
              pixel_scale_ratio: float = 1.0, iscale: float = 1.0, weight_map=None,
              wht_scale: float = 1.0, pixfrac: float = 1.0, in_units: str = "cps",
              xmin=None, xmax=None, ymin=None, ymax=None,
              fillval="NaN", extra_fillval="NaN", extra_sqrt: bool = False) -> tuple[int, int]:
    """Drizzle ``data`` into ``out_img``/``out_wht``/``out_ctx`` and each ``extra_data[k]``
    into ``extra_out[k]`` (counts in ``extra_wht``), all in place; returns (nmiss, nskip).

    Keywords as ``Drizzle.add_image``; ``out_ctx`` is the 2-D int32 context plane and
    ``ctx_bit`` the bit value OR-ed into it (``1 << (input index % 32)``). ``fillval`` /
    ``extra_fillval`` are the Drizzle ``fillval`` of each group (None or "INDEF": no fill),
    written where that group's weight is 0 after the add. ``extra_sqrt``: the extra planes
    are variances and their square roots are drizzled (as if ``np.sqrt`` had been applied
    to them first, without the copies). ``pixel_scale_ratio`` does not
    affect the square kernel (it is checked only). Output arrays must be C-contiguous
    float32 (int32 for the context) and are never copied. Raises ``Unsupported`` when
    ``pixfrac`` <= 0.001 (drizzle's point kernel); ValueError, as drizzle, when the pixel
    map has too few valid entries. An input missing the output entirely returns (0, 0).
    """
    if _square is None:
        raise Unsupported("webbcal.resample._square was not built")
    if exptime <= 0.0:
        raise ValueError("'exptime' *must* be a strictly positive number.")
    if not (pixel_scale_ratio > 0 and np.isfinite(pixel_scale_ratio)):
        raise ValueError("'pixel_scale_ratio' must be positive and finite.")
    if in_units not in ("cps", "counts"):
        raise ValueError(f"in_units must be 'cps' or 'counts', got {in_units!r}")
    data = _float32(data, "data")
    pixmap = np.ascontiguousarray(pixmap, dtype=np.float64)
    if pixmap.shape != data.shape + (2,):
        raise ValueError("'pixmap' shape is not consistent with 'data' shape.")
    weights = None
    if weight_map is not None:
        weights = _float32(weight_map, "weight_map")
        if weights.shape != data.shape:
            raise ValueError("'weight_map' shape is not consistent with 'data' shape.")
    extra_data = [_float32(plane, "extra_data") for plane in extra_data]
    if len(extra_data) != len(extra_out):
        raise ValueError("extra_data and extra_out must have the same length")
    if extra_data and extra_wht is None:
        raise ValueError("extra_wht is required with extra planes")
    # tdriz takes iscale, exptime, wht_scale as C floats (pixfrac as a double); counts
    # are divided by the exposure time
    scale = np.float32(iscale)
    if in_units != "cps":
        scale = np.float32(scale / np.float32(exptime))
    limits = _input_limits(data.shape, xmin, xmax, ymin, ymax)
    try:
        nmiss, nskip = _square.drizzle(
            data, weights, pixmap, out_img, out_wht, out_ctx, _as_int32(ctx_bit),
            extra_data, list(extra_out), extra_wht, *limits, float(pixfrac),
            float(scale), float(np.float32(wht_scale)),
            fill=_fill_value(fillval), extra_fill=_fill_value(extra_fillval),
            extra_sqrt=bool(extra_sqrt))
    except _square.Unsupported as exc:
        raise Unsupported(str(exc)) from None
    return nmiss, nskip
