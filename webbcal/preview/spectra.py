"""The spectra of a WFSSMultiSpecModel x1d, as plain arrays ready to plot."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from webbcal.errors import WebbcalError


@dataclass(frozen=True)
class Spectrum:
    source_id: int
    order: int | None
    wavelength: np.ndarray
    flux: np.ndarray
    error: np.ndarray

    @property
    def median_snr(self) -> float:
        """Median flux / error over the good samples (0 when there are none)."""
        good = np.isfinite(self.flux) & np.isfinite(self.error) & (self.error > 0)
        return float(np.median(self.flux[good] / self.error[good])) if good.any() else 0.0


def read_spectra(product) -> list[Spectrum]:
    """Every (extension, row) spectrum, trimmed to its N_ALONGDISP valid samples."""
    found = []
    for key in sorted(product.tables, key=_extver):
        if not key.startswith("EXTRACT1D"):
            continue
        table = product.tables[key]
        names = table.dtype.names or ()
        missing = [c for c in ("SOURCE_ID", "WAVELENGTH", "FLUX", "FLUX_ERROR") if c not in names]
        if missing:
            raise WebbcalError(product.path, f"{key} has no column {', '.join(missing)}")
        order = product.ext_meta.get(key, {}).get("SPORDER")
        for row in table:
            wavelength = np.atleast_1d(np.asarray(row["WAVELENGTH"], dtype=float))
            length = int(row["N_ALONGDISP"]) if "N_ALONGDISP" in names else wavelength.size
            length = min(max(length, 0), wavelength.size)
            flux = np.atleast_1d(np.asarray(row["FLUX"], dtype=float))[:length]
            error = np.atleast_1d(np.asarray(row["FLUX_ERROR"], dtype=float))[:length]
            wavelength = wavelength[:length]
            keep = np.isfinite(wavelength)
            found.append(Spectrum(int(row["SOURCE_ID"]), None if order is None else int(order),
                                  wavelength[keep], flux[keep], error[keep]))
    return found


def _extver(key: str) -> int:
    _, _, ver = key.partition(",")
    return int(ver) if ver else 1


def best_spectra(spectra: list[Spectrum], count: int) -> list[Spectrum]:
    """The ``count`` spectra of highest median S/N, in source order (a stable choice)."""
    ranked = sorted(spectra, key=lambda s: -s.median_snr)[:count]
    return sorted(ranked, key=lambda s: (s.source_id, s.order or 0))


def column_unit(product, key: str, column: str) -> str:
    """TUNITn of ``column`` in table ``key`` ('' when the file gives none)."""
    names = product.tables[key].dtype.names or ()
    if column not in names:
        return ""
    return str(product.ext_meta.get(key, {}).get(f"TUNIT{names.index(column) + 1}", ""))
