"""Blot: the median mosaic interpolated back onto an exposure's pixels, and the outlier test.

``blot_image`` evaluates the median at the output-grid position of every input pixel
centre (the same pixel map drizzle uses) by bilinear interpolation; input pixels mapping
off the grid or next to NaN are NaN (``drizzle.blot_image`` with linear interpolation).

``flag_outliers`` is the derivative-based test of ``stcal.outlier_detection.utils.
flag_resampled_crs`` (spec §3.5 step 4).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def blot_image(median: np.ndarray, pixmap: np.ndarray) -> np.ndarray:
    """``median`` at the grid position of each exposure pixel (``pixmap``: exposure → grid)."""
    x, y = pixmap[..., 0], pixmap[..., 1]
    bad = ~(np.isfinite(x) & np.isfinite(y))
    x = np.where(bad, -1.0, x)
    y = np.where(bad, -1.0, y)
    blotted = ndimage.map_coordinates(median, [y, x], order=1, mode="constant", cval=np.nan,
                                      prefilter=False, output=np.float32)
    blotted[bad] = np.nan
    return blotted


def abs_derivative(blot: np.ndarray) -> np.ndarray:
    """Largest |blot(p) − blot(q)| over the 4 direct neighbours q (0 beyond the edges)."""
    padded = np.pad(blot.astype(np.float64), 1, constant_values=0.0)
    centre = padded[1:-1, 1:-1]
    out = np.zeros(blot.shape, np.float64)
    for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        neighbour = padded[1 + dy:padded.shape[0] - 1 + dy, 1 + dx:padded.shape[1] - 1 + dx]
        out = np.maximum(out, np.abs(centre - neighbour))  # NaN propagates, as in stcal
    return out


def flag_outliers(data, blot, err, backg: float, snr=(5.0, 4.0), scale=(1.2, 0.7)) -> np.ndarray:
    """Boolean outlier mask: a strict test, grown by one pixel, confirmed by a looser one."""
    deriv = abs_derivative(blot)
    diff = np.abs(data.astype(np.float64) - blot - backg)
    err = np.nan_to_num(err.astype(np.float64), nan=0.0)
    with np.errstate(invalid="ignore"):
        strict = diff > scale[0] * deriv + snr[0] * err
        loose = diff > scale[1] * deriv + snr[1] * err
    grown = ndimage.binary_dilation(strict, structure=np.ones((3, 3), bool))
    return grown & loose
