"""The NIRCam grism dispersion of a SPECWCS reference, evaluated for many sources at once.

A SPECWCS (``NIRCAMGrismModel``) holds per spectral order the polynomials

    dx = DISPX(t; x0, y0),  dy = DISPY(t; x0, y0),  lambda = DISPL(t; x0, y0)  [micron]

with t in [0, 1] the trace parameter and (x0, y0) the direct-image position (0-based
full-frame pixels of the exposure's imaging WCS). Each entry is either a list of 2-input
models ``[C0(x0, y0), C1(x0, y0), ...]`` meaning ``sum_k C_k(x0, y0) t**k``, or (legacy) a
single 1-input polynomial in t. ``invdispl`` (t of lambda) and ``invdispx``/``invdispy``
(t of the along-dispersion offset, legacy 1-input only) are optional inverses.

Unlike the official per-call astropy models, ``GrismWcs`` turns every polynomial into a
coefficient array for all sources in one call (``coefficients``), then evaluates with
numpy: a trace is a handful of multiply-adds per pixel. Missing inverses are solved the
way the official code does (t clamped to [0, 1] at the trace ends), with Newton steps
instead of 40-sample linear interpolation, i.e. exactly rather than to ~1e-3 pixel.

Spec image2_image3_wfss.md §4.2.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from webbcal.errors import WebbcalError

SPEED_OF_LIGHT = 299792458.0  # m/s
NEWTON_STEPS = 8


# --------------------------------------------------------------------------- one polynomial

@dataclass(frozen=True)
class TracePolynomial:
    """f(t; x0, y0) = sum_k C_k(x0, y0) t**k; each C_k a 2-D polynomial (or constant).

    ``terms[k]`` is ((i, j, coef), ...) meaning C_k = sum coef * x0**i * y0**j.
    """

    terms: tuple[tuple[tuple[int, int, float], ...], ...]

    @property
    def degree(self) -> int:
        return len(self.terms) - 1

    def coefficients(self, x0, y0) -> np.ndarray:
        """C_k at each (x0, y0): array (degree + 1, *shape)."""
        x0 = np.asarray(x0, dtype=float)
        y0 = np.asarray(y0, dtype=float)
        shape = np.broadcast(x0, y0).shape
        out = np.zeros((len(self.terms), *shape))
        for k, terms in enumerate(self.terms):
            for i, j, coef in terms:
                out[k] += coef * x0**i * y0**j
        return out

    @classmethod
    def from_reference(cls, entry, what: str, path=None) -> "TracePolynomial":
        """From a SPECWCS entry: a list of Polynomial2D (field dependent) or one Polynomial1D."""
        from astropy.modeling.polynomial import Polynomial1D, Polynomial2D

        models = list(entry) if isinstance(entry, (list, tuple)) else [entry]
        if len(models) == 1 and isinstance(models[0], Polynomial1D):  # legacy: f(t) only
            model = models[0]
            return cls(tuple(((0, 0, float(getattr(model, f"c{k}").value)),)
                             for k in range(model.degree + 1)))
        terms = []
        for model in models:
            if isinstance(model, Polynomial2D):
                terms.append(_polynomial2d_terms(model))
            elif isinstance(model, Polynomial1D) and model.degree == 0:
                terms.append(((0, 0, float(model.c0.value)),))
            else:
                raise WebbcalError(path, f"specwcs {what}: unsupported model {type(model).__name__} "
                                         "(expected Polynomial2D coefficients or one Polynomial1D)")
        if not terms:
            raise WebbcalError(path, f"specwcs {what} is empty")
        return cls(tuple(terms))


def _polynomial2d_terms(model) -> tuple[tuple[int, int, float], ...]:
    terms = []
    for name, value in zip(model.param_names, model.parameters):
        i, j = (int(v) for v in name[1:].split("_"))
        if value != 0.0:
            terms.append((i, j, float(value)))
    return tuple(terms) or ((0, 0, 0.0),)


def polyval_t(coefficients: np.ndarray, t) -> np.ndarray:
    """sum_k coefficients[k] * t**k (Horner); coefficients broadcast against t."""
    out = np.zeros(np.broadcast(coefficients[0], t).shape)
    for coef in coefficients[::-1]:
        out = out * t + coef
    return out


def polyder_t(coefficients: np.ndarray, t) -> np.ndarray:
    out = np.zeros(np.broadcast(coefficients[0], t).shape)
    for k in range(len(coefficients) - 1, 0, -1):
        out = out * t + k * coefficients[k]
    return out


def solve_t(coefficients: np.ndarray, value, clamp: bool = True) -> np.ndarray:
    """t with f(t) = value for a monotonic f (Newton from the secant through t = 0, 1).

    ``clamp``: values beyond the trace ends give t = 0 or 1 (the official interpolation
    does the same), so a wavelength outside [lambda(0), lambda(1)] is never extrapolated.
    """
    start = polyval_t(coefficients, 0.0)
    end = polyval_t(coefficients, 1.0)
    span = np.where(end != start, end - start, 1.0)
    t = (value - start) / span
    if len(coefficients) > 2:
        for _ in range(NEWTON_STEPS):
            slope = polyder_t(coefficients, t)
            t = t - (polyval_t(coefficients, t) - value) / np.where(slope != 0, slope, 1.0)
    if clamp:
        t = np.clip(t, 0.0, 1.0)
    return t


# --------------------------------------------------------------------------- one order

@dataclass(frozen=True)
class OrderDispersion:
    order: int
    displ: TracePolynomial
    dispx: TracePolynomial
    dispy: TracePolynomial
    invdispl: TracePolynomial | None = None
    inv_along: TracePolynomial | None = None  # legacy invdispx (GRISMR) / invdispy (GRISMC)


@dataclass(frozen=True)
class SourceTraces:
    """The polynomial coefficients of one order for n sources (arrays (degree + 1, n))."""

    order: int
    x0: np.ndarray
    y0: np.ndarray
    dispx: np.ndarray
    dispy: np.ndarray
    displ: np.ndarray
    invdispl: np.ndarray | None


# --------------------------------------------------------------------------- the grism

@dataclass(frozen=True)
class GrismWcs:
    """Forward and backward dispersion of one NIRCam grism (all orders of its SPECWCS).

    forward(x, y, x0, y0, order) -> (x0, y0, wavelength): wavelength seen at grism pixel
        (x, y) from a source at direct-image position (x0, y0).
    backward(x0, y0, wavelength, order) -> (x, y): where that source lands at that
        wavelength. Both broadcast over arrays (many sources, many wavelengths).
    """

    pupil: str
    orders: tuple[int, ...]
    models: tuple[OrderDispersion, ...]
    velosys: float | None = None  # m/s; wavelengths are barycentric when set

    @property
    def dispaxis(self) -> int:
        """1: dispersion along x (GRISMR); 2: along y (GRISMC)."""
        return 1 if self.pupil == "GRISMR" else 2

    @property
    def velocity_factor(self) -> float:
        """Observed → barycentric wavelength factor 1 / (1 + VELOSYS / c) (jwst convention)."""
        return 1.0 if not self.velosys else 1.0 / (1.0 + self.velosys / SPEED_OF_LIGHT)

    def model(self, order: int) -> OrderDispersion:
        for m in self.models:
            if m.order == int(order):
                return m
        raise WebbcalError("order", f"the {self.pupil} specwcs has no spectral order {order} "
                                    f"(orders {', '.join(map(str, self.orders))})")

    def sources(self, order: int, x0, y0) -> SourceTraces:
        """Coefficients of ``order`` for sources at (x0, y0) (evaluate once, reuse often)."""
        m = self.model(order)
        x0 = np.atleast_1d(np.asarray(x0, dtype=float))
        y0 = np.atleast_1d(np.asarray(y0, dtype=float))
        x0, y0 = np.broadcast_arrays(x0, y0)
        inv = m.invdispl.coefficients(x0, y0) if m.invdispl is not None else None
        return SourceTraces(int(order), x0, y0, m.dispx.coefficients(x0, y0),
                            m.dispy.coefficients(x0, y0), m.displ.coefficients(x0, y0), inv)

    # ------------------------------------------------------------------ on coefficients

    def t_of_wavelength(self, src: SourceTraces, wavelength) -> np.ndarray:
        wavelength = np.asarray(wavelength, dtype=float) / self.velocity_factor
        if src.invdispl is not None:
            return polyval_t(src.invdispl, wavelength)
        return solve_t(src.displ, wavelength)

    def trace_at_wavelength(self, src: SourceTraces, wavelength):
        """Grism (x, y) of each source at ``wavelength`` (broadcast against the sources)."""
        t = self.t_of_wavelength(src, wavelength)
        return src.x0 + polyval_t(src.dispx, t), src.y0 + polyval_t(src.dispy, t)

    def t_of_along(self, src: SourceTraces, offset) -> np.ndarray:
        """t at along-dispersion offset (x - x0 for GRISMR, y - y0 for GRISMC), clamped."""
        inv = self.model(src.order).inv_along
        if inv is not None:
            return polyval_t(inv.coefficients(0.0, 0.0)[:, None], offset)
        along = src.dispx if self.dispaxis == 1 else src.dispy
        return solve_t(along, np.asarray(offset, dtype=float))

    def wavelength_at(self, src: SourceTraces, along) -> np.ndarray:
        """Wavelength at grism coordinate ``along`` (x for GRISMR, y for GRISMC)."""
        origin = src.x0 if self.dispaxis == 1 else src.y0
        t = self.t_of_along(src, np.asarray(along, dtype=float) - origin)
        return polyval_t(src.displ, t) * self.velocity_factor

    def across_at(self, src: SourceTraces, along) -> np.ndarray:
        """Cross-dispersion grism coordinate of the trace centre at ``along``."""
        origin = src.x0 if self.dispaxis == 1 else src.y0
        t = self.t_of_along(src, np.asarray(along, dtype=float) - origin)
        if self.dispaxis == 1:
            return src.y0 + polyval_t(src.dispy, t)
        return src.x0 + polyval_t(src.dispx, t)

    # ------------------------------------------------------------------ the contract

    def forward(self, x, y, x0, y0, order):
        """(x, y, x0, y0, order) -> (x0, y0, wavelength)."""
        x, y, x0, y0 = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (x, y, x0, y0)))
        src = self.sources(int(np.ravel(order)[0]), x0.ravel(), y0.ravel())
        along = (x if self.dispaxis == 1 else y).ravel()
        wavelength = self.wavelength_at(src, along).reshape(x.shape)
        return x0, y0, wavelength

    def backward(self, x0, y0, wavelength, order):
        """(x0, y0, wavelength, order) -> (x, y)."""
        x0, y0, wavelength = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (x0, y0, wavelength)))
        if np.any(wavelength < 0):
            raise WebbcalError("wavelength", "wavelengths must be positive")
        src = self.sources(int(np.ravel(order)[0]), x0.ravel(), y0.ravel())
        x, y = self.trace_at_wavelength(src, wavelength.ravel())
        return x.reshape(x0.shape), y.reshape(x0.shape)


# --------------------------------------------------------------------------- from a reference

def _pupil_of(meta) -> str:
    return str(meta.get("PUPIL", "") or "").strip().upper()


def grism_wcs_from_specwcs(specwcs, pupil: str, velosys: float | None = None,
                           filter_name: str | None = None) -> GrismWcs:
    """Build a ``GrismWcs`` from a loaded SPECWCS reference (a ``Product`` with ``tree``).

    Raises ``WebbcalError`` when the reference is for another grism (or, when the
    reference names one, another filter) or is malformed.
    """
    path = getattr(specwcs, "path", None)
    tree = getattr(specwcs, "tree", None) or {}
    pupil = str(pupil).strip().upper()
    if pupil not in ("GRISMR", "GRISMC"):
        raise WebbcalError(path, f"exposure PUPIL is {pupil!r}, not a NIRCam grism (GRISMR, GRISMC)")
    ref_pupil = _pupil_of(getattr(specwcs, "meta", {}) or {})
    if ref_pupil and ref_pupil != pupil:
        raise WebbcalError(path, f"specwcs reference is for {ref_pupil}, the exposure uses {pupil}")
    ref_filter = str((getattr(specwcs, "meta", {}) or {}).get("FILTER", "") or "").strip().upper()
    if filter_name and ref_filter and ref_filter not in ("ANY", "N/A"):
        if ref_filter != str(filter_name).strip().upper():
            raise WebbcalError(path, f"specwcs reference is for filter {ref_filter}, "
                                     f"the exposure uses {str(filter_name).strip().upper()}")
    missing = [k for k in ("displ", "dispx", "dispy", "orders") if tree.get(k) is None]
    if missing:
        raise WebbcalError(path, f"specwcs reference lacks {', '.join(missing)}")
    orders = [int(o) for o in tree["orders"]]
    lists = {k: list(tree[k]) for k in ("displ", "dispx", "dispy")}
    for key, value in lists.items():
        if len(value) != len(orders):
            raise WebbcalError(path, f"specwcs {key} has {len(value)} entries for {len(orders)} orders")
    along_key = "invdispx" if pupil == "GRISMR" else "invdispy"
    inverses = {k: tree.get(k) for k in ("invdispl", along_key)}
    models = []
    for index, order in enumerate(orders):
        def poly(key, source=None):
            entries = inverses[key] if source is None else source
            if entries is None or len(entries) <= index:
                return None
            return TracePolynomial.from_reference(entries[index], f"{key}[{index}]", path)

        models.append(OrderDispersion(
            order,
            TracePolynomial.from_reference(lists["displ"][index], f"displ[{index}]", path),
            TracePolynomial.from_reference(lists["dispx"][index], f"dispx[{index}]", path),
            TracePolynomial.from_reference(lists["dispy"][index], f"dispy[{index}]", path),
            invdispl=poly("invdispl"),
            inv_along=poly(along_key),
        ))
    return GrismWcs(pupil, tuple(orders), tuple(models), velosys)
