"""In-memory working data handed from step to step within a stage.

Step algorithms are pure functions on plain arrays; these containers only bundle the
arrays and the exposure's header keywords so that a stage can thread them through its
steps without re-reading files. Steps update them in place (a full-frame ramp is
~170 MB per copy, so copies are avoided on purpose).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from astropy.io import fits


@dataclass
class Ramp:
    """A Detector1 ramp: SCI (nints, ngroups, ny, nx) float32 DN and its DQ."""

    data: np.ndarray
    groupdq: np.ndarray
    pixeldq: np.ndarray
    meta: fits.Header
    zeroframe: np.ndarray | None = None
    avdrkcur: np.ndarray | None = None
    tables: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return self.data.shape

    def set_status(self, key: str, status: str) -> None:
        self.meta[key] = status


@dataclass
class SlopeImage:
    """A ramp-fit result: rate (ny, nx) or rateints (nints, ny, nx), DN/s."""

    data: np.ndarray
    err: np.ndarray
    dq: np.ndarray
    var_poisson: np.ndarray
    var_rnoise: np.ndarray
    meta: fits.Header
