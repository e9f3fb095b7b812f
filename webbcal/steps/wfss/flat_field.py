"""flat_field for WFSS: the imaging flat field on the whole dispersed image.

jwst 3.0 runs the same ``do_flat_field`` on the full 2-D grism exposure, before the
cut-outs (spec image2_image3_wfss.md §4.4); the FLAT is selected by DETECTOR, FILTER and
PUPIL, so a grism exposure gets its grism flat. The algorithm and its parameters are
those of ``webbcal.steps.flat_field``; only the stage differs.
"""

from __future__ import annotations

import dataclasses

from webbcal.steps import flat_field as imaging_flat_field

SPEC = dataclasses.replace(imaging_flat_field.SPEC, stage="spec2")


def apply(image, refs: dict, params: dict) -> str:
    """Flat-field the grism exposure in place (``webbcal.steps.flat_field.apply``)."""
    return imaging_flat_field.apply(image, refs, params)
