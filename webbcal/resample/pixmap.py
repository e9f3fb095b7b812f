"""Input pixel → output pixel maps through two gwcs objects (``drizzle.utils.calc_pixmap``).

Every input pixel centre goes through the input WCS (its bounding box enforced: outside
→ NaN) and the output WCS inverse (no bounding box, so pixels falling off the output grid
keep their coordinates and drizzle drops them). Rows are processed in blocks so the
temporaries stay small for full-frame inputs. With ``stepsize > 1`` the map is evaluated
on a sparse grid and interpolated by a spline of ``order`` 1 or 3 (the official
``pixmap_stepsize`` / ``pixmap_order``).
"""

from __future__ import annotations

import numpy as np

ROWS_PER_BLOCK = 64  # ~1 MB per temporary for a 2048-pixel row


def _input_box(wcs, shape):
    ny, nx = shape
    bbox = wcs.bounding_box
    if bbox is None:
        return (-0.5, nx - 0.5), (-0.5, ny - 0.5)
    return bbox.bounding_box(order="F")


def map_points(in_wcs, out_wcs, x, y, box) -> tuple[np.ndarray, np.ndarray]:
    (x0, x1), (y0, y1) = box
    inside = (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)
    ra, dec = in_wcs(x, y, with_bounding_box=False)
    ox, oy = out_wcs.backward_transform(ra, dec)
    ox, oy = np.asarray(ox, float), np.asarray(oy, float)
    ox[~inside] = np.nan
    oy[~inside] = np.nan
    return ox, oy


def pixel_map(in_wcs, out_wcs, shape, stepsize: float = 1.0, order: int = 1) -> np.ndarray:
    """(ny, nx, 2) float64: output (x, y) of every input pixel centre."""
    ny, nx = shape
    box = _input_box(in_wcs, shape)
    pixmap = np.empty((ny, nx, 2), dtype=np.float64)
    if stepsize is not None and stepsize > 1:
        return _sparse_pixel_map(in_wcs, out_wcs, shape, box, stepsize, order, pixmap)
    xs = np.arange(nx, dtype=float)
    for r0 in range(0, ny, ROWS_PER_BLOCK):
        r1 = min(ny, r0 + ROWS_PER_BLOCK)
        x, y = np.meshgrid(xs, np.arange(r0, r1, dtype=float))
        pixmap[r0:r1, :, 0], pixmap[r0:r1, :, 1] = map_points(in_wcs, out_wcs, x, y, box)
    return pixmap


def _sparse_pixel_map(in_wcs, out_wcs, shape, box, stepsize, order, pixmap):
    from scipy.interpolate import RectBivariateSpline

    if order not in (1, 3):
        raise ValueError(f"pixmap_order must be 1 or 3, got {order}")
    ny, nx = shape
    step = float(stepsize)
    gx = np.unique(np.append(np.arange(0, nx - 1, step), nx - 1))
    gy = np.unique(np.append(np.arange(0, ny - 1, step), ny - 1))
    order = min(order, len(gx) - 1, len(gy) - 1)
    x, y = np.meshgrid(gx, gy)
    (x0, x1), (y0, y1) = box
    ra, dec = in_wcs(x, y, with_bounding_box=False)
    ox, oy = out_wcs.backward_transform(ra, dec)
    fx = RectBivariateSpline(gy, gx, np.asarray(ox), kx=order, ky=order)
    fy = RectBivariateSpline(gy, gx, np.asarray(oy), kx=order, ky=order)
    rows, cols = np.arange(ny, dtype=float), np.arange(nx, dtype=float)
    # by row blocks: the spline's small outputs reuse memory instead of faulting in 2x32 MB
    for r0 in range(0, ny, ROWS_PER_BLOCK):
        block = slice(r0, r0 + ROWS_PER_BLOCK)
        pixmap[block, :, 0] = fx(rows[block], cols)
        pixmap[block, :, 1] = fy(rows[block], cols)
    # outside the input bounding box: whole columns and whole rows
    pixmap[:, (cols < x0) | (cols > x1)] = np.nan
    pixmap[(rows < y0) | (rows > y1)] = np.nan
    return pixmap
