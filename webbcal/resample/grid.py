"""The output grid of a resampling: a TAN projection on the sky and an array shape.

Follows ``stcal.alignment.util.wcs_from_sregions`` (spec §3.4 "Output WCS"): the fiducial
(CRVAL) is the mid-range of the footprint vertices in 3-D Cartesian coordinates; the scale
is the first input's pixel scale at (RA_REF, DEC_REF) × ``pixel_scale_ratio`` (or
``pixel_scale``); the orientation comes from ROLL_REF (or ``rotation``) with V3I_YANG and
VPARITY; the shape covers every footprint vertex (or is given).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from astropy.modeling import models

from webbcal.errors import WebbcalError


@dataclass
class OutputGrid:
    wcs: object                 # gwcs.WCS: output pixel (x, y) → (RA, Dec)
    shape: tuple[int, int]      # (ny, nx)
    pscale: float               # deg / pixel
    crpix: tuple[float, float]  # 0-based (x, y) of CRVAL
    crval: tuple[float, float]  # deg
    pc: np.ndarray              # 2x2 rotation (FITS PC)

    def fits_keywords(self) -> dict:
        """The FITS TAN keywords of this grid (CRPIX 1-based), as resample writes them."""
        return {
            "WCSAXES": 2, "CRPIX1": float(self.crpix[0] + 1), "CRPIX2": float(self.crpix[1] + 1),
            "CRVAL1": float(self.crval[0]), "CRVAL2": float(self.crval[1]),
            "CDELT1": float(self.pscale), "CDELT2": float(self.pscale),
            "PC1_1": float(self.pc[0, 0]), "PC1_2": float(self.pc[0, 1]),
            "PC2_1": float(self.pc[1, 0]), "PC2_2": float(self.pc[1, 1]),
            "CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CUNIT1": "deg", "CUNIT2": "deg",
            "RADESYS": "ICRS",
        }


def footprint_from_sregion(s_region: str, source=None) -> np.ndarray:
    """``POLYGON ICRS ra dec ...`` → (N, 2) vertices."""
    numbers = re.sub(r"[a-zA-Z]", " ", str(s_region or "")).split()
    if len(numbers) < 6 or len(numbers) % 2:
        raise WebbcalError(source, f"S_REGION {s_region!r} is not a polygon; run assign_wcs first")
    return np.array(numbers, dtype=float).reshape(-1, 2)


def fiducial(footprints) -> tuple[float, float]:
    lon, lat = np.deg2rad(np.vstack(footprints)).T
    x, y, z = np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)
    xm, ym, zm = [(np.max(a) + np.min(a)) / 2.0 for a in (x, y, z)]
    return float(np.rad2deg(np.arctan2(ym, xm)) % 360.0), float(np.rad2deg(np.arctan2(zm, np.hypot(xm, ym))))


def pixel_scale_at(wcs, ra: float, dec: float) -> float:
    """sqrt(x_sep · y_sep) (deg) of one-pixel steps at the pixel that maps to (ra, dec)."""
    from astropy.coordinates import SkyCoord

    x, y = wcs.invert(ra, dec, with_bounding_box=False)
    lon, lat = wcs(np.array([x, x + 1, x]), np.array([y, y, y + 1]), with_bounding_box=False)
    coords = SkyCoord(lon, lat, unit="deg")
    return float(np.sqrt(coords[0].separation(coords[1]).deg * coords[0].separation(coords[2]).deg))


def rotation_matrix(roll_deg: float, v3yangle_deg: float, vparity: int) -> np.ndarray:
    """FITS PC from the roll and the aperture's V3 angle and parity (``calc_rotation_matrix``)."""
    if vparity not in (1, -1):
        raise WebbcalError("VPARITY", f"must be 1 or -1, got {vparity}")
    angle = np.deg2rad(roll_deg) - vparity * np.deg2rad(v3yangle_deg)
    return np.array([[vparity * np.cos(angle), np.sin(angle)],
                     [-vparity * np.sin(angle), np.cos(angle)]])


def _sky_transform(pc, pscale, crval):
    return (models.AffineTransformation2D(matrix=pc) | models.Scale(pscale) & models.Scale(pscale)
            | models.Pix2Sky_TAN() | models.RotateNative2Celestial(crval[0], crval[1], 180.0))


def make_wcs(ref_wcs, pc, pscale, crval, crpix, shape):
    """gwcs of a TAN grid: (x, y) → shift by −CRPIX → PC → scale → TAN → sky."""
    import gwcs

    transform = models.Shift(-crpix[0]) & models.Shift(-crpix[1]) | _sky_transform(pc, pscale, crval)
    transform.name = "output_tan"
    wcs = gwcs.WCS([(ref_wcs.input_frame, transform), (ref_wcs.output_frame, None)])
    ny, nx = shape
    wcs.bounding_box = ((-0.5, nx - 0.5), (-0.5, ny - 0.5))
    wcs.pixel_shape = (nx, ny)
    wcs.array_shape = (ny, nx)
    return wcs


def build_output_grid(footprints, ref_wcs, ref_meta, *, pixel_scale_ratio: float = 1.0,
                      pixel_scale: float | None = None, rotation: float | None = None,
                      crpix=None, crval=None, shape=None) -> OutputGrid:
    """The grid covering ``footprints`` ((N, 2) RA/Dec arrays), oriented like the first input."""
    center = tuple(float(v) for v in crval) if crval is not None else fiducial(footprints)
    v3yangle = float(ref_meta.get("V3I_YANG", 0.0))
    vparity = int(ref_meta.get("VPARITY", -1))
    roll = float(ref_meta.get("ROLL_REF", 0.0)) if rotation is None else rotation + vparity * v3yangle
    pc = rotation_matrix(roll, v3yangle, vparity)
    if pixel_scale:
        pscale = float(pixel_scale) / 3600.0
    else:
        ra_ref, dec_ref = float(ref_meta["RA_REF"]), float(ref_meta["DEC_REF"])
        pscale = pixel_scale_at(ref_wcs, ra_ref, dec_ref) * pixel_scale_ratio
    sky = _sky_transform(pc, pscale, center)
    verts = np.hstack([np.array(sky.inverse(*np.asarray(f).T)) for f in footprints])
    lo, hi = verts.min(axis=1), verts.max(axis=1)
    native = np.array(sky.inverse(*center))
    if crpix is None:
        offsets = native - lo
    else:
        offsets = np.asarray(crpix, float) - native
    lo, hi = lo + offsets, hi + offsets
    if shape is None:
        shape = (int(hi[1] + 0.5), int(hi[0] + 0.5))
    else:
        shape = (int(shape[0]), int(shape[1]))
    if min(shape) < 2:
        raise WebbcalError("resample", f"output grid would be {shape[1]}x{shape[0]} pixels; "
                                       "check output_shape, crpix and pixel_scale")
    wcs = make_wcs(ref_wcs, pc, pscale, center, offsets, shape)
    return OutputGrid(wcs=wcs, shape=shape, pscale=pscale, crpix=(float(offsets[0]), float(offsets[1])),
                      crval=center, pc=pc)


def grid_from_wcs(wcs, source=None) -> OutputGrid:
    """A user's output gwcs (``output_wcs`` parameter) as a grid; its array shape is required."""
    shape = getattr(wcs, "array_shape", None)
    if shape is None:
        if getattr(wcs, "pixel_shape", None) is not None:
            shape = tuple(wcs.pixel_shape[::-1])
        elif wcs.bounding_box is not None:
            (x0, x1), (y0, y1) = wcs.bounding_box.bounding_box(order="F")
            shape = (int(y1 + 0.5), int(x1 + 0.5))
        else:
            raise WebbcalError(source, "output WCS has neither array_shape nor a bounding box")
    ny, nx = shape
    ra, dec = wcs((nx - 1) / 2.0, (ny - 1) / 2.0, with_bounding_box=False)
    pscale = pixel_scale_at(wcs, float(ra), float(dec))
    return OutputGrid(wcs=wcs, shape=(int(ny), int(nx)), pscale=pscale,
                      crpix=((nx - 1) / 2.0, (ny - 1) / 2.0), crval=(float(ra), float(dec)),
                      pc=np.eye(2))


def read_output_wcs(path) -> OutputGrid:
    """The ``output_wcs`` ASDF file: a gwcs under ``wcs`` (array_shape set)."""
    from webbcal.io.asdf_loader import load_asdf
    asdf = load_asdf()

    try:
        with asdf.open(path, lazy_load=False) as af:
            wcs = af.tree.get("wcs")
    except Exception as exc:
        raise WebbcalError(path, f"cannot read output WCS: {type(exc).__name__}: {exc}") from None
    if wcs is None:
        raise WebbcalError(path, "ASDF file has no 'wcs' entry")
    return grid_from_wcs(wcs, path)
