"""assign_wcs: the gwcs against the simulator's independent forward model and against the
official transform pieces (jwst ``assign_wcs.pointing``), S_REGION, SIP, bad pointing."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from webbcal.errors import WebbcalError
from webbcal.steps import assign_wcs
from webbcal.wcs.apertures import aperture
from webbcal.wcs.distortion import detector_to_v2v3_model, filteroffset_rows
from webbcal.wcs.pointing import detector_to_world

SHAPE = (120, 160)  # a small subarray: (ny, nx)


@pytest.fixture(scope="module")
def distortion():
    return detector_to_v2v3_model(aperture("NRCA1"))


def header(**extra) -> fits.Header:
    h = fits.Header()
    for key, value in {"DETECTOR": "NRCA1", "FILTER": "F200W", "PUPIL": "CLEAR", "EXP_TYPE": "NRC_IMAGE",
                       "RA_REF": 53.16, "DEC_REF": -27.79, "ROLL_REF": 71.3, "V2_REF": 120.6,
                       "V3_REF": -527.38, "V3I_YANG": -0.55, "VPARITY": -1, "VA_SCALE": 1.0,
                       "SUBSTRT1": 801, "SUBSTRT2": 1201, "SUBSIZE1": SHAPE[1], "SUBSIZE2": SHAPE[0],
                       **extra}.items():
        h[key] = value
    return h


@pytest.mark.parametrize("va_scale", [1.0, 1.00004])
def test_gwcs_reproduces_the_simulator_forward_model(distortion, va_scale):
    h = header(VA_SCALE=va_scale)
    rows = filteroffset_rows("SHORT")
    wcs = assign_wcs.imaging_wcs(h, distortion, rows, SHAPE)
    y, x = np.mgrid[-0.5:SHAPE[0]:7.0, -0.5:SHAPE[1]:9.0]
    ra, dec = wcs(x, y, with_bounding_box=False)
    ra0, dec0 = detector_to_world(x, y, h, distortion, rows)
    sep = np.hypot((ra - ra0) * np.cos(np.deg2rad(dec)), dec - dec0) * 3600 / 0.031
    assert sep.max() < 1e-6  # pixels
    # the filter offset and the subarray corner are both in the chain
    plain = assign_wcs.imaging_wcs(header(FILTER="F150W", SUBSTRT1=1, SUBSTRT2=1), distortion, rows, SHAPE)
    assert not np.allclose(plain(10.0, 10.0), wcs(10.0, 10.0), rtol=0, atol=1e-7)


def test_pieces_equal_the_official_transforms():
    from jwst.assign_wcs.pointing import _v23tosky, dva_corr_model

    v2 = np.array([100.0, 120.6, 140.3])
    v3 = np.array([-500.0, -527.38, -560.1])
    ours = assign_wcs.v2v3_to_sky(53.16, -27.79, 71.3, 120.6, -527.38)(v2, v3)
    theirs = _v23tosky(v2_ref=120.6 / 3600, v3_ref=-527.38 / 3600, roll_ref=71.3, ra_ref=53.16,
                       dec_ref=-27.79)(v2, v3)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12)
    ours = assign_wcs.velocity_aberration(1.00004, 120.6, -527.38)(v2, v3)
    theirs = dva_corr_model(1.00004, 120.6, -527.38)(v2, v3)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12)
    # reference point maps onto (RA_REF, DEC_REF)
    ra, dec = assign_wcs.v2v3_to_sky(53.16, -27.79, 71.3, 120.6, -527.38)(120.6, -527.38)
    assert (ra, dec) == pytest.approx((53.16, -27.79), abs=1e-12)


def test_s_region_and_sip_keywords(distortion):
    from webbcal.steps.image_model import CalImage

    h = header()
    image = CalImage(data=np.zeros(SHAPE, np.float32), err=np.zeros(SHAPE, np.float32),
                     dq=np.zeros(SHAPE, np.uint32), meta=h)

    class Ref:
        def __init__(self, tree):
            self.tree, self.path = tree, "ref"

    status = assign_wcs.apply(image, {"distortion": Ref({"model": distortion}),
                                      "filteroffset": Ref({"filters": filteroffset_rows("SHORT")})},
                              assign_wcs.SPEC.defaults())
    assert status == "COMPLETE"
    region = image.meta["S_REGION"]
    assert region.startswith("POLYGON ICRS  ")
    corners = np.array(region.split()[2:], float).reshape(4, 2)
    ny, nx = SHAPE
    expected = np.transpose(image.wcs([-0.5, -0.5, nx - 0.5, nx - 0.5], [-0.5, ny - 0.5, ny - 0.5, -0.5]))
    np.testing.assert_allclose(np.sort(corners, axis=0), np.sort(expected, axis=0), atol=1e-9)
    assert image.meta["CTYPE1"] == "RA---TAN-SIP" and 1 <= image.meta["A_ORDER"] <= 5
    assert image.meta["SIPMXERR"] <= 0.01
    from astropy.wcs import WCS

    sip = WCS(image.meta)
    y, x = np.mgrid[0:ny:10, 0:nx:10].astype(float)
    ra, dec = image.wcs(x, y)
    px, py = sip.all_world2pix(ra, dec, 0)
    assert np.max(np.hypot(px - x, py - y)) < 0.01


def test_missing_pointing_is_a_clear_error(distortion):
    h = header()
    del h["ROLL_REF"]
    with pytest.raises(WebbcalError, match="ROLL_REF missing"):
        assign_wcs.imaging_wcs(h, distortion, None, SHAPE, source="x_rate.fits")
