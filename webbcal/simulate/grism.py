"""NIRCam long-wave grism models: trace, wavelength and sensitivity of each spectral order.

One ``GrismModel`` per (filter, pupil) holds, for orders +1 and +2, the polynomials of the
official SPECWCS representation (``NIRCAMGrismModel``; see
``stdatamodels.jwst.transforms.models``): with t in [0, 1] the normalised trace parameter
and (x0, y0) the direct-image position (0-based full-frame pixels of the grism exposure's
imaging WCS),

    f(t; x0, y0) = sum_k C_k(x0, y0) * t**k,   C_k a 2-D polynomial in (x0, y0),
    dx = DISPX(t; x0, y0),  dy = DISPY(t; x0, y0),  lambda = DISPL(t; x0, y0) [micron],

and the trace of a source is (x0 + dx, y0 + dy). DISPL is linear in t with a field-constant
slope, so its inverse INVDISPL(lambda; x0, y0) = (lambda - L0(x0, y0)) / L1 is exact and is
written to the reference; DISPX/DISPY are quadratic in t with field-dependent coefficients,
which no 1-input INVDISPX/INVDISPY can represent, so (as in the current flight files) those
inverses are left out and readers invert the trace numerically.

The numbers are synthetic but at flight scale: about 1.0 nm/pixel in order 1 and 0.5 nm/pixel
in order 2 (the deflection of order m grows as m*lambda - lambda_undeviated), F444W order 1
starts about 250 pixels from the direct position, a few pixels of field-dependent tilt and
curvature across the trace. GRISMR disperses along +x (rows), GRISMC along +y (columns).

Sensitivity ``S_m(lambda)`` is in DN/s per Jy per micron: a source of flux density f_nu [Jy]
gives a count rate ``f_nu * S_m * |dlambda/dpixel|`` per pixel along the trace. The WFSS
photom reference encodes its inverse (``photmjsr * relresponse = 1 / (S * PIXAR_SR * 1e6)``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from webbcal.errors import WebbcalError

FIELD_CENTRE = 1023.5  # centre of the 2048x2048 full frame, 0-based
LW_PIXAR_SR = 9.31e-14  # solid angle of a long-wave pixel (0.0630" x 0.0630" class)
GRISM_PUPILS = ("GRISMR", "GRISMC")
ORDERS = (1, 2)


# ---------------------------------------------------------------------------------------
# polynomials of the SPECWCS representation


@dataclass(frozen=True)
class FieldPoly:
    """c(x0, y0) = sum of coef * x0**i * y0**j over ``terms`` = ((i, j, coef), ...)."""

    terms: tuple[tuple[int, int, float], ...]

    def __call__(self, x0, y0):
        x0 = np.asarray(x0, dtype=float)
        y0 = np.asarray(y0, dtype=float)
        out = np.zeros(np.broadcast(x0, y0).shape)
        for i, j, coef in self.terms:
            out = out + coef * x0**i * y0**j
        return out

    @property
    def degree(self) -> int:
        return max((i + j for i, j, coef in self.terms if coef != 0.0), default=0)

    def scaled(self, factor: float, offset: float = 0.0) -> "FieldPoly":
        """factor * c + offset."""
        terms = {(i, j): coef * factor for i, j, coef in self.terms}
        terms[(0, 0)] = terms.get((0, 0), 0.0) + offset
        return FieldPoly(tuple((i, j, c) for (i, j), c in sorted(terms.items())))

    def to_astropy(self):
        from astropy.modeling.models import Polynomial2D

        # degree >= 1 so every coefficient file looks alike (the readers accept any degree)
        params = {f"c{i}_{j}": float(coef) for i, j, coef in self.terms}
        return Polynomial2D(degree=max(1, self.degree), **params)


def field_linear(value: float, per_x: float = 0.0, per_y: float = 0.0) -> FieldPoly:
    """value + per_x * (x0 - centre) + per_y * (y0 - centre), as raw-pixel polynomial terms."""
    constant = value - (per_x + per_y) * FIELD_CENTRE
    return FieldPoly(((0, 0, float(constant)), (1, 0, float(per_x)), (0, 1, float(per_y))))


@dataclass(frozen=True)
class TracePoly:
    """f(t; x0, y0) = sum_k coeffs[k](x0, y0) * t**k."""

    coeffs: tuple[FieldPoly, ...]

    def __call__(self, t, x0, y0):
        t = np.asarray(t, dtype=float)
        out = np.zeros(np.broadcast(t, np.asarray(x0), np.asarray(y0)).shape)
        for k in range(len(self.coeffs) - 1, -1, -1):  # Horner in t
            out = out * t + self.coeffs[k](x0, y0)
        return out

    def derivative(self, t, x0, y0):
        t = np.asarray(t, dtype=float)
        out = np.zeros(np.broadcast(t, np.asarray(x0), np.asarray(y0)).shape)
        for k in range(len(self.coeffs) - 1, 0, -1):
            out = out * t + k * self.coeffs[k](x0, y0)
        return out

    def to_astropy(self) -> list:
        return [c.to_astropy() for c in self.coeffs]

    def at(self, x0: float, y0: float) -> np.ndarray:
        """The 1-D polynomial in t at one field position (``np.polyval`` order: highest first)."""
        return np.array([float(c(x0, y0)) for c in reversed(self.coeffs)])


# ---------------------------------------------------------------------------------------
# one order, one grism


@dataclass(frozen=True)
class Sensitivity:
    """S(lambda) in DN/s per Jy per micron, tabulated (linear interpolation, 0 outside)."""

    wavelength: np.ndarray
    value: np.ndarray

    def __call__(self, wavelength):
        return np.interp(wavelength, self.wavelength, self.value, left=0.0, right=0.0)


@dataclass(frozen=True)
class OrderModel:
    order: int
    displ: TracePoly  # lambda(t), linear in t with a field-constant slope
    dispx: TracePoly
    dispy: TracePoly
    sensitivity: Sensitivity

    @property
    def invdispl(self) -> TracePoly:
        """t(lambda; x0, y0), the exact inverse of the linear DISPL."""
        offset, slope = self.displ.coeffs
        if slope.degree != 0:
            raise ValueError("DISPL slope must not depend on the field position")
        l1 = float(slope(0.0, 0.0))
        return TracePoly((offset.scaled(-1.0 / l1), FieldPoly(((0, 0, 1.0 / l1),))))


@dataclass(frozen=True)
class GrismModel:
    """Dispersion of one filter through one grism, for each order in ``orders``."""

    filter: str
    pupil: str
    orders: tuple[OrderModel, ...]

    @property
    def dispaxis(self) -> int:
        """1: dispersion along x (rows, GRISMR); 2: along y (columns, GRISMC)."""
        return 1 if self.pupil == "GRISMR" else 2

    @property
    def order_numbers(self) -> tuple[int, ...]:
        return tuple(o.order for o in self.orders)

    def order(self, order: int) -> OrderModel:
        for model in self.orders:
            if model.order == order:
                return model
        raise WebbcalError("order", f"{self.filter}/{self.pupil} has no spectral order {order}")

    def along(self, order: int) -> TracePoly:
        """The along-dispersion offset polynomial (DISPX for GRISMR, DISPY for GRISMC)."""
        m = self.order(order)
        return m.dispx if self.dispaxis == 1 else m.dispy

    def across(self, order: int) -> TracePoly:
        m = self.order(order)
        return m.dispy if self.dispaxis == 1 else m.dispx

    # forward: (x0, y0, t) -> trace position and wavelength

    def trace(self, order: int, x0, y0, t):
        """Grism-frame (x, y) and wavelength [micron] of trace parameter t of a source at (x0, y0)."""
        m = self.order(order)
        return x0 + m.dispx(t, x0, y0), y0 + m.dispy(t, x0, y0), m.displ(t, x0, y0)

    # inverses

    def t_of_wavelength(self, order: int, x0, y0, wavelength):
        return self.order(order).invdispl(wavelength, x0, y0)

    def t_of_offset(self, order: int, x0, y0, offset, iterations: int = 8):
        """t at which the along-dispersion offset equals ``offset`` (Newton, vectorised).

        The trace is monotonic in t (checked when the model is built), so Newton from the
        linear guess converges to machine precision in a few steps; t may leave [0, 1] when
        ``offset`` is beyond the ends (the polynomial is extrapolated).
        """
        poly = self.along(order)
        start, end = poly(0.0, x0, y0), poly(1.0, x0, y0)
        t = (np.asarray(offset, dtype=float) - start) / (end - start)
        for _ in range(iterations):
            t = t - (poly(t, x0, y0) - offset) / poly.derivative(t, x0, y0)
        return t

    def trace_at_wavelength(self, order: int, x0, y0, wavelength):
        """Grism-frame (x, y) where a source at (x0, y0) lands at ``wavelength``."""
        t = self.t_of_wavelength(order, x0, y0, wavelength)
        x, y, _ = self.trace(order, x0, y0, t)
        return x, y

    def wavelength_at(self, order: int, x0, y0, along_position):
        """Wavelength at grism-frame coordinate ``along_position`` (x for GRISMR, y for GRISMC)."""
        origin = x0 if self.dispaxis == 1 else y0
        t = self.t_of_offset(order, x0, y0, np.asarray(along_position) - origin)
        return self.order(order).displ(t, x0, y0)

    def wavelength_range(self, order: int) -> tuple[float, float]:
        """Wavelengths of t = 0 and t = 1 at the field centre [micron]."""
        displ = self.order(order).displ
        c = FIELD_CENTRE
        return float(displ(0.0, c, c)), float(displ(1.0, c, c))

    def local(self, order: int, x0: float, y0: float) -> "LocalTrace":
        """The trace of one source as plain 1-D polynomials in t (fast repeated evaluation)."""
        m = self.order(order)
        return LocalTrace(self.along(order).at(x0, y0), self.across(order).at(x0, y0),
                          m.displ.at(x0, y0))

    # the official representation

    def specwcs_tree(self) -> dict:
        """Content of the SPECWCS (NIRCAMGrismModel) ASDF tree: astropy models per order."""
        return {
            "displ": [m.displ.to_astropy() for m in self.orders],
            "dispx": [m.dispx.to_astropy() for m in self.orders],
            "dispy": [m.dispy.to_astropy() for m in self.orders],
            "invdispl": [m.invdispl.to_astropy() for m in self.orders],
            "orders": [int(m.order) for m in self.orders],
        }


@dataclass(frozen=True)
class LocalTrace:
    """One source's trace: along/across offsets and wavelength as polynomials in t."""

    along: np.ndarray  # np.polyval coefficients
    across: np.ndarray
    wavelength: np.ndarray

    def t_of_along(self, offset, iterations: int = 8):
        """Inverse of the along-dispersion offset (monotonic increasing in t).

        Quadratic traces (all of the simulator's) use the closed form, written to stay exact
        as the curvature goes to zero; other degrees use Newton from the linear guess.
        """
        offset = np.asarray(offset, dtype=float)
        if self.along.size == 3:
            a, b, c = self.along
            u = offset - c
            return 2.0 * u / (b + np.sqrt(np.maximum(b * b + 4.0 * a * u, 0.0)))
        slope = np.polyder(self.along)
        start, end = np.polyval(self.along, 0.0), np.polyval(self.along, 1.0)
        t = (offset - start) / (end - start)
        for _ in range(iterations):
            t = t - (np.polyval(self.along, t) - offset) / np.polyval(slope, t)
        return t


# ---------------------------------------------------------------------------------------
# the long-wave instrument


@dataclass(frozen=True)
class FilterBand:
    trace_min: float  # wavelength at t = 0 [micron]
    trace_max: float  # wavelength at t = 1
    edge_blue: float  # 50% transmission points of the filter
    edge_red: float


@dataclass(frozen=True)
class GrismGeometry:
    undeviated: float  # order-1 wavelength that lands on the direct position [micron]
    px_per_micron: float  # order-1 linear dispersion [pixel/micron]
    curvature: float  # second-order term of the deflection [pixel/micron^2]
    offset_per_x: float  # field dependence of the trace start [pixel/pixel]
    offset_per_y: float
    scale_per_along: float  # field dependence of the dispersion [1/pixel]
    tilt: float  # cross-dispersion drift over the order-1 trace [pixel]
    tilt_per_x: float
    tilt_per_y: float
    bend: float  # cross-dispersion curvature over the order-1 trace [pixel]
    lambda_per_x: float  # field dependence of the wavelength zero point [micron/pixel]


LW_FILTERS = {
    "F444W": FilterBand(3.80, 5.00, 3.88, 4.98),
    "F322W2": FilterBand(2.40, 4.05, 2.43, 4.01),
}

LW_GRISMS = {
    "GRISMR": GrismGeometry(undeviated=3.55, px_per_micron=1000.0, curvature=5.0,
                            offset_per_x=0.010, offset_per_y=-0.004, scale_per_along=1.5e-5,
                            tilt=3.0, tilt_per_x=2.0e-3, tilt_per_y=1.0e-3, bend=-1.5,
                            lambda_per_x=2.0e-6),
    "GRISMC": GrismGeometry(undeviated=3.60, px_per_micron=995.0, curvature=4.0,
                            offset_per_x=-0.003, offset_per_y=0.012, scale_per_along=-1.2e-5,
                            tilt=-2.5, tilt_per_x=-1.0e-3, tilt_per_y=1.5e-3, bend=1.2,
                            lambda_per_x=-1.5e-6),
}

# Peak sensitivity of order 1 [DN/s per Jy per micron] (imaging F444W converts 1 Jy to
# ~2e7 DN/s over ~1 micron; the grism keeps ~60%), and each order's share and blaze.
PEAK_SENSITIVITY = 1.3e7
ORDER_EFFICIENCY = {1: 1.0, 2: 0.10}
ORDER_BLAZE = {1: (3.9, 2.0), 2: (2.6, 1.2)}  # Gaussian centre, width [micron]
EDGE_WIDTH = 0.015  # micron, logistic filter edges


def filter_transmission(band: FilterBand, wavelength):
    w = np.asarray(wavelength, dtype=float)
    blue = 1.0 / (1.0 + np.exp(-(w - band.edge_blue) / EDGE_WIDTH))
    red = 1.0 / (1.0 + np.exp((w - band.edge_red) / EDGE_WIDTH))
    return blue * red


def order_sensitivity(band: FilterBand, order: int, samples: int = 601) -> Sensitivity:
    wavelength = np.linspace(band.trace_min, band.trace_max, samples)
    centre, width = ORDER_BLAZE[order]
    blaze = np.exp(-(((wavelength - centre) / width) ** 2))
    value = PEAK_SENSITIVITY * ORDER_EFFICIENCY[order] * blaze * filter_transmission(band, wavelength)
    return Sensitivity(wavelength, value)


def _order_model(band: FilterBand, geo: GrismGeometry, order: int, dispaxis: int) -> OrderModel:
    span = band.trace_max - band.trace_min
    # lambda(t) = lambda_min(x0) + span * t
    displ = TracePoly((field_linear(band.trace_min, per_x=geo.lambda_per_x), field_linear(span)))
    # deflection of order m: D * u + K * u**2 with u = m * lambda - lambda_undeviated = u0 + u1 t
    u0 = order * band.trace_min - geo.undeviated
    u1 = order * span
    d, k = geo.px_per_micron, geo.curvature
    along = TracePoly((
        field_linear(d * u0 + k * u0**2, per_x=geo.offset_per_x, per_y=geo.offset_per_y),
        field_linear(d * u1 + 2 * k * u0 * u1,
                     per_x=geo.scale_per_along * (d * u1), per_y=0.5 * geo.scale_per_along * (d * u1)),
        field_linear(k * u1**2),
    ))
    # cross-dispersion: a drift (tilt) and a bow (bend), both growing with the order's length
    stretch = order * span / (LW_FILTERS["F444W"].trace_max - LW_FILTERS["F444W"].trace_min)
    across = TracePoly((
        field_linear(0.5, per_y=5e-4),
        field_linear(stretch * (geo.tilt - geo.bend), per_x=stretch * geo.tilt_per_x,
                     per_y=stretch * geo.tilt_per_y),
        field_linear(stretch * geo.bend),
    ))
    dispx, dispy = (along, across) if dispaxis == 1 else (across, along)
    return OrderModel(order, displ, dispx, dispy, order_sensitivity(band, order))


@lru_cache(maxsize=None)
def lw_grism_model(filter_name: str, pupil: str) -> GrismModel:
    """The simulator's grism model of ``filter_name`` (F444W, F322W2) through GRISMR/GRISMC."""
    filt, pup = str(filter_name).upper(), str(pupil).upper()
    if filt not in LW_FILTERS:
        raise WebbcalError("filter", f"no grism model for filter {filter_name!r}; "
                                 f"known: {', '.join(LW_FILTERS)}")
    if pup not in LW_GRISMS:
        raise WebbcalError("pupil", f"no grism model for pupil {pupil!r}; "
                                    f"known: {', '.join(LW_GRISMS)}")
    band, geo = LW_FILTERS[filt], LW_GRISMS[pup]
    dispaxis = 1 if pup == "GRISMR" else 2
    model = GrismModel(filt, pup, tuple(_order_model(band, geo, m, dispaxis) for m in ORDERS))
    _check_monotonic(model)
    return model


def _check_monotonic(model: GrismModel) -> None:
    """The trace must advance along the dispersion axis everywhere on the field."""
    grid = np.linspace(-200.0, 2248.0, 9)
    x0, y0 = np.meshgrid(grid, grid)
    t = np.linspace(0.0, 1.0, 21)[:, None, None]
    for order in model.order_numbers:
        if np.any(model.along(order).derivative(t, x0, y0) <= 0):
            raise ValueError(f"{model.filter}/{model.pupil} order {order}: trace not monotonic")
