"""Detector pixels → V2/V3: the polynomial distortion of a NIRCam detector.

The model maps 0-based **full-frame** DMS pixel coordinates (x, y) to (V2, V3) in arcsec.
It is built the way SIAF-derived NIRCam DISTORTION references are structured:

    pixel → ideal:  xi  = sx·(dx + Δx(u, v)),  eta = sy·(dy + Δy(u, v))
                    dx, dy = pixel − 1023.5 (detector centre), u, v = dx/1024, dy/1024
    ideal → V2/V3:  V2 = V2Ref + VIdlParity·xi·cosθ + eta·sinθ
                    V3 = V3Ref − VIdlParity·xi·sinθ + eta·cosθ      (θ = V3IdlYAngle)

(pysiaf ``IdlToTel`` convention). Δx, Δy are cubic: a few pixels at the corners, the size of
the real NIRCam SW/LW distortion (JDox "NIRCam Field of View": ≲ 0.5 % geometric
distortion). Both V2 and V3 are then exactly cubic in (dx, dy) and are stored as two
``Polynomial2D(3)``; the inverse is a fitted degree-5 polynomial (≲ 1e-4 px), refined by
Newton iterations in ``invert`` when exactness matters.
"""

from __future__ import annotations

import functools

import numpy as np
from astropy.modeling import models

from webbcal.errors import WebbcalError
from webbcal.wcs.apertures import Aperture

CENTRE = 1023.5  # 0-based full-frame centre: the aperture reference pixel
NORM = 1024.0

# Cubic pixel-plane distortion in units of NORM pixels (Δ = NORM·poly(u, v)); corner ≈ 4–5 px.
_DX_TERMS = {(2, 0): 0.0012, (1, 1): 0.0008, (0, 2): -0.0006, (3, 0): 0.0015, (1, 2): 0.0015}
_DY_TERMS = {(0, 2): 0.0010, (1, 1): 0.0007, (2, 0): -0.0005, (0, 3): 0.0015, (2, 1): 0.0015}
Y_SCALE_RATIO = 0.998  # sy/sx: NIRCam pixels are very slightly non-square on the sky

# FILTEROFFSET: (column_offset, row_offset) in pixels per channel (small, as in the real
# NIRCam FILTEROFFSET files: a fraction of a pixel to ~1 px between filters).
FILTER_OFFSETS = {
    "SHORT": {("F070W", "CLEAR"): (0.21, -0.12), ("F090W", "CLEAR"): (0.15, -0.08),
              ("F115W", "CLEAR"): (0.09, -0.05), ("F150W", "CLEAR"): (0.0, 0.0),
              ("F200W", "CLEAR"): (-0.11, 0.07), ("F210M", "CLEAR"): (-0.18, 0.10)},
    "LONG": {("F277W", "CLEAR"): (0.10, 0.05), ("F356W", "CLEAR"): (0.04, 0.02),
             ("F444W", "CLEAR"): (0.0, 0.0), ("F410M", "CLEAR"): (-0.06, 0.03)},
}


def _pixel_to_ideal(ap: Aperture, x, y):
    dx, dy = np.asarray(x, float) - CENTRE, np.asarray(y, float) - CENTRE
    u, v = dx / NORM, dy / NORM
    ddx = NORM * sum(c * u**i * v**j for (i, j), c in _DX_TERMS.items())
    ddy = NORM * sum(c * u**i * v**j for (i, j), c in _DY_TERMS.items())
    return ap.scale * (dx + ddx), ap.scale * Y_SCALE_RATIO * (dy + ddy)


def ideal_to_v2v3(ap: Aperture, xi, eta):
    """Ideal (xi, eta) arcsec → (V2, V3) arcsec (pysiaf IdlToTel)."""
    th = np.deg2rad(ap.v3_idl_yang)
    v2 = ap.v2_ref + ap.vparity * xi * np.cos(th) + eta * np.sin(th)
    v3 = ap.v3_ref - ap.vparity * xi * np.sin(th) + eta * np.cos(th)
    return v2, v3


def _fit_poly(x, y, z, degree, norm):
    """Least-squares Polynomial2D coefficients of z(x, y), fitted on x/norm, y/norm."""
    terms = [(i, j) for j in range(degree + 1) for i in range(degree + 1 - j)]
    xs, ys = x / norm, y / norm
    design = np.stack([xs**i * ys**j for i, j in terms], axis=1)
    coef, *_ = np.linalg.lstsq(design, z, rcond=None)
    poly = models.Polynomial2D(degree)
    for (i, j), c in zip(terms, coef):
        setattr(poly, f"c{i}_{j}", c / norm ** (i + j))
    return poly


def detector_to_v2v3_model(ap: Aperture):
    """The DISTORTION reference ``model``: full-frame pixels (x, y) → (V2, V3) arcsec
    (built once per aperture; each call returns an independent copy)."""
    return _build_model(ap).copy()


@functools.lru_cache(maxsize=16)
def _build_model(ap: Aperture):
    grid = np.linspace(-0.5, 2047.5, 33)
    gx, gy = [a.ravel() for a in np.meshgrid(grid, grid)]
    v2, v3 = ideal_to_v2v3(ap, *_pixel_to_ideal(ap, gx, gy))
    dx, dy = gx - CENTRE, gy - CENTRE
    fwd = (models.Shift(-CENTRE) & models.Shift(-CENTRE)) | models.Mapping((0, 1, 0, 1)) | (
        _fit_poly(dx, dy, v2, 3, NORM) & _fit_poly(dx, dy, v3, 3, NORM))
    # Inverse: fitted on a denser grid a little beyond the detector.
    grid = np.linspace(-40, 2087, 61)
    gx, gy = [a.ravel() for a in np.meshgrid(grid, grid)]
    v2, v3 = fwd(gx, gy)
    dv2, dv3 = v2 - ap.v2_ref, v3 - ap.v3_ref
    span = NORM * ap.scale
    inv = (models.Shift(-ap.v2_ref) & models.Shift(-ap.v3_ref)) | models.Mapping((0, 1, 0, 1)) | (
        _fit_poly(dv2, dv3, gx, 5, span) & _fit_poly(dv2, dv3, gy, 5, span))
    fwd.inverse = inv
    fwd.name = f"{ap.detector.lower()}_distortion"
    return fwd


def build_distortion_model(ap: Aperture):
    """Alias kept for readability at call sites that write the DISTORTION reference."""
    return detector_to_v2v3_model(ap)


def invert(model, v2, v3, iterations: int = 3):
    """(V2, V3) → full-frame pixel (x, y) through ``model``, exact to ~1e-9 px (Newton)."""
    v2, v3 = np.asarray(v2, float), np.asarray(v3, float)
    x, y = model.inverse(v2, v3)
    h = 0.5
    for _ in range(iterations):
        f2, f3 = model(x, y)
        a2, a3 = model(x + h, y)
        b2, b3 = model(x, y + h)
        j11, j21 = (a2 - f2) / h, (a3 - f3) / h
        j12, j22 = (b2 - f2) / h, (b3 - f3) / h
        r2, r3 = v2 - f2, v3 - f3
        det = j11 * j22 - j12 * j21
        x = x + (j22 * r2 - j12 * r3) / det
        y = y + (-j21 * r2 + j11 * r3) / det
    return x, y


def pixel_area_map(model, shape=(2048, 2048), nominal_scale: float | None = None, step: int = 32):
    """Relative pixel area |det J| / nominal² (float32).

    The Jacobian is evaluated on a grid every ``step`` pixels and interpolated with a
    bicubic spline: the area of a cubic distortion is a smooth (quartic) surface, so this is
    exact to ~1e-8 and 1000× cheaper than evaluating the model at every pixel.
    """
    from scipy.interpolate import RectBivariateSpline

    ny, nx = shape
    ys = np.unique(np.append(np.arange(0, ny, step), ny - 1)).astype(float)
    xs = np.unique(np.append(np.arange(0, nx, step), nx - 1)).astype(float)
    y, x = np.meshgrid(ys, xs, indexing="ij")
    h = 0.5
    a2, a3 = model(x + h, y)
    b2, b3 = model(x - h, y)
    c2, c3 = model(x, y + h)
    d2, d3 = model(x, y - h)
    area = np.abs((a2 - b2) * (c3 - d3) - (c2 - d2) * (a3 - b3))
    if nominal_scale is None:
        nominal_scale = float(np.sqrt(np.median(area)))
    kx, ky = min(3, len(xs) - 1), min(3, len(ys) - 1)
    full = RectBivariateSpline(ys, xs, area, kx=ky, ky=kx)(np.arange(ny), np.arange(nx))
    return (full / nominal_scale**2).astype(np.float32)


def filter_offset_for(filteroffset, filter_name: str, pupil: str = "CLEAR") -> tuple[float, float]:
    """(column_offset, row_offset) of a FILTEROFFSET ``filters`` list; (0, 0) when absent."""
    if filteroffset is None:
        return 0.0, 0.0
    rows = filteroffset.get("filters", filteroffset) if isinstance(filteroffset, dict) else filteroffset
    for row in rows:
        if str(row["filter"]).upper() == filter_name.upper() and str(row.get("pupil", "CLEAR")).upper() == pupil.upper():
            return float(row["column_offset"]), float(row["row_offset"])
    return 0.0, 0.0


def filteroffset_rows(channel: str) -> list[dict]:
    """The FILTEROFFSET ``filters`` list of one NIRCam channel (SHORT or LONG)."""
    try:
        table = FILTER_OFFSETS[channel.upper()]
    except KeyError:
        raise WebbcalError("channel", f"unknown NIRCam channel {channel!r}") from None
    return [{"filter": f, "pupil": p, "column_offset": c, "row_offset": r}
            for (f, p), (c, r) in table.items()]


