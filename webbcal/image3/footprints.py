"""Where one exposure's footprint falls on another's pixels.

skymatch measures the sky of an image where it overlaps another; that overlap is the set
of pixels of image *i* inside the footprint of image *j*. The footprint is the edge of
*j*'s WCS bounding box, sampled densely (distortion bends the edges slightly) and carried
through *j*'s forward and *i*'s inverse transform into *i*'s pixel frame, then rasterised
row by row (scan-line fill, no per-pixel WCS evaluation).
"""

from __future__ import annotations

import numpy as np


def box_edges(wcs, shape, step: float = 64.0) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates around the edge of the WCS bounding box (closed polygon, CCW)."""
    ny, nx = shape
    if wcs.bounding_box is not None:
        (x0, x1), (y0, y1) = wcs.bounding_box.bounding_box(order="F")
    else:
        (x0, x1), (y0, y1) = (-0.5, nx - 0.5), (-0.5, ny - 0.5)
    nxs = max(2, int(np.ceil((x1 - x0) / step)) + 1)
    nys = max(2, int(np.ceil((y1 - y0) / step)) + 1)
    xs, ys = np.linspace(x0, x1, nxs), np.linspace(y0, y1, nys)
    x = np.concatenate([xs[:-1], np.full(nys - 1, x1), xs[::-1][:-1], np.full(nys - 1, x0)])
    y = np.concatenate([np.full(nxs - 1, y0), ys[:-1], np.full(nxs - 1, y1), ys[::-1][:-1]])
    return x, y


def footprint_in(other_wcs, other_shape, wcs, step: float = 64.0) -> tuple[np.ndarray, np.ndarray]:
    """The footprint of ``other`` as a polygon in the pixel frame of ``wcs``."""
    x, y = box_edges(other_wcs, other_shape, step)
    ra, dec = other_wcs(x, y, with_bounding_box=False)
    px, py = wcs.invert(ra, dec, with_bounding_box=False)
    return np.asarray(px, float), np.asarray(py, float)


def polygon_mask(px: np.ndarray, py: np.ndarray, shape) -> np.ndarray:
    """Boolean (ny, nx): pixel centres inside the polygon (even-odd rule, scan lines)."""
    ny, nx = shape
    mask = np.zeros(shape, dtype=bool)
    finite = np.isfinite(px) & np.isfinite(py)
    if finite.sum() < 3:
        return mask
    px, py = px[finite], py[finite]
    x0, y0 = px, py
    x1, y1 = np.roll(px, -1), np.roll(py, -1)
    rows = np.arange(ny, dtype=float)[:, None]
    # edge e crosses row y when y lies in [min, max) of its end points
    crosses = ((y0 <= rows) & (rows < y1)) | ((y1 <= rows) & (rows < y0))
    with np.errstate(divide="ignore", invalid="ignore"):
        xc = x0 + (rows - y0) * (x1 - x0) / (y1 - y0)
    xc = np.where(crosses, xc, np.inf)
    xc.sort(axis=1)
    counts = crosses.sum(axis=1)
    cols = np.arange(nx)
    if counts.max() <= 2:  # a convex footprint: one run per row, two comparisons per pixel
        start = np.where(counts == 2, np.ceil(xc[:, 0]), 0.0)
        stop = np.where(counts == 2, np.floor(xc[:, 1]) + 1, 0.0)
        np.logical_and(cols >= start[:, None], cols < stop[:, None], out=mask)
        return mask
    # fill between crossing pairs (0,1), (2,3), ...: +1 at start column, -1 past the end
    marks = np.zeros((ny, nx + 1), dtype=np.int32)
    for k in range(0, xc.shape[1] - 1, 2):
        have = counts >= k + 2
        if not have.any():
            break
        r = np.nonzero(have)[0]
        start = np.clip(np.ceil(xc[r, k]), 0, nx).astype(int)
        stop = np.clip(np.floor(xc[r, k + 1]) + 1, 0, nx).astype(int)
        ok = stop > start
        np.add.at(marks, (r[ok], start[ok]), 1)
        np.add.at(marks, (r[ok], stop[ok]), -1)
    mask[:] = np.cumsum(marks, axis=1)[:, :nx] > 0
    return mask


def overlap_mask(image_wcs, image_shape, other_wcs, other_shape, step: float = 64.0) -> np.ndarray:
    """Pixels of the image that lie inside the other exposure's footprint."""
    px, py = footprint_in(other_wcs, other_shape, image_wcs, step)
    return polygon_mask(px, py, image_shape)
