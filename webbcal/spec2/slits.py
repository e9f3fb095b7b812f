"""The WFSS cut-outs: one ``GrismSlit`` per source and order, and the ``cal`` product.

``GrismSlits.to_product()`` gives the MultiSlitModel layout (spec image2_image3_wfss.md
§4.5, §4.8): per slit an EXTVER-numbered SCI, ERR, DQ, WAVELENGTH, VAR_POISSON,
VAR_RNOISE, VAR_FLAT (+ AREA on slit 1) whose SCI header carries SLTNAME, SLTSTRT1/2
(1-based), SLTSIZE1/2, SOURCEID, SRCXPOS/SRCYPOS, SRCRA/SRCDEC, SRCTYPE, SPORDER,
DISPAXIS, PHOTMJSR, ... and the ASDF tree holds each slit's gwcs and ``is_extended``.

Per-slit WCS. The official slit WCS is the exposure's grism gwcs with a leading
``grism_slit`` frame; it needs the stdatamodels grism transform classes, which webbcal
does not use. webbcal's slit gwcs is built from standard astropy models and gives the
same answer: ``wcs(x, y) -> (ra, dec, wavelength, order)`` for cut-out pixel (x, y), where
ra/dec are the source's (constant over the slit, as officially: the grism WCS returns the
direct-image position) and the wavelength is the trace's wavelength at the along-dispersion
pixel, tabulated at every pixel centre (``Tabular1D``, linear between centres, NaN beyond).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from astropy.io import fits

PLANES = ("data", "err", "dq", "var_poisson", "var_rnoise", "var_flat", "wavelength")
EXTNAMES = {"data": "SCI", "err": "ERR", "dq": "DQ", "var_poisson": "VAR_POISSON",
            "var_rnoise": "VAR_RNOISE", "var_flat": "VAR_FLAT", "wavelength": "WAVELENGTH"}


@dataclass
class GrismSlit:
    """One source's spectral order cut out of the grism image (arrays are its own copies)."""

    source_id: int
    order: int
    xstart: int  # 0-based corner of the cut-out in the full image
    ystart: int
    data: np.ndarray
    err: np.ndarray
    dq: np.ndarray
    var_poisson: np.ndarray | None
    var_rnoise: np.ndarray | None
    var_flat: np.ndarray | None
    wavelength: np.ndarray  # micron at every pixel centre (NaN: no wavelength)
    source_xpos: float  # direct-image position (0-based, the exposure's imaging frame)
    source_ypos: float
    source_ra: float
    source_dec: float
    is_extended: bool
    dispaxis: int
    source_type: str | None = None
    partial: bool = False
    keywords: dict = field(default_factory=dict)  # more SCI-header keywords (PHOTMJSR ...)
    area: np.ndarray | None = None
    bunit: str = "DN/s"
    wcs: object | None = None

    @property
    def name(self) -> str:
        return str(self.source_id)

    @property
    def shape(self) -> tuple[int, int]:
        return self.data.shape

    def sci_keywords(self) -> dict:
        ny, nx = self.shape
        cards = {
            "SLTNAME": self.name, "SLTSTRT1": self.xstart + 1, "SLTSTRT2": self.ystart + 1,
            "SLTSIZE1": nx, "SLTSIZE2": ny, "SOURCEID": int(self.source_id),
            "SRCXPOS": float(self.source_xpos), "SRCYPOS": float(self.source_ypos),
            "SRCRA": float(self.source_ra), "SRCDEC": float(self.source_dec),
            "SPORDER": int(self.order), "DISPAXIS": int(self.dispaxis), "BUNIT": self.bunit,
        }
        if self.source_type:
            cards["SRCTYPE"] = self.source_type
        cards.update(self.keywords)
        return cards


@dataclass
class GrismSlits:
    """All cut-outs of one exposure (in the official order) with the exposure's header."""

    meta: fits.Header
    slits: list[GrismSlit]
    tree: dict = field(default_factory=dict)  # exposure ASDF metadata other than the WCS

    def __len__(self) -> int:
        return len(self.slits)

    def set_status(self, key: str, status: str) -> None:
        self.meta[key] = status

    def to_product(self):
        """The MultiSlitModel Product (``write_product`` writes the ``cal`` file)."""
        from webbcal.io.product import Product

        meta = fits.Header(self.meta, copy=True)
        for key in ("BUNIT", "S_REGION"):  # per slit (S_REGION: first slit, as officially)
            meta.remove(key, ignore_missing=True, remove_all=True)
        arrays, ext_meta, slit_trees = {}, {}, []
        for number, slit in enumerate(self.slits, start=1):
            for attr, name in EXTNAMES.items():
                array = getattr(slit, attr)
                if array is not None:
                    arrays[f"{name},{number}"] = array
            if slit.area is not None:
                arrays[f"AREA,{number}"] = slit.area
            cards = slit.sci_keywords()
            if number == 1 and self.meta.get("S_REGION"):
                cards["S_REGION"] = self.meta["S_REGION"]
            ext_meta[f"SCI,{number}"] = cards
            ext_meta[f"ERR,{number}"] = {"BUNIT": slit.bunit}
            for name in ("VAR_POISSON", "VAR_RNOISE", "VAR_FLAT"):
                if f"{name},{number}" in arrays:
                    ext_meta[f"{name},{number}"] = {"BUNIT": f"({slit.bunit})**2"}
            ext_meta[f"WAVELENGTH,{number}"] = {"BUNIT": "um"}
            slit_tree = {"is_extended": bool(slit.is_extended)}
            if slit.wcs is not None:
                slit_tree["meta"] = {"wcs": slit.wcs}
            slit_trees.append(slit_tree)
        tree = {k: v for k, v in self.tree.items() if k != "slits"}
        tree["slits"] = slit_trees
        return Product(model="MultiSlitModel", meta=meta, arrays=arrays, ext_meta=ext_meta, tree=tree)


# --------------------------------------------------------------------------- per-slit WCS

def slit_wcs(slit: GrismSlit):
    """The slit's gwcs: cut-out (x, y) → (ra, dec, wavelength [micron], order)."""
    from astropy import coordinates as coord
    from astropy import units as u
    from astropy.modeling import bind_bounding_box
    from astropy.modeling.models import Const1D, Mapping, Tabular1D
    from gwcs import coordinate_frames as cf
    from gwcs.wcs import WCS

    ny, nx = slit.shape
    axis = 0 if slit.dispaxis == 1 else 1
    profile = slit.wavelength[0, :] if slit.dispaxis == 1 else slit.wavelength[:, 0]
    points = np.arange(profile.size, dtype=float)
    wavelength = Tabular1D(points=points, lookup_table=np.asarray(profile, dtype=float),
                           bounds_error=False, fill_value=np.nan, name="wavelength")
    transform = Mapping((0, 1, axis, 0), name="grism_slit_inputs") | (
        Const1D(slit.source_ra, name="source_ra") & Const1D(slit.source_dec, name="source_dec")
        & wavelength & Const1D(float(slit.order), name="spectral_order"))
    bind_bounding_box(transform, ((-0.5, nx - 0.5), (-0.5, ny - 0.5)), order="F")
    detector = cf.Frame2D(name="grism_slit", axes_order=(0, 1), axes_names=("x", "y"), unit=(u.pix, u.pix))
    sky = cf.CelestialFrame(reference_frame=coord.ICRS(), name="sky", axes_order=(0, 1))
    spectral = cf.SpectralFrame(name="spectral", axes_order=(2,), unit=(u.micron,), axes_names=("wavelength",))
    order = cf.CoordinateFrame(naxes=1, axes_type=("SPECTRAL",), axes_order=(3,), name="order",
                               unit=(u.dimensionless_unscaled,), axes_names=("spectral_order",))
    world = cf.CompositeFrame([sky, spectral, order], name="world")
    return WCS([(detector, transform), (world, None)])
