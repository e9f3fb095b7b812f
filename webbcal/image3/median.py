"""Median of the single-drizzled images, computed in row sections from files on disk.

Each single drizzle (one per exposure group, output-grid sized) is written to a ``.npy``
memory map; the median reads the same band of rows from every map at a time, so memory is
the median itself plus one band (at most ``BAND_BYTES``), whatever the number of groups.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

BAND_BYTES = 128 * 2**20  # one band of all groups' rows


def store_single(path: Path, data: np.ndarray) -> Path:
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=data.shape)
    out[:] = data
    out.flush()
    del out
    return path


def sectioned_median(paths: list[Path], shape, band_bytes: int | None = None) -> np.ndarray:
    """NaN-ignoring median across the stored images (NaN where every image is NaN)."""
    ny, nx = shape
    band_bytes = BAND_BYTES if band_bytes is None else band_bytes
    rows = max(1, int(band_bytes // max(1, len(paths) * nx * 4)))
    maps = [np.load(p, mmap_mode="r") for p in paths]
    median = np.full(shape, np.nan, np.float32)
    for r0 in range(0, ny, rows):
        band = np.stack([m[r0:r0 + rows] for m in maps])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns stay NaN
            median[r0:r0 + rows] = np.nanmedian(band, axis=0)
    del maps
    return median
