"""Source positions of an Image3 catalog (``*_cat.ecsv``)."""

from __future__ import annotations

import numpy as np

from webbcal.errors import WebbcalError


def catalog_positions(path) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) 0-based pixel centroids of the catalog's sources in its mosaic.

    Sources without a finite centroid are left out; an empty catalog gives empty arrays.
    """
    from astropy.table import Table

    try:
        table = Table.read(path, format="ascii.ecsv")
    except Exception as exc:  # astropy raises many kinds on a malformed table
        raise WebbcalError(path, f"not an ECSV catalog: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
    missing = [c for c in ("xcentroid", "ycentroid") if c not in table.colnames]
    if missing:
        raise WebbcalError(path, f"catalog has no column {', '.join(missing)}")
    x = np.asarray(table["xcentroid"], dtype=float)
    y = np.asarray(table["ycentroid"], dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    return x[keep], y[keep]
