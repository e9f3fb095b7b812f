"""flat_field for NIRCam imaging: divide by the FLAT reference, propagate its error.

jwst 3.0 ``flatfield/flat_field.py::apply_flat_field`` (spec image2_image3_wfss.md §2.4):
flat pixels that are NaN or 0 get DO_NOT_USE|NO_FLAT_FIELD; NO_FLAT_FIELD implies
DO_NOT_USE; where the flat has DO_NOT_USE its value becomes 1 (no correction). Then
``SCI /= F``, ``VAR_FLAT = SCI² / F² · ERR_F²`` (with the corrected SCI, float32 as the
official code computes it), ``VAR_POISSON, VAR_RNOISE /= F²``,
``ERR = sqrt(VAR_POISSON + VAR_RNOISE + VAR_FLAT)``, ``DQ |= flat DQ`` and the NaN/DQ rule.
The reference arrives already cut to the exposure's subarray (``webbcal.refs.load``).
"""

from __future__ import annotations

import numpy as np

from webbcal import dqflags
from webbcal.errors import WebbcalError
from webbcal.steps.base import Param, StepSpec
from webbcal.steps.image_model import CalImage, match_nans_and_flags

SPEC = StepSpec(
    name="flat_field",
    stage="image2",
    status_key="S_FLAT",
    reftypes=("flat",),
    params=(
        Param("save_interpolated_flat", bool, False, "Save the interpolated flat (NIRSpec only; unused)."),
        Param("user_supplied_flat", str, None, "A flat field file to use instead of the reference.",
              nullable=True),
        Param("inverse", bool, False, "Multiply by the flat instead of dividing (undo the step)."),
    ),
    doc="Divide by the pixel-to-pixel flat field; add its error as VAR_FLAT.",
)

_BAD_FLAT = np.uint32(dqflags.DO_NOT_USE | dqflags.NO_FLAT_FIELD)


def prepare_flat(flat: np.ndarray, flat_dq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The flat and its DQ after the reference's invalid pixels are neutralised (copies)."""
    flat = np.array(flat, dtype=np.float32)
    flat_dq = np.array(flat_dq, dtype=np.uint32)
    flat_dq[np.isnan(flat) | (flat == 0.0)] |= _BAD_FLAT
    flat_dq[(flat_dq & np.uint32(dqflags.NO_FLAT_FIELD)) != 0] |= np.uint32(dqflags.DO_NOT_USE)
    flat[(flat_dq & np.uint32(dqflags.DO_NOT_USE)) != 0] = 1.0
    return flat, flat_dq


def apply_flat(image: CalImage, flat: np.ndarray, flat_err: np.ndarray | None,
               flat_dq: np.ndarray | None, inverse: bool = False) -> None:
    """Flat-field ``image`` in place (float32 arithmetic in the official order)."""
    if flat_err is None:
        flat_err = np.zeros(flat.shape, np.float32)
    if flat_dq is None:
        flat_dq = np.zeros(flat.shape, np.uint32)
    flat, flat_dq = prepare_flat(flat, flat_dq)
    flat_err = np.asarray(flat_err, dtype=np.float32)
    flat_sq = flat * flat
    if not inverse:
        image.data /= flat
        image.var_flat = image.data**2 / flat_sq * flat_err**2
    else:
        image.data *= flat
        image.var_flat = np.zeros_like(image.data)
    for name in ("var_poisson", "var_rnoise"):
        if getattr(image, name) is None:
            setattr(image, name, np.zeros_like(image.data))
    if not inverse:
        image.var_poisson /= flat_sq
        image.var_rnoise /= flat_sq
        image.err = np.sqrt(image.var_poisson + image.var_rnoise + image.var_flat)
    else:
        image.var_poisson *= flat_sq
        image.var_rnoise *= flat_sq
        image.err = np.sqrt(image.var_poisson + image.var_rnoise)
    image.dq |= flat_dq
    match_nans_and_flags(image)


def apply(image: CalImage, refs: dict, params: dict) -> str:
    flat = refs["flat"]
    sci = flat.arrays.get("SCI")
    if sci is None or np.ndim(sci) != 2:
        raise WebbcalError(flat.path, "flat reference has no 2-D SCI array")
    if np.shape(sci) != image.shape:
        raise WebbcalError(flat.path, f"flat is {np.shape(sci)[1]}x{np.shape(sci)[0]} pixels, "
                                      f"the exposure {image.shape[1]}x{image.shape[0]}")
    apply_flat(image, np.asarray(sci), flat.arrays.get("ERR"), flat.arrays.get("DQ"),
               inverse=params.get("inverse", False))
    return "COMPLETE"
