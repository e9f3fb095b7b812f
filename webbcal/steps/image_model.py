"""A calibrated 2-D image in memory, threaded through the Image2 steps.

``CalImage`` holds the arrays of an ImageModel (SCI, ERR, DQ, VAR_POISSON, VAR_RNOISE,
VAR_FLAT, AREA), its header keywords and its gwcs. Steps update it in place. It converts
from and to ``webbcal.io.Product`` (``from_product`` / ``to_product``), so files are only
touched by the pipeline.

``match_nans_and_flags`` is the one implementation of the NaN/DQ consistency rule
(spec image2_image3_wfss.md §0.3), called after flat_field and photom and before resample.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.io import fits

from webbcal import dqflags
from webbcal.errors import WebbcalError

# Float planes in the order the NaN rule and the writer visit them.
FLOAT_PLANES = ("data", "err", "var_poisson", "var_rnoise", "var_flat")
_EXTNAMES = {"data": "SCI", "err": "ERR", "dq": "DQ", "area": "AREA",
             "var_poisson": "VAR_POISSON", "var_rnoise": "VAR_RNOISE", "var_flat": "VAR_FLAT"}


@dataclass
class CalImage:
    """One exposure's 2-D image (rate → cal). Arrays are native-endian, writable."""

    data: np.ndarray
    err: np.ndarray
    dq: np.ndarray
    meta: fits.Header
    var_poisson: np.ndarray | None = None
    var_rnoise: np.ndarray | None = None
    var_flat: np.ndarray | None = None
    area: np.ndarray | None = None
    wcs: object | None = None          # gwcs.WCS once assign_wcs has run
    grism: object | None = None        # webbcal.spec2.grism_wcs.GrismWcs (WFSS assign_wcs)
    tree: dict = field(default_factory=dict)   # ASDF metadata other than the WCS
    bunit: str = "DN/s"
    path: Path | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return self.data.shape

    def set_status(self, key: str, status: str) -> None:
        self.meta[key] = status

    @classmethod
    def from_product(cls, product) -> "CalImage":
        """A rate/cal ImageModel Product → CalImage (float32/uint32 copies in memory)."""
        path = product.path
        sci = product.arrays.get("SCI")
        if sci is None or np.ndim(sci) != 2:
            shape = None if sci is None else np.shape(sci)
            raise WebbcalError(path, f"needs a 2-D SCI image (rate or cal), got {shape}")
        shape = np.shape(sci)

        def plane(name, dtype, default=None):
            array = product.arrays.get(name)
            if array is None:
                return default
            if np.shape(array) != shape:
                raise WebbcalError(path, f"{name} is {np.shape(array)}, SCI is {shape}")
            return np.array(array, dtype=dtype)

        data = plane("SCI", np.float32)
        err = plane("ERR", np.float32, np.zeros(shape, np.float32))
        dq = plane("DQ", np.uint32, np.zeros(shape, np.uint32))
        tree = {k: v for k, v in (product.tree or {}).items()}
        meta_tree = dict(tree.get("meta") or {})
        wcs = meta_tree.pop("wcs", None)
        tree["meta"] = meta_tree
        bunit = (product.ext_meta.get("SCI") or {}).get("BUNIT", "DN/s")
        return cls(data=data, err=err, dq=dq, meta=fits.Header(product.meta, copy=True),
                   var_poisson=plane("VAR_POISSON", np.float32),
                   var_rnoise=plane("VAR_RNOISE", np.float32),
                   var_flat=plane("VAR_FLAT", np.float32),
                   area=plane("AREA", np.float32), wcs=wcs, tree=tree, bunit=bunit, path=path)

    def to_product(self, model: str = "ImageModel"):
        """The ImageModel Product of this image (gwcs at ``tree['meta']['wcs']``)."""
        from webbcal.io.product import Product

        arrays, ext_meta = {}, {}
        for attr, name in _EXTNAMES.items():
            array = getattr(self, attr)
            if array is not None:
                arrays[name] = array
        for name in ("SCI", "ERR"):
            ext_meta[name] = {"BUNIT": self.bunit}
        for name in ("VAR_POISSON", "VAR_RNOISE", "VAR_FLAT"):
            if name in arrays:
                ext_meta[name] = {"BUNIT": f"({self.bunit})**2"}
        tree = {k: v for k, v in self.tree.items()}
        meta_tree = dict(tree.get("meta") or {})
        if self.wcs is not None:
            meta_tree["wcs"] = self.wcs
        if meta_tree:
            tree["meta"] = meta_tree
        else:
            tree.pop("meta", None)
        return Product(model=model, meta=fits.Header(self.meta, copy=True), arrays=arrays,
                       ext_meta=ext_meta, tree=tree)


def match_nans_and_flags(image: CalImage) -> None:
    """Make NaN and DO_NOT_USE agree (jwst ``pipe_utils.match_nans_and_flags``).

    A pixel is invalid when any float plane is NaN or DQ has DO_NOT_USE; invalid pixels
    get DO_NOT_USE in DQ and NaN in every float plane.
    """
    invalid = (image.dq & np.uint32(dqflags.DO_NOT_USE)) != 0
    for name in FLOAT_PLANES:
        array = getattr(image, name)
        if array is not None and array.shape == image.shape:
            invalid |= np.isnan(array)
    image.dq[invalid] |= np.uint32(dqflags.DO_NOT_USE)
    for name in FLOAT_PLANES:
        array = getattr(image, name)
        if array is not None and array.shape == image.shape:
            array[invalid] = np.nan
