"""What each DMS model class holds: its extensions, their dtypes, ranks and BUNIT.

Derived from the stdatamodels 6.0 schemas (``level1b``, ``ramp``, ``image``, ``cube``,
``segmap``, ``multislit``/``slitdata``, ``wfss_multispec``/``wfss_spectable``, ``group``,
``int_times``, ``bunit``, ``variance``). ``write_product`` uses a layout to cast arrays to
the schema dtype and order the HDUs; ``read_product`` uses it to validate what it read.
Reference-file models are added from ``webbcal.refs`` with ``register_layout``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from webbcal.errors import WebbcalError


@dataclass(frozen=True)
class Extension:
    """One HDU of a model: an image (``dtype``, ``ndim``) or a table (``columns``)."""

    name: str
    dtype: str | None = None  # schema dtype of an image; None for tables
    ndim: tuple[int, ...] = ()  # allowed ranks of an image
    required: bool = False
    bunit: bool = False  # carries BUNIT in its own header (SCI, ERR)
    columns: tuple[tuple[str, str], ...] = ()  # exact schema columns of a table (name, dtype)
    per_slit: bool = False  # repeated with EXTVER 1..N (MultiSlitModel, WFSSMultiSpecModel)
    units: tuple[tuple[str, str], ...] = ()  # default TUNITn of table columns (name, unit)
    # For tables whose column shapes vary (EXTRACT1D vectors): the schema dtype of a table.
    dtype_for: Callable[[np.ndarray], np.dtype] | None = None

    @property
    def is_table(self) -> bool:
        return self.dtype is None

    def table_dtype(self, table: np.ndarray | None = None) -> np.dtype:
        """The schema dtype a table is written with (``table`` gives vector lengths)."""
        if self.dtype_for is not None and table is not None:
            return self.dtype_for(table)
        return np.dtype([(name, dt) for name, dt in self.columns])


# A model-specific consistency check: returns a one-line problem or None.
Check = Callable[["object"], "str | None"]


@dataclass(frozen=True)
class Layout:
    model: str
    extensions: tuple[Extension, ...]
    checks: tuple[Check, ...] = field(default=())

    def extension(self, name: str) -> Extension | None:
        for ext in self.extensions:
            if ext.name == name:
                return ext
        return None

    @property
    def per_slit(self) -> bool:
        """True when the model stores numbered sets of extensions (``SCI,1``, ``SCI,2`` ...)."""
        return any(ext.per_slit for ext in self.extensions)


# --- keywords the schemas put in the SCI header, not PRIMARY ---------------------------
# core.schema (times, ephemeris, SRCTYPE), wcsinfo.schema, photometry.schema. webbcal keeps
# them in Product.meta like every other keyword; the writer moves them to SCI.
_SCI_HEADER_PATTERN = re.compile(
    r"^(SRCTYPE|MJD-(BEG|AVG|END)|TDB-(BEG|MID|END)|XPOSURE|TELAPSE|REFFRAME|EPH_TYPE|EPH_TIME"
    r"|JWST_[XYZ]|JWST_D[XYZ]|OBSGEO-[XYZ]|OBSGEOD[XYZ]"
    r"|RADESYS|PA_APER|RA_V1|DEC_V1|PA_V3|VA_SCALE|WCSAXES|CRPIX[123]|CRVAL[123]|CTYPE[123]"
    r"|CUNIT[123]|CDELT[123]|PC[123]_[123]|CD[12]_[12]|PS3_[01]|S_REGION|WAVSTART|WAVEND"
    r"|DISPAXIS|SPORDER|V2_REF|V3_REF|VPARITY|V3I_YANG|RA_REF|DEC_REF|ROLL_REF|VELOSYS|SPECSYS"
    r"|XREF_SCI|YREF_SCI|MT_RA|MT_DEC|MT_AVRA|MT_AVDEC|A_ORDER|B_ORDER|AP_ORDER|BP_ORDER"
    r"|(A|B|AP|BP)_\d_\d|PHOTMJSR|PHOTUJA2|PIXAR_SR|PIXAR_A2)$"
)


def is_sci_header_keyword(key: str) -> bool:
    """True for keywords the stdatamodels schemas read from the SCI header (not PRIMARY)."""
    return bool(_SCI_HEADER_PATTERN.match(key))


# --- schema tables -------------------------------------------------------------------

GROUP_COLUMNS = (
    ("integration_number", "i4"),
    ("group_number", "i2"),
    ("end_day", "i2"),
    ("end_milliseconds", "i4"),
    ("end_submilliseconds", "i2"),
    ("group_end_time", "S26"),
    ("number_of_columns", "i2"),
    ("number_of_rows", "i2"),
    ("number_of_gaps", "i2"),
    ("completion_code_number", "i2"),
    ("completion_code_text", "S36"),
    ("bary_end_time", "f8"),
    ("helio_end_time", "f8"),
)

INT_TIMES_COLUMNS = (
    ("integration_number", "i4"),
    ("int_start_MJD_UTC", "f8"),
    ("int_mid_MJD_UTC", "f8"),
    ("int_end_MJD_UTC", "f8"),
    ("int_start_BJD_TDB", "f8"),
    ("int_mid_BJD_TDB", "f8"),
    ("int_end_BJD_TDB", "f8"),
)

# wfss_spectable.schema.yaml: one row per source, vector columns padded to the longest spectrum.
WFSS_SPECTABLE_SCALARS = (
    ("SOURCE_ID", "i4"),
    ("N_ALONGDISP", "u4"),
    ("SOURCE_TYPE", "S20"),
    ("SOURCE_XPOS", "f8"),
    ("SOURCE_YPOS", "f8"),
    ("SOURCE_RA", "f8"),
    ("SOURCE_DEC", "f8"),
    ("EXTRACT2D_XSTART", "u4"),
    ("EXTRACT2D_YSTART", "u4"),
    ("EXTRACT2D_XSTOP", "u4"),
    ("EXTRACT2D_YSTOP", "u4"),
)
WFSS_SPECTABLE_VECTORS = (
    ("WAVELENGTH", "f8"),
    ("FLUX", "f8"),
    ("FLUX_ERROR", "f8"),
    ("FLUX_VAR_POISSON", "f8"),
    ("FLUX_VAR_RNOISE", "f8"),
    ("FLUX_VAR_FLAT", "f8"),
    ("SURF_BRIGHT", "f8"),
    ("SB_ERROR", "f8"),
    ("SB_VAR_POISSON", "f8"),
    ("SB_VAR_RNOISE", "f8"),
    ("SB_VAR_FLAT", "f8"),
    ("DQ", "u4"),
    ("BACKGROUND", "f8"),
    ("BKGD_ERROR", "f8"),
    ("BKGD_VAR_POISSON", "f8"),
    ("BKGD_VAR_RNOISE", "f8"),
    ("BKGD_VAR_FLAT", "f8"),
    ("NPIXELS", "f8"),
)
# Column order of the schema (scalars and vectors interleaved as in wfss_spectable).
WFSS_SPECTABLE_ORDER = (
    "SOURCE_ID", "WAVELENGTH", "FLUX", "FLUX_ERROR", "FLUX_VAR_POISSON", "FLUX_VAR_RNOISE",
    "FLUX_VAR_FLAT", "SURF_BRIGHT", "SB_ERROR", "SB_VAR_POISSON", "SB_VAR_RNOISE",
    "SB_VAR_FLAT", "DQ", "BACKGROUND", "BKGD_ERROR", "BKGD_VAR_POISSON", "BKGD_VAR_RNOISE",
    "BKGD_VAR_FLAT", "NPIXELS", "N_ALONGDISP", "SOURCE_TYPE", "SOURCE_XPOS", "SOURCE_YPOS",
    "SOURCE_RA", "SOURCE_DEC", "EXTRACT2D_XSTART", "EXTRACT2D_YSTART", "EXTRACT2D_XSTOP",
    "EXTRACT2D_YSTOP",
)


def wfss_spectable_dtype(n_elements: int) -> np.dtype:
    """The EXTRACT1D row dtype for spectra padded to ``n_elements`` samples."""
    kinds = dict(WFSS_SPECTABLE_SCALARS)
    vectors = dict(WFSS_SPECTABLE_VECTORS)
    fields = []
    for name in WFSS_SPECTABLE_ORDER:
        if name in vectors:
            fields.append((name, vectors[name], (n_elements,)))
        else:
            fields.append((name, kinds[name]))
    return np.dtype(fields)


def _vector_length(table: np.ndarray) -> int:
    shape = table.dtype.fields["WAVELENGTH"][0].shape if "WAVELENGTH" in (table.dtype.names or ()) else ()
    return int(shape[0]) if shape else 1


_VARIANCES = ("VAR_POISSON", "VAR_RNOISE", "VAR_FLAT")


# --- consistency checks ----------------------------------------------------------------


def _ramp_shape_matches_header(product) -> str | None:
    """SCI of uncal/ramp must be (NINTS, NGROUPS, ny, nx) when the header gives them."""
    sci = product.arrays.get("SCI")
    if sci is None or len(sci.shape) != 4:
        return None
    for axis, key in ((0, "NINTS"), (1, "NGROUPS")):
        value = product.meta.get(key)
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            # Segmented exposures hold INTSTART..INTEND of NINTS integrations.
            if key == "NINTS" and _segment_length(product.meta) is not None:
                value = _segment_length(product.meta)
            if sci.shape[axis] != value:
                return f"SCI shape {tuple(sci.shape)} disagrees with {key}={value}"
    return None


def _segment_length(meta) -> int | None:
    start, end = meta.get("INTSTART"), meta.get("INTEND")
    if isinstance(start, (int, np.integer)) and isinstance(end, (int, np.integer)) and end >= start:
        return int(end - start + 1)
    return None


def _planes_match_sci(*names: str) -> Check:
    """Images that must have the same shape as SCI (ERR, DQ, variances)."""

    def check(product) -> str | None:
        sci = product.arrays.get("SCI")
        if sci is None:
            return None
        for name in names:
            arr = product.arrays.get(name)
            if arr is not None and tuple(arr.shape) != tuple(sci.shape):
                return f"{name} shape {tuple(arr.shape)} differs from SCI shape {tuple(sci.shape)}"
        return None

    return check


def _pixeldq_matches_frame(product) -> str | None:
    sci, pdq = product.arrays.get("SCI"), product.arrays.get("PIXELDQ")
    if sci is None or pdq is None or len(sci.shape) != 4:
        return None
    if tuple(pdq.shape) != tuple(sci.shape[-2:]):
        return f"PIXELDQ shape {tuple(pdq.shape)} differs from the SCI frame {tuple(sci.shape[-2:])}"
    gdq = product.arrays.get("GROUPDQ")
    if gdq is not None and tuple(gdq.shape) != tuple(sci.shape):
        return f"GROUPDQ shape {tuple(gdq.shape)} differs from SCI shape {tuple(sci.shape)}"
    return None


def _slit_planes_match_sci(product) -> str | None:
    """Within each numbered slit, ERR/DQ/WAVELENGTH/variances have the SCI cut-out's shape."""
    for key, sci in product.arrays.items():
        name, _, ver = key.partition(",")
        if name != "SCI" or not ver:
            continue
        for other in ("ERR", "DQ", "WAVELENGTH", *_VARIANCES):
            arr = product.arrays.get(f"{other},{ver}")
            if arr is not None and tuple(arr.shape) != tuple(sci.shape):
                return f"{other},{ver} shape {tuple(arr.shape)} differs from SCI,{ver} shape {tuple(sci.shape)}"
    return None


# --- the layouts ---------------------------------------------------------------------


def _image_planes(ndim: int, *, required_err_dq: bool) -> tuple[Extension, ...]:
    return (
        Extension("SCI", "float32", (ndim,), required=True, bunit=True),
        Extension("ERR", "float32", (ndim,), required=required_err_dq, bunit=True),
        Extension("DQ", "uint32", (ndim,), required=required_err_dq),
        Extension("AREA", "float32", (2,)),
        *(Extension(name, "float32", (ndim,)) for name in _VARIANCES),
    )


LEVEL1B = Layout(
    "Level1bModel",
    (
        Extension("SCI", "uint16", (4,), required=True, bunit=True),
        Extension("ZEROFRAME", "uint16", (3,)),
        Extension("REFOUT", "uint16", (4,)),
        Extension("GROUP", columns=GROUP_COLUMNS),
        Extension("INT_TIMES", columns=INT_TIMES_COLUMNS),
    ),
    checks=(_ramp_shape_matches_header,),
)

RAMP = Layout(
    "RampModel",
    (
        Extension("SCI", "float32", (4,), required=True, bunit=True),
        Extension("PIXELDQ", "uint32", (2,), required=True),
        Extension("GROUPDQ", "uint8", (4,), required=True),
        Extension("ZEROFRAME", "float32", (3,)),
        Extension("AVDRKCUR", "float32", (2,)),
        Extension("REFOUT", "float32", (4,)),
        Extension("GROUP", columns=GROUP_COLUMNS),
        Extension("INT_TIMES", columns=INT_TIMES_COLUMNS),
    ),
    checks=(_ramp_shape_matches_header, _pixeldq_matches_frame),
)

IMAGE = Layout(
    "ImageModel",
    (
        *_image_planes(2, required_err_dq=False),
        # i2d (resample): context bits, weights
        Extension("CON", "int32", (3,)),
        Extension("WHT", "float32", (2,)),
    ),
    checks=(_planes_match_sci("ERR", "DQ", "WHT", *_VARIANCES),),
)

CUBE = Layout(
    "CubeModel",
    (
        *_image_planes(3, required_err_dq=False),
        Extension("INT_TIMES", columns=INT_TIMES_COLUMNS),
    ),
    checks=(_planes_match_sci("ERR", "DQ", *_VARIANCES),),
)

SEGMAP = Layout(
    "SegmentationMapModel",
    (Extension("SCI", "uint32", (2,), required=True),),
)

MULTISLIT = Layout(
    "MultiSlitModel",
    (
        Extension("SCI", "float32", (2, 3), required=True, bunit=True, per_slit=True),
        Extension("ERR", "float32", (2, 3), bunit=True, per_slit=True),
        Extension("DQ", "uint32", (2, 3), per_slit=True),
        Extension("WAVELENGTH", "float32", (2,), per_slit=True),
        *(Extension(name, "float32", (2, 3), per_slit=True) for name in _VARIANCES),
        Extension("AREA", "float32", (2,), per_slit=True),
        Extension("BARSHADOW", "float32", (2,), per_slit=True),
        Extension("PATHLOSS_PS", "float32", (2,), per_slit=True),
        Extension("PATHLOSS_UN", "float32", (2,), per_slit=True),
    ),
    checks=(_slit_planes_match_sci,),
)

# Units of a calibrated (photom applied) WFSS spectrum, as jwst 3.0 extract_1d writes them,
# plus the schema's own units of the metadata columns.
WFSS_SPECTABLE_UNITS = (
    ("WAVELENGTH", "um"), ("FLUX", "Jy"), ("FLUX_ERROR", "Jy"),
    ("FLUX_VAR_POISSON", "Jy^2"), ("FLUX_VAR_RNOISE", "Jy^2"), ("FLUX_VAR_FLAT", "Jy^2"),
    ("SURF_BRIGHT", "MJy/sr"), ("SB_ERROR", "MJy/sr"),
    ("SB_VAR_POISSON", "MJy^2 / sr^2"), ("SB_VAR_RNOISE", "MJy^2 / sr^2"), ("SB_VAR_FLAT", "MJy^2 / sr^2"),
    ("BACKGROUND", "MJy/sr"), ("BKGD_ERROR", "MJy/sr"),
    ("BKGD_VAR_POISSON", "MJy^2 / sr^2"), ("BKGD_VAR_RNOISE", "MJy^2 / sr^2"), ("BKGD_VAR_FLAT", "MJy^2 / sr^2"),
    ("SOURCE_XPOS", "pix"), ("SOURCE_YPOS", "pix"), ("SOURCE_RA", "deg"), ("SOURCE_DEC", "deg"),
    ("EXTRACT2D_XSTART", "pix"), ("EXTRACT2D_YSTART", "pix"), ("EXTRACT2D_XSTOP", "pix"), ("EXTRACT2D_YSTOP", "pix"),
)

# EXTRACT1D columns are checked by name only: the vector length varies per extension.
WFSS_MULTISPEC = Layout(
    "WFSSMultiSpecModel",
    (
        Extension(
            "EXTRACT1D",
            columns=tuple((name, "f8") for name in WFSS_SPECTABLE_ORDER),
            required=True,
            per_slit=True,
            units=WFSS_SPECTABLE_UNITS,
            dtype_for=lambda table: wfss_spectable_dtype(_vector_length(table)),
        ),
    ),
)

_REGISTRY: dict[str, Layout] = {
    layout.model: layout for layout in (LEVEL1B, RAMP, IMAGE, CUBE, SEGMAP, MULTISLIT, WFSS_MULTISPEC)
}


def register_layout(name: str, layout: Layout) -> None:
    """Add (or replace) the layout of a model class, e.g. a reference model from webbcal.refs."""
    if layout.model != name:
        raise ValueError(f"layout is for {layout.model!r}, registered as {name!r}")
    _REGISTRY[name] = layout


def get_layout(name: str) -> Layout | None:
    return _REGISTRY.get(name)


def known_models() -> tuple[str, ...]:
    return tuple(sorted(_REGISTRY))


def require_layout(name: str, path=None) -> Layout:
    layout = get_layout(name)
    if layout is None:
        raise WebbcalError(path, f"unknown model class {name!r} (known: {', '.join(known_models())})")
    return layout
