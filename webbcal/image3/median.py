"""Median of the single-drizzled images, computed in row sections from files on disk.

Each single drizzle (one per exposure group, output-grid sized) is written to a raw
float32 file; the median reads the same band of rows from every file at a time, so memory is the
median itself plus one band (at most ``BAND_BYTES``), whatever the number of groups.
"""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path

import numpy as np

BAND_BYTES = 128 * 2**20  # one band of all groups' rows


def store_single(path: Path, data: np.ndarray) -> Path:
    """Write ``data`` as raw C-ordered float32 (no header; the caller knows the shape)."""
    np.ascontiguousarray(data, dtype=np.float32).tofile(path)
    return path


def sectioned_median(paths: list[Path], shape, band_bytes: int | None = None) -> np.ndarray:
    """NaN-ignoring median across the stored images (NaN where every image is NaN)."""
    ny, nx = shape
    band_bytes = BAND_BYTES if band_bytes is None else band_bytes
    rows = max(1, int(band_bytes // max(1, len(paths) * nx * 4)))
    median = np.full(shape, np.nan, np.float32)
    with contextlib.ExitStack() as stack:
        files = [stack.enter_context(open(p, "rb")) for p in paths]
        band = np.empty((len(paths), rows, nx), np.float32)
        for r0 in range(0, ny, rows):
            n = min(rows, ny - r0)
            # plain reads, not memory maps: mapped pages would count in the resident size
            # of the process, N single drizzles' worth by the end of the median
            for k, f in enumerate(files):
                f.seek(r0 * nx * 4)
                band[k, :n] = np.fromfile(f, np.float32, n * nx).reshape(n, nx)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns stay NaN
                median[r0:r0 + n] = np.nanmedian(band[:, :n], axis=0)
    return median

