"""assign_wcs for NIRCam WFSS: the imaging WCS of the grism exposure plus its dispersion.

jwst 3.0 ``assign_wcs/nircam.py::wfss`` (spec image2_image3_wfss.md §4.2): the imaging
part is the §2.3 chain of the exposure itself (DISTORTION, FILTEROFFSET matched on
FILTER + PUPIL, pointing), kept as ``image.wcs`` (detector → world of the direct-image
position); the dispersion from the SPECWCS reference is ``image.grism`` (a
``webbcal.spec2.grism_wcs.GrismWcs``, evaluated for all sources at once by extract_2d).
DISPAXIS = 1 for GRISMR, 2 for GRISMC; SPECSYS = BARYCENT; the FITS SIP approximation
of the imaging WCS is written; S_REGION is left as it was (as officially for WFSS).
"""

from __future__ import annotations

import logging

from webbcal.errors import WebbcalError
from webbcal.spec2.grism_wcs import grism_wcs_from_specwcs
from webbcal.steps import assign_wcs as imaging
from webbcal.steps.base import StepSpec

log = logging.getLogger("webbcal.steps.wfss.assign_wcs")

SPEC = StepSpec(
    name="assign_wcs",
    stage="spec2",
    status_key="S_WCS",
    reftypes=("distortion", "filteroffset", "specwcs"),
    optional_reftypes=("filteroffset",),
    params=imaging.SPEC.params,
    doc="Attach the imaging gwcs and the grism dispersion (SPECWCS) of a WFSS exposure.",
)


def _model(reference, what: str):
    model = (getattr(reference, "tree", None) or {}).get("model")
    if model is None:
        raise WebbcalError(getattr(reference, "path", None), f"{what} reference has no 'model' transform")
    return model


def apply(image, refs: dict, params: dict) -> str:
    """Set ``image.wcs``, ``image.grism``, DISPAXIS/SPECSYS and the SIP keywords."""
    params = {**SPEC.defaults(), **(params or {})}
    exp_type = str(image.meta.get("EXP_TYPE", "")).strip().upper()
    if exp_type != "NRC_WFSS":
        raise WebbcalError(image.path, f"EXP_TYPE is {exp_type or 'missing'}, the WFSS assign_wcs needs NRC_WFSS")
    pupil = str(image.meta.get("PUPIL", "")).strip().upper()
    if "specwcs" not in refs or refs["specwcs"] is None:
        raise WebbcalError(image.path, "WFSS assign_wcs needs a specwcs reference")
    velosys = image.meta.get("VELOSYS")
    image.grism = grism_wcs_from_specwcs(refs["specwcs"], pupil,
                                         None if velosys is None else float(velosys),
                                         filter_name=image.meta.get("FILTER"))
    offsets = None
    if refs.get("filteroffset") is not None:
        offsets = (refs["filteroffset"].tree or {}).get("filters")
    distortion = _model(refs["distortion"], "distortion")
    image.wcs = imaging.imaging_wcs(image.meta, distortion, offsets, image.shape, source=image.path)
    image.meta["DISPAXIS"] = image.grism.dispaxis
    image.meta["SPECSYS"] = "BARYCENT"
    if params.get("sip_approx", True):
        imaging.update_fits_wcs(image.meta, image.wcs, params)
    log.info("%s dispersion, orders %s", pupil, ", ".join(map(str, image.grism.orders)))
    return "COMPLETE"
