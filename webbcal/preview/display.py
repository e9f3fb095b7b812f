"""Pure numpy helpers for showing an image: downsampling and display limits."""

from __future__ import annotations

import numpy as np

# A preview is ~600 px wide: more pixels than this per side only cost drawing time.
MAX_DISPLAY_PIXELS = 800
# Percentiles of the finite pixels mapped to the ends of the colour scale.
LOW_PERCENTILE, HIGH_PERCENTILE = 0.5, 99.5
# Pixels used to estimate the limits: a regular subsample is enough and keeps it fast.
LIMIT_SAMPLE = 200_000


def block_factor(shape: tuple[int, ...], max_pixels: int = MAX_DISPLAY_PIXELS) -> int:
    """The integer binning that brings the longer side of ``shape`` to <= ``max_pixels``."""
    return max(1, int(np.ceil(max(shape) / max_pixels)))


def block_mean(data: np.ndarray, factor: int) -> np.ndarray:
    """Mean of each ``factor`` x ``factor`` block, ignoring NaNs (NaN where all are NaN).

    The image is padded with NaN to a multiple of ``factor``, so edge pixels are kept.
    """
    data = np.asarray(data, dtype=np.float32)
    if factor == 1:
        return data
    ny, nx = data.shape
    py, px = -ny % factor, -nx % factor
    padded = np.pad(data, ((0, py), (0, px)), constant_values=np.nan)
    blocks = padded.reshape(padded.shape[0] // factor, factor, padded.shape[1] // factor, factor)
    finite = np.isfinite(blocks)
    count = finite.sum(axis=(1, 3))
    total = np.where(finite, blocks, 0.0).sum(axis=(1, 3), dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.nan).astype(np.float32)


def display_limits(data: np.ndarray, low: float = LOW_PERCENTILE, high: float = HIGH_PERCENTILE) -> tuple[float, float]:
    """(vmin, vmax): percentiles of the finite pixels; (0, 1) when there are none.

    A flat image gets a unit-wide range around its value, so a colour scale can be drawn.
    """
    values = np.asarray(data).ravel()
    step = max(1, values.size // LIMIT_SAMPLE)
    values = values[::step]
    values = values[np.isfinite(values)]
    if values.size == 0:
        return 0.0, 1.0
    vmin, vmax = (float(v) for v in np.percentile(values, [low, high]))
    if not vmax > vmin:
        vmin, vmax = vmin - 0.5, vmin + 0.5
    return vmin, vmax



# asinh softening as a fraction of the display range: the faint end stays linear, the
# bright end is compressed logarithmically (noise and bright sources both visible).
ASINH_SOFTENING = 0.1


def asinh_stretch(values, vmin: float, vmax: float, a: float = ASINH_SOFTENING):
    """Lupton-style asinh stretch of [vmin, vmax] onto [0, 1] (astropy's AsinhStretch(a)
    after a linear interval): asinh(t / a) / asinh(1 / a), t = (v - vmin) / (vmax - vmin)."""
    t = (np.asarray(values, dtype=float) - vmin) / (vmax - vmin)
    return np.arcsinh(t / a) / np.arcsinh(1.0 / a)


def inverse_asinh_stretch(stretched, vmin: float, vmax: float, a: float = ASINH_SOFTENING):
    """The data value whose stretch is ``stretched`` (for the colour bar's ticks)."""
    t = a * np.sinh(np.asarray(stretched, dtype=float) * np.arcsinh(1.0 / a))
    return vmin + t * (vmax - vmin)
