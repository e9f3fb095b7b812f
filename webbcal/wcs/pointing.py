"""V2/V3 ↔ sky and the full detector ↔ world chain of NIRCam imaging.

V2V3 → sky follows jwst 3.0 ``assign_wcs/pointing.py::_v23tosky`` as written in
/work/shared/spec/image2_image3_wfss.md §2.3(c):
``M = Rz(−RA_REF)·Ry(DEC_REF)·Rx(ROLL_REF)·Ry(−V3_REF)·Rz(V2_REF)`` applied to the unit
vector of (V2, V3), i.e. ``RotationSequence3D([v2, −v3, roll, dec, −ra], 'zyxyz')``. By
construction (V2_REF, V3_REF) maps exactly to (RA_REF, DEC_REF) and ROLL_REF is the position
angle of +V3 at the reference point. The detector side is
``subarray shift | FILTEROFFSET shift | DISTORTION model`` (§2.3a) with the optional DVA
scale (§2.3b).
"""

from __future__ import annotations

import numpy as np
from astropy.coordinates.matrix_utilities import rotation_matrix
from astropy.modeling import models

from webbcal.errors import WebbcalError
from webbcal.wcs.distortion import filter_offset_for, invert

ARCSEC = 1.0 / 3600.0


def attitude_matrix(ra_ref, dec_ref, roll_ref, v2_ref, v3_ref) -> np.ndarray:
    """3×3 matrix taking V-frame unit vectors to ICRS unit vectors (angles: deg, arcsec)."""
    return (rotation_matrix(-ra_ref, "z") @ rotation_matrix(dec_ref, "y")
            @ rotation_matrix(roll_ref, "x") @ rotation_matrix(-v3_ref * ARCSEC, "y")
            @ rotation_matrix(v2_ref * ARCSEC, "z"))


def _unit(lon_deg, lat_deg):
    lon, lat = np.deg2rad(lon_deg), np.deg2rad(lat_deg)
    return np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)])


def _angles(vec):
    lon = np.rad2deg(np.arctan2(vec[1], vec[0]))
    lat = np.rad2deg(np.arctan2(vec[2], np.hypot(vec[0], vec[1])))
    return lon, lat


def v2v3_to_sky(v2, v3, ra_ref, dec_ref, roll_ref, v2_ref, v3_ref):
    """(V2, V3) arcsec → (RA, Dec) deg; RA in [0, 360)."""
    m = attitude_matrix(ra_ref, dec_ref, roll_ref, v2_ref, v3_ref)
    v2 = np.asarray(v2, float) * ARCSEC
    v2 = (v2 + 180.0) % 360.0 - 180.0
    u = _unit(v2, np.asarray(v3, float) * ARCSEC)
    ra, dec = _angles(np.tensordot(m, u, axes=1))
    return ra % 360.0, dec


def sky_to_v2v3(ra, dec, ra_ref, dec_ref, roll_ref, v2_ref, v3_ref):
    """(RA, Dec) deg → (V2, V3) arcsec (the transpose of the attitude matrix)."""
    m = attitude_matrix(ra_ref, dec_ref, roll_ref, v2_ref, v3_ref)
    v2, v3 = _angles(np.tensordot(m.T, _unit(ra, dec), axes=1))
    return v2 / ARCSEC, v3 / ARCSEC


def v23tosky_model(ra_ref, dec_ref, roll_ref, v2_ref, v3_ref):
    """The astropy model of the same transform (for gwcs pipelines), inputs in arcsec."""
    from gwcs.geometry import CartesianToSpherical, SphericalToCartesian

    rot = models.RotationSequence3D([v2_ref * ARCSEC, -v3_ref * ARCSEC, roll_ref, dec_ref, -ra_ref],
                                    axes_order="zyxyz")
    m = ((models.Scale(ARCSEC) & models.Scale(ARCSEC)) | SphericalToCartesian(wrap_lon_at=180)
         | rot | CartesianToSpherical(wrap_lon_at=360))
    m.name = "v23tosky"
    return m


def position_angle(ra1, dec1, ra2, dec2):
    """Position angle (deg, East of North) of point 2 seen from point 1."""
    r1, d1, r2, d2 = map(np.deg2rad, (ra1, dec1, ra2, dec2))
    y = np.sin(r2 - r1) * np.cos(d2)
    x = np.cos(d1) * np.sin(d2) - np.sin(d1) * np.cos(d2) * np.cos(r2 - r1)
    return np.rad2deg(np.arctan2(y, x)) % 360.0


def pa_v3(ra_ref, dec_ref, roll_ref, v2_ref, v3_ref) -> float:
    """PA_V3: position angle of +V3 at the V1 axis (V2 = V3 = 0) for this attitude."""
    ra0, dec0 = v2v3_to_sky(0.0, 0.0, ra_ref, dec_ref, roll_ref, v2_ref, v3_ref)
    ra1, dec1 = v2v3_to_sky(0.0, 1.0, ra_ref, dec_ref, roll_ref, v2_ref, v3_ref)
    return float(position_angle(ra0, dec0, ra1, dec1))


# --- the whole detector <-> world chain -------------------------------------------------

def _header_value(header, key, default=None):
    value = header.get(key, default)
    if value is None:
        raise WebbcalError(key, f"keyword {key} is required for the WCS but missing")
    return value


def _distortion_model(distortion):
    """Accept an astropy model or a DISTORTION Product (model under ``tree['model']``)."""
    tree = getattr(distortion, "tree", None)
    if tree is not None and "model" in tree:
        return tree["model"]
    return distortion


def _pointing(header):
    return tuple(float(_header_value(header, k)) for k in ("RA_REF", "DEC_REF", "ROLL_REF", "V2_REF", "V3_REF"))


def _detector_shift(header, filteroffset):
    x0 = float(header.get("SUBSTRT1", 1)) - 1.0
    y0 = float(header.get("SUBSTRT2", 1)) - 1.0
    cx, cy = filter_offset_for(filteroffset, str(header.get("FILTER", "")), str(header.get("PUPIL", "CLEAR")))
    return x0 + cx, y0 + cy


def _dva(v2, v3, header, v2_ref, v3_ref, inverse=False):
    s = header.get("VA_SCALE")
    if s is None or s == 1:
        return v2, v3
    s = float(s)
    if inverse:
        return (v2 - (1 - s) * v2_ref) / s, (v3 - (1 - s) * v3_ref) / s
    return s * v2 + (1 - s) * v2_ref, s * v3 + (1 - s) * v3_ref


def detector_to_world(x, y, header, distortion, filteroffset=None):
    """0-based pixel (x, y) of the exposure's array → (RA, Dec) deg, as assign_wcs does."""
    model = _distortion_model(distortion)
    ra_ref, dec_ref, roll_ref, v2_ref, v3_ref = _pointing(header)
    sx, sy = _detector_shift(header, filteroffset)
    v2, v3 = model(np.asarray(x, float) + sx, np.asarray(y, float) + sy)
    v2, v3 = _dva(v2, v3, header, v2_ref, v3_ref)
    return v2v3_to_sky(v2, v3, ra_ref, dec_ref, roll_ref, v2_ref, v3_ref)


def world_to_detector(ra, dec, header, distortion, filteroffset=None):
    """(RA, Dec) deg → 0-based pixel (x, y) of the exposure's array (exact inverse)."""
    model = _distortion_model(distortion)
    ra_ref, dec_ref, roll_ref, v2_ref, v3_ref = _pointing(header)
    v2, v3 = sky_to_v2v3(ra, dec, ra_ref, dec_ref, roll_ref, v2_ref, v3_ref)
    v2, v3 = _dva(v2, v3, header, v2_ref, v3_ref, inverse=True)
    sx, sy = _detector_shift(header, filteroffset)
    x, y = invert(model, v2, v3)
    return x - sx, y - sy
