"""Pointing and distortion math shared by the simulator and the pipeline's assign_wcs.

* ``apertures``: approximate NIRCam detector placement in the V2/V3 frame (SIAF-like).
* ``distortion``: detector pixels → V2/V3 polynomial (an astropy compound model that is the
  ``model`` of a DISTORTION reference), FILTEROFFSET shifts, subarray shifts.
* ``pointing``: V2/V3 → sky (RotationSequence3D, spec image2_image3_wfss.md §2.3c),
  attitude helpers (PA_V3 from ROLL_REF), and ``detector_to_world`` / ``world_to_detector``.
* ``imaging``: the same chain as a ``gwcs.WCS`` (``imaging_wcs``), as assign_wcs builds it.
"""

from webbcal.wcs.distortion import (  # noqa: F401
    build_distortion_model,
    detector_to_v2v3_model,
    filter_offset_for,
)
from webbcal.wcs.imaging import imaging_wcs  # noqa: F401
from webbcal.wcs.pointing import (  # noqa: F401
    detector_to_world,
    sky_to_v2v3,
    v2v3_to_sky,
    v23tosky_model,
    world_to_detector,
)
