"""Small statistics shared by the ramp steps (jump, ramp_fit)."""

from __future__ import annotations

import numpy as np


def nan_median_axis0(values: np.ndarray) -> np.ndarray:
    """Median over axis 0 ignoring NaN; NaN where every value is NaN.

    For an even count it is the mean of the two middle values, as both numpy's
    ``nanmedian`` and stcal's C ``real_nan_median`` compute it.
    """
    ordered = np.sort(values, axis=0)  # NaN sorts last
    count = np.count_nonzero(~np.isnan(values), axis=0)
    half = count // 2
    upper = np.take_along_axis(ordered, np.minimum(half, len(values) - 1)[None], 0)[0]
    lower = np.take_along_axis(ordered, np.maximum(half - 1, 0)[None], 0)[0]
    median = np.where(count % 2 == 1, upper, (lower + upper) / 2.0)
    median[count == 0] = np.nan
    return median
