"""assign_wcs for NIRCam imaging: a gwcs detector → v2v3 → v2v3vacorr → world.

Built only from the DISTORTION reference (astropy model, full-frame pixels → V2/V3
arcsec), the FILTEROFFSET reference and the exposure's pointing keywords, as jwst 3.0
``assign_wcs/nircam.py::imaging`` does (spec image2_image3_wfss.md §2.3):

    detector --[subarray shift | filter offset | distortion]--> v2v3 (arcsec)
             --[DVA scale about (V2_REF, V3_REF)]--> v2v3vacorr
             --[unit sphere rotation zyxyz(V2_REF, −V3_REF, ROLL_REF, DEC_REF, −RA_REF)]--> world

Then S_REGION (footprint of the bounding-box edges) and the FITS SIP approximation
(``gwcs.WCS.to_fits_sip``, lowest degree 1–5 meeting ``sip_max_pix_error``) are written to
the header; the gwcs itself is the authoritative WCS and is stored in the ASDF extension.
"""

from __future__ import annotations

import copy
import logging

import numpy as np
from astropy import coordinates as coord
from astropy import units as u
from astropy.io import fits
from astropy.modeling import bind_bounding_box
from astropy.modeling.models import Identity, RotationSequence3D, Scale, Shift

from webbcal.errors import WebbcalError
from webbcal.steps.base import Param, StepSpec

log = logging.getLogger("webbcal.steps.assign_wcs")

SPEC = StepSpec(
    name="assign_wcs",
    stage="image2",
    status_key="S_WCS",
    reftypes=("distortion", "filteroffset"),
    optional_reftypes=("filteroffset",),
    params=(
        Param("sip_approx", bool, True, "Write the FITS SIP approximation of the WCS to the header."),
        Param("sip_max_pix_error", float, 0.01, "Maximum forward SIP fit error, pixels."),
        Param("sip_degree", int, None, "Forward SIP degree; null tries 1-5 and keeps the lowest that fits.",
              nullable=True, minimum=1),
        Param("sip_max_inv_pix_error", float, 0.01, "Maximum inverse SIP fit error, pixels."),
        Param("sip_inv_degree", int, None, "Inverse SIP degree; null tries 1-5.", nullable=True, minimum=1),
        Param("sip_npoints", int, 12, "Grid points per axis for the SIP fit.", minimum=3),
        Param("slit_y_low", float, -0.55, "Lower slit edge (NIRSpec only; unused for NIRCam)."),
        Param("slit_y_high", float, 0.55, "Upper slit edge (NIRSpec only; unused for NIRCam)."),
        Param("nrs_ifu_slice_wcs", bool, False, "NIRSpec IFU slice WCS (unused for NIRCam)."),
    ),
    doc="Attach a gwcs (detector -> world) from DISTORTION, FILTEROFFSET and the pointing.",
)

POINTING_KEYWORDS = ("RA_REF", "DEC_REF", "ROLL_REF", "V2_REF", "V3_REF")
MAX_SIP_DEGREE = 6  # degrees 1..5 are tried (jwst util._MAX_SIP_DEGREE)
# Keywords of an older FITS approximation, removed before the new one is written.
_OLD_FITS_WCS = ("CDELT1", "CDELT2", "PC1_1", "PC1_2", "PC2_1", "PC2_2", "CD1_1", "CD1_2",
                 "CD2_1", "CD2_2", "A_ORDER", "B_ORDER", "AP_ORDER", "BP_ORDER")


# --------------------------------------------------------------------------- the transform

def pointing(header, source=None) -> tuple[float, float, float, float, float]:
    """(RA_REF, DEC_REF, ROLL_REF, V2_REF, V3_REF); a clear error when any is missing."""
    missing = [k for k in POINTING_KEYWORDS if header.get(k) is None]
    if missing:
        raise WebbcalError(source, f"no pointing: keyword(s) {', '.join(missing)} missing, "
                                   "so no WCS can be built (was the file made from a real uncal?)")
    values = tuple(float(header[k]) for k in POINTING_KEYWORDS)
    if not all(np.isfinite(values)):
        given = dict(zip(POINTING_KEYWORDS, values))
        raise WebbcalError(source, f"pointing keywords are not finite: {given}")
    return values


def filter_offset(rows, filter_name: str, pupil: str) -> tuple[float, float] | None:
    """(column_offset, row_offset) of the FILTEROFFSET row for FILTER/PUPIL, or None."""
    for row in rows or ():
        if (str(row.get("filter", "")).upper() == filter_name.upper()
                and str(row.get("pupil", "")).upper() == pupil.upper()):
            col, rowoff = row.get("column_offset"), row.get("row_offset")
            if col is not None and rowoff is not None:
                return float(col), float(rowoff)
    return None


def detector_to_v2v3(header, distortion_model, filteroffset_rows, shape):
    """subarray shift | filter offset | DISTORTION, with the exposure's bounding box."""
    transform = copy.deepcopy(distortion_model)
    try:
        own_bbox = transform.bounding_box
    except NotImplementedError:
        own_bbox = None
    offset = filter_offset(filteroffset_rows, str(header.get("FILTER", "")), str(header.get("PUPIL", "")))
    if offset is not None:
        transform = Shift(offset[0]) & Shift(offset[1]) | transform
    xstart, ystart = int(header.get("SUBSTRT1", 1)), int(header.get("SUBSTRT2", 1))
    subarray = xstart != 1 or ystart != 1
    if subarray:
        transform = Shift(xstart - 1) & Shift(ystart - 1) | transform
    ny, nx = shape
    if own_bbox is not None and not subarray:
        bbox = own_bbox.bounding_box(order="F")  # the reference's own full-frame box
    else:
        bbox = ((-0.5, nx - 0.5), (-0.5, ny - 0.5))
    bind_bounding_box(transform, bbox, order="F")
    transform.name = "distortion"
    return transform


def velocity_aberration(va_scale, v2_ref: float, v3_ref: float):
    """DVA: scale (V2, V3) about the reference point; identity when VA_SCALE is 1 or absent."""
    if va_scale is None or float(va_scale) == 1.0:
        return Identity(2)
    s = float(va_scale)
    if s <= 0:
        raise WebbcalError("VA_SCALE", f"velocity aberration scale must be positive, got {s}")
    model = Scale(s, name="dva_scale_v2") & Scale(s, name="dva_scale_v3")
    if v2_ref or v3_ref:
        shift = Shift((1 - s) * v2_ref, name="dva_v2_shift") & Shift((1 - s) * v3_ref, name="dva_v3_shift")
        model = model | shift
    model.name = "DVA_Correction"
    return model


def v2v3_to_sky(ra_ref, dec_ref, roll_ref, v2_ref, v3_ref):
    """V2/V3 (arcsec) → RA/Dec (deg): rotation of the unit sphere (jwst ``_v23tosky``)."""
    from gwcs.geometry import CartesianToSpherical, SphericalToCartesian

    angles = [v2_ref / 3600.0, -v3_ref / 3600.0, roll_ref, dec_ref, -ra_ref]
    rotation = RotationSequence3D(angles, axes_order="zyxyz", name="det_to_optic_axis")
    model = (Scale(1 / 3600.0) & Scale(1 / 3600.0) | SphericalToCartesian(name="s2c", wrap_lon_at=180)
             | rotation | CartesianToSpherical(name="c2s", wrap_lon_at=360))
    model.name = "v23tosky"
    return model


def imaging_wcs(header, distortion_model, filteroffset_rows, shape, source=None):
    """The gwcs of a NIRCam imaging exposure of array ``shape`` (ny, nx)."""
    from gwcs import WCS
    from gwcs import coordinate_frames as cf

    ra_ref, dec_ref, roll_ref, v2_ref, v3_ref = pointing(header, source)
    detector = cf.Frame2D(name="detector", axes_order=(0, 1), unit=(u.pix, u.pix))
    v2v3 = cf.Frame2D(name="v2v3", axes_order=(0, 1), axes_names=("v2", "v3"), unit=(u.arcsec, u.arcsec))
    v2v3vacorr = cf.Frame2D(name="v2v3vacorr", axes_order=(0, 1), axes_names=("v2", "v3"),
                            unit=(u.arcsec, u.arcsec))
    world = cf.CelestialFrame(reference_frame=coord.ICRS(), name="world")
    pipeline = [
        (detector, detector_to_v2v3(header, distortion_model, filteroffset_rows, shape)),
        (v2v3, velocity_aberration(header.get("VA_SCALE"), v2_ref, v3_ref)),
        (v2v3vacorr, v2v3_to_sky(ra_ref, dec_ref, roll_ref, v2_ref, v3_ref)),
        (world, None),
    ]
    return WCS(pipeline)


# --------------------------------------------------------------------------- header products

def s_region(wcs) -> str | None:
    """``POLYGON ICRS  ra dec ...`` of the bounding-box corners (pixel edges); None if NaN."""
    footprint = wcs.footprint(center=False)
    if not np.all(np.isfinite(footprint)):
        return None
    return "POLYGON ICRS  " + " ".join(f"{ra % 360.0:.9f} {dec:.9f}" for ra, dec in footprint)


def sip_header(wcs, params: dict, crpix=None) -> fits.Header:
    """FITS TAN-SIP approximation of ``wcs`` (gwcs ``to_fits_sip``), NAXIS cards removed."""
    degree = params.get("sip_degree") or range(1, MAX_SIP_DEGREE)
    inv_degree = params.get("sip_inv_degree") or range(1, MAX_SIP_DEGREE)
    header = wcs.to_fits_sip(max_pix_error=params["sip_max_pix_error"], degree=degree,
                             max_inv_pix_error=params["sip_max_inv_pix_error"], inv_degree=inv_degree,
                             npoints=params["sip_npoints"], crpix=crpix, projection="TAN")
    for key in [k for k in header if k.startswith("NAXIS")]:
        del header[key]
    return header


def update_fits_wcs(meta: fits.Header, wcs, params: dict) -> fits.Header | None:
    """Replace the header's FITS WCS by the SIP approximation; keep the old one on failure."""
    crpix = None
    if meta.get("CRPIX1") is not None and meta.get("CRPIX2") is not None:
        crpix = [float(meta["CRPIX1"]), float(meta["CRPIX2"])]
    try:
        header = sip_header(wcs, params, crpix)
    except (ValueError, RuntimeError) as exc:
        log.warning("FITS SIP approximation failed (%s); header WCS left as is", exc)
        return None
    for key in list(meta.keys()):
        if key in _OLD_FITS_WCS or _is_sip_coefficient(key):
            del meta[key]
    for card in header.cards:
        value = card.value.item() if isinstance(card.value, np.generic) else card.value
        meta[card.keyword] = (value, card.comment)
    return header


def _is_sip_coefficient(key: str) -> bool:
    head, _, tail = key.partition("_")
    return head in ("A", "B", "AP", "BP") and tail.replace("_", "").isdigit()


# --------------------------------------------------------------------------- the step

def apply(image, refs: dict, params: dict) -> str:
    """Attach the gwcs, S_REGION and SIP keywords to ``image`` (a CalImage)."""
    distortion = refs["distortion"]
    model = (distortion.tree or {}).get("model")
    if model is None:
        raise WebbcalError(distortion.path, "distortion reference has no 'model' transform")
    if getattr(model, "n_inputs", 2) != 2 or getattr(model, "n_outputs", 2) != 2:
        raise WebbcalError(distortion.path, f"distortion model maps {model.n_inputs} → {model.n_outputs} "
                                            "coordinates, imaging needs 2 → 2")
    offsets = None
    if refs.get("filteroffset") is not None:
        offsets = (refs["filteroffset"].tree or {}).get("filters")
    image.wcs = imaging_wcs(image.meta, model, offsets, image.shape, source=image.path)
    region = s_region(image.wcs)
    if region is not None:
        image.meta["S_REGION"] = region
    if params.get("sip_approx", True):
        update_fits_wcs(image.meta, image.wcs, params)
    return "COMPLETE"
