"""Distortion, filter offsets and V2V3 -> sky: exactness and agreement with jwst."""

import numpy as np
import pytest
from astropy.io import fits

from webbcal.wcs.apertures import aperture
from webbcal.wcs.distortion import detector_to_v2v3_model, filteroffset_rows, invert, pixel_area_map
from webbcal.wcs.pointing import (
    detector_to_world, pa_v3, sky_to_v2v3, v23tosky_model, v2v3_to_sky, world_to_detector)

ATT = (53.16, -27.79, 71.3)


@pytest.fixture(scope="module")
def a1():
    ap = aperture("NRCA1")
    return ap, detector_to_v2v3_model(ap)


def _header(ap, v2, v3, **extra):
    h = fits.Header()
    values = dict(RA_REF=ATT[0], DEC_REF=ATT[1], ROLL_REF=ATT[2], V2_REF=v2, V3_REF=v3,
                  SUBSTRT1=1, SUBSTRT2=1, FILTER="F150W", PUPIL="CLEAR")
    values.update(extra)
    for k, v in values.items():
        h[k] = v
    return h


def test_reference_point_maps_exactly_to_ra_dec_ref(a1):
    ap, _ = a1
    ra, dec = v2v3_to_sky(ap.v2_ref, ap.v3_ref, *ATT, ap.v2_ref, ap.v3_ref)
    assert abs(ra - ATT[0]) < 1e-12 and abs(dec - ATT[1]) < 1e-12
    m = v23tosky_model(*ATT, ap.v2_ref, ap.v3_ref)
    ra2, dec2 = m(ap.v2_ref, ap.v3_ref)
    assert abs(ra2 - ATT[0]) < 1e-10 and abs(dec2 - ATT[1]) < 1e-10


def test_v23tosky_agrees_with_jwst_and_inverts(a1):
    from jwst.assign_wcs.pointing import _v23tosky

    ap, model = a1
    x, y = np.meshgrid(np.linspace(0, 2047, 7), np.linspace(0, 2047, 7))
    v2, v3 = model(x.ravel(), y.ravel())
    official = _v23tosky(ap.v2_ref / 3600, ap.v3_ref / 3600, ATT[2], ATT[0], ATT[1])
    ra_o, dec_o = official(v2, v3)
    ra, dec = v2v3_to_sky(v2, v3, *ATT, ap.v2_ref, ap.v3_ref)
    assert np.max(np.abs(ra - ra_o)) * 3600e3 < 1e-6  # < 1 nano-arcsec
    assert np.max(np.abs(dec - dec_o)) * 3600e3 < 1e-6
    v2b, v3b = sky_to_v2v3(ra, dec, *ATT, ap.v2_ref, ap.v3_ref)
    assert np.max(np.hypot(v2b - v2, v3b - v3)) < 1e-8


def test_roll_ref_is_the_v3_position_angle_at_the_reference_point(a1):
    from webbcal.wcs.pointing import position_angle

    ap, _ = a1
    ra0, dec0 = v2v3_to_sky(ap.v2_ref, ap.v3_ref, *ATT, ap.v2_ref, ap.v3_ref)
    ra1, dec1 = v2v3_to_sky(ap.v2_ref, ap.v3_ref + 1.0, *ATT, ap.v2_ref, ap.v3_ref)
    assert position_angle(ra0, dec0, ra1, dec1) == pytest.approx(ATT[2], abs=1e-6)
    # PA_V3 differs from ROLL_REF by the V3 convergence over ~9 arcmin: well below a degree
    assert abs(pa_v3(*ATT, ap.v2_ref, ap.v3_ref) - ATT[2]) < 0.5


def test_distortion_is_realistic_and_inverse_is_exact(a1):
    ap, model = a1
    assert model(1023.5, 1023.5) == pytest.approx((ap.v2_ref, ap.v3_ref), abs=1e-9)
    corners = np.array([[0, 0], [2047, 0], [0, 2047], [2047, 2047]], float)
    v2, v3 = model(corners[:, 0], corners[:, 1])
    # departure from the linear (scale + rotation) map at the corners: a few pixels
    r_lin = np.hypot(corners[:, 0] - 1023.5, corners[:, 1] - 1023.5)
    r_sky = np.hypot(v2 - ap.v2_ref, v3 - ap.v3_ref) / ap.scale
    assert 1.0 < np.max(np.abs(r_sky - r_lin)) < 10.0
    xa, ya = model.inverse(v2, v3)
    assert np.max(np.hypot(xa - corners[:, 0], ya - corners[:, 1])) < 1e-3  # fitted inverse
    xb, yb = invert(model, v2, v3)
    assert np.max(np.hypot(xb - corners[:, 0], yb - corners[:, 1])) < 1e-8  # Newton-refined
    area = pixel_area_map(model, (64, 64))
    assert 0.98 < area.min() <= area.max() < 1.02


def test_detector_world_round_trip_with_subarray_and_filter_offset(a1):
    ap, model = a1
    rows = filteroffset_rows("SHORT")
    h = _header(ap, ap.v2_ref, ap.v3_ref, SUBSTRT1=101, SUBSTRT2=51, FILTER="F200W")
    x, y = np.array([0.0, 10.3, 300.7]), np.array([0.0, 20.1, 500.2])
    ra, dec = detector_to_world(x, y, h, model, rows)
    xb, yb = world_to_detector(ra, dec, h, model, rows)
    assert np.max(np.hypot(xb - x, yb - y)) < 1e-7
    # the subarray pixel (x, y) is full-frame (x+100, y+50) shifted by the F200W offset
    col, row = next((r["column_offset"], r["row_offset"]) for r in rows if r["filter"] == "F200W")
    v2, v3 = model(x + 100 + col, y + 50 + row)
    ra2, dec2 = v2v3_to_sky(v2, v3, *ATT, ap.v2_ref, ap.v3_ref)
    assert np.max(np.abs(ra2 - ra)) < 1e-12 and np.max(np.abs(dec2 - dec)) < 1e-12
