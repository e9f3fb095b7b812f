"""srctype for WFSS: each slit is EXTENDED or POINT from the catalog's ``is_extended``.

jwst 3.0 ``srctype/srctype.py`` (spec image2_image3_wfss.md §4.6): for NRC_WFSS the
catalog flag decides; the ``source_type`` parameter exists but the WFSS branch ignores it.
"""

from __future__ import annotations

import logging

from webbcal.steps.base import Param, StepSpec

log = logging.getLogger("webbcal.steps.wfss.srctype")

SPEC = StepSpec(
    name="srctype",
    stage="spec2",
    status_key="S_SRCTYP",
    params=(
        Param("source_type", str, None, "User source type (POINT/EXTENDED); ignored for WFSS, as officially.",
              nullable=True, choices=("POINT", "EXTENDED")),
    ),
    doc="Set each slit's SRCTYPE from the catalog's is_extended flag.",
)


def apply(slits, params: dict) -> str:
    if params.get("source_type"):
        log.info("source_type=%s ignored: WFSS source types come from the catalog", params["source_type"])
    for slit in slits.slits:
        slit.source_type = "EXTENDED" if slit.is_extended else "POINT"
    slits.set_status(SPEC.status_key, "COMPLETE")
    return "COMPLETE"
