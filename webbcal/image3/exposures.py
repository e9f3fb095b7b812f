"""The members of an image3 association, held as file paths plus small metadata.

Image3 must handle dozens of full-frame exposures on a 24 GB machine, so the arrays of an
exposure are read only while a step works on it (``Exposure.load``) and dropped after.
What the steps change and later steps need (BKGLEVEL/BKGSUB, a corrected gwcs) is kept
here in memory, a few kilobytes per exposure; DQ changes (outlier_detection) are saved to
a file (the crf product) that then becomes the exposure's source.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.io import fits

from webbcal.errors import WebbcalError
from webbcal.resample.drizzler import group_id

log = logging.getLogger("webbcal.image3")

# Keywords every member must share for a single mosaic to make sense.
MUST_AGREE = ("INSTRUME", "FILTER", "PUPIL")


@dataclass
class Exposure:
    """One calibrated exposure of the association."""

    path: Path            # file holding its current arrays (the cal file, later its crf)
    name: str             # exposure root, e.g. jw01345001001_02101_00001_nrca1
    meta: fits.Header     # primary keywords, updated by the steps
    wcs: object           # gwcs, replaced by tweakreg
    shape: tuple[int, int]  # (ny, nx) of SCI
    bunit: str = "MJy/sr"
    source: Path | None = None   # the member file named in the association
    tree: dict = field(default_factory=dict)

    @property
    def group_id(self) -> str:
        return group_id(self.meta)

    def load(self):
        """The exposure's CalImage with this store's metadata and WCS (arrays in memory)."""
        from webbcal.io.product import read_product
        from webbcal.steps.image_model import CalImage

        # the WCS and metadata live here, so the file's ASDF tree need not be decoded again
        image = CalImage.from_product(read_product(self.path, expect="ImageModel", tree=False))
        image.meta = fits.Header(self.meta, copy=True)
        image.wcs = self.wcs
        image.tree = copy.deepcopy(self.tree)  # provenance and other metadata, WCS aside
        return image

    def science(self):
        """SCI (float32) and DQ (uint32) only, for steps that read nothing else (star
        finding, sky statistics): two of the seven planes of a cal file."""
        from webbcal.io.product import read_product

        product = read_product(self.path, expect="ImageModel", tree=False)
        data = np.array(product.arrays["SCI"], dtype=np.float32)
        dq = product.arrays.get("DQ")
        if dq is None:
            return data, np.zeros(data.shape, np.uint32)
        if np.shape(dq) != data.shape:
            raise WebbcalError(self.path, f"DQ is {np.shape(dq)}, SCI is {data.shape}")
        return data, np.array(dq, dtype=np.uint32)

    def sky_corners(self):
        """(ra, dec) of the corners of the WCS bounding box, through the current WCS."""
        from webbcal.image3.footprints import box_edges

        x, y = box_edges(self.wcs, self.shape, step=1e9)  # a step longer than any side
        ra, dec = self.wcs(x, y, with_bounding_box=False)
        return np.asarray(ra), np.asarray(dec)


def exposure_root(path: Path) -> str:
    stem = path.name.removesuffix(".fits")
    for suffix in ("_cal", "_crf"):
        if stem.endswith(suffix):
            return stem[: -len(suffix)]
    return stem


def open_exposure(path: Path, source=None) -> Exposure:
    """Header and WCS of a cal file; its arrays stay on disk."""
    from webbcal.io.product import read_product

    if not path.exists():
        raise WebbcalError(source or path, f"member {path.name} not found in {path.parent}")
    product = read_product(path, expect="ImageModel")
    sci = product.arrays.get("SCI")
    if sci is None or len(sci.shape) != 2:
        raise WebbcalError(path, "needs a 2-D SCI image (a cal file)")
    meta_tree = dict((product.tree or {}).get("meta") or {})
    wcs = meta_tree.pop("wcs", None)
    if wcs is None:
        raise WebbcalError(path, "has no WCS (ASDF meta.wcs); run image2 (assign_wcs) first")
    bunit = (product.ext_meta.get("SCI") or {}).get("BUNIT", "MJy/sr")
    tree = {k: v for k, v in (product.tree or {}).items() if k != "meta"}
    tree["meta"] = meta_tree
    return Exposure(path=path, name=exposure_root(path), meta=fits.Header(product.meta, copy=True),
                    wcs=wcs, shape=tuple(sci.shape), bunit=bunit, source=path, tree=tree)


def check_compatible(exposures: list[Exposure], source) -> None:
    """One instrument, filter and pupil; surface brightness units; one shape per detector."""
    if not exposures:
        raise WebbcalError(source, "association has no science members")
    first = exposures[0]
    for exposure in exposures[1:]:
        for key in MUST_AGREE:
            a, b = str(first.meta.get(key, "")).strip(), str(exposure.meta.get(key, "")).strip()
            if a.upper() != b.upper():
                raise WebbcalError(source, f"members differ in {key}: {first.path.name} has {a!r}, "
                                           f"{exposure.path.name} has {b!r}")
    for exposure in exposures:
        if exposure.bunit.replace(" ", "").lower() != "mjy/sr":
            raise WebbcalError(exposure.path, f"SCI is in {exposure.bunit!r}, image3 needs MJy/sr "
                                              "(run photom in image2)")


def groups(exposures: list[Exposure]) -> dict[str, list[int]]:
    """Indices of the exposures of each exposure group (all detectors of one pointing), in order."""
    out: dict[str, list[int]] = {}
    for index, exposure in enumerate(exposures):
        out.setdefault(exposure.group_id, []).append(index)
    return out
