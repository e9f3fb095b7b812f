"""The gwcs object of a NIRCam image, built like jwst 3.0 ``assign_wcs`` (spec §2.3).

``detector → v2v3 → v2v3vacorr → world`` with
``[Shift(SUBSTRT−1)] | [Shift(FILTEROFFSET)] | DISTORTION``, the DVA scale and
``v23tosky``. The same numbers as ``pointing.detector_to_world``, as a serialisable WCS.
"""

from __future__ import annotations

from astropy import coordinates as coord
from astropy import units as u
from astropy.modeling import models

from webbcal.wcs.distortion import filter_offset_for
from webbcal.wcs.pointing import _distortion_model, _pointing, v23tosky_model


def detector_to_v2v3_transform(header, distortion, filteroffset=None):
    """Subarray shift, filter offset and distortion as one astropy model."""
    model = _distortion_model(distortion)
    x0 = float(header.get("SUBSTRT1", 1)) - 1.0
    y0 = float(header.get("SUBSTRT2", 1)) - 1.0
    chain = model
    cx, cy = filter_offset_for(filteroffset, str(header.get("FILTER", "")), str(header.get("PUPIL", "CLEAR")))
    if cx or cy:
        chain = (models.Shift(cx) & models.Shift(cy)) | chain
    if x0 or y0:
        chain = (models.Shift(x0) & models.Shift(y0)) | chain
    return chain


def dva_model(header):
    """Velocity-aberration scale about (V2_REF, V3_REF); identity when VA_SCALE is 1/None."""
    s = header.get("VA_SCALE")
    v2_ref, v3_ref = float(header["V2_REF"]), float(header["V3_REF"])
    if s is None or float(s) == 1.0:
        return models.Identity(2)
    s = float(s)
    return ((models.Scale(s) | models.Shift((1 - s) * v2_ref))
            & (models.Scale(s) | models.Shift((1 - s) * v3_ref)))


def imaging_wcs(header, distortion, filteroffset=None, shape=None):
    """A ``gwcs.WCS`` for an exposure header (SUBSTRT, FILTER/PUPIL, pointing keywords)."""
    from gwcs import coordinate_frames as cf
    from gwcs.wcs import WCS

    ra_ref, dec_ref, roll_ref, v2_ref, v3_ref = _pointing(header)
    detector = cf.Frame2D(name="detector", axes_order=(0, 1), unit=(u.pix, u.pix))
    v2v3 = cf.Frame2D(name="v2v3", axes_order=(0, 1), axes_names=("v2", "v3"), unit=(u.arcsec, u.arcsec))
    v2v3va = cf.Frame2D(name="v2v3vacorr", axes_order=(0, 1), axes_names=("v2", "v3"),
                        unit=(u.arcsec, u.arcsec))
    world = cf.CelestialFrame(reference_frame=coord.ICRS(), name="world")
    wcs = WCS([(detector, detector_to_v2v3_transform(header, distortion, filteroffset)),
               (v2v3, dva_model(header)),
               (v2v3va, v23tosky_model(ra_ref, dec_ref, roll_ref, v2_ref, v3_ref)),
               (world, None)])
    if shape is None and "SUBSIZE1" in header:
        shape = (int(header["SUBSIZE2"]), int(header["SUBSIZE1"]))
    if shape is not None:
        ny, nx = shape
        wcs.bounding_box = ((-0.5, nx - 0.5), (-0.5, ny - 0.5))
    return wcs


__all__ = ["detector_to_v2v3_transform", "dva_model", "imaging_wcs"]
