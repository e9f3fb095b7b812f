"""The official JWST reference-file formats (NIRCam), and a writer for each.

Each reference type maps to the stdatamodels class a CRDS file of that type opens as, its
extensions (name, dtype, allowed ranks) or its ASDF tree content. ``write_reference``
produces files that ``stdatamodels.jwst.datamodels.open`` reads as that class and that pass
its ``validate()``, so webbcal's own (simulated) references and real CRDS files are
interchangeable in the cache.

DQ convention: ``arrays["DQ"]`` given to the writer holds *standard* pixel flags
(``webbcal.dqflags``); the writer stores it compressed through the DQ_DEF table, as
stdatamodels' ``ReferenceFileModel.save`` does, and ``load_reference`` expands it back.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.io import fits

from webbcal import dqflags
from webbcal.errors import WebbcalError
from webbcal.io.atomic import atomic_path
from webbcal.refs.keywords import keywords_to_meta

FULL_FRAME = 2048
GRISM_EXP_TYPES = ("NRC_WFSS", "NRC_TSGRISM", "NRC_GRISM")


@dataclass(frozen=True)
class Plane:
    """One image extension of a FITS reference."""

    name: str
    dtype: str
    ndims: tuple[int, ...]
    required: bool = False
    bunit: str | None = None  # default BUNIT written on SCI


@dataclass(frozen=True)
class RefFormat:
    reftype: str
    model: str                      # DATAMODL (see ``model_for`` for EXP_TYPE variants)
    kind: str = "fits"              # "fits" or "asdf"
    planes: tuple[Plane, ...] = ()
    tables: dict[str, tuple] = field(default_factory=dict)   # EXTNAME -> schema columns
    required_tables: tuple[str, ...] = ()
    dq_def: bool = False
    spatial: bool = False           # pixel maps of the detector: subarray keywords, cutting
    tree_keys: tuple[str, ...] = ()  # required top-level ASDF content

    @property
    def primary(self) -> Plane | None:
        return self.planes[0] if self.planes else None

    def plane(self, name: str) -> Plane | None:
        return next((p for p in self.planes if p.name == name), None)


def _sci(ndims=(2,), bunit=None):
    return Plane("SCI", "float32", ndims, required=True, bunit=bunit)


_ERR2 = Plane("ERR", "float32", (2,))
_DQ2 = Plane("DQ", "uint32", (2,))

# Table columns (name, numpy dtype, shape of one cell) from the stdatamodels schemas.
_IMG_PHOTOM = (("filter", "S12", ()), ("pupil", "S12", ()), ("photmjsr", "f4", ()),
               ("uncertainty", "f4", ()))
_WFSS_PHOTOM = (("filter", "S12", ()), ("pupil", "S15", ()), ("order", "i2", ()),
                ("photmjsr", "f4", ()), ("uncertainty", "f4", ()), ("nelem", "i2", ()),
                ("wavelength", "f4", None), ("relresponse", "f4", None),
                ("reluncertainty", "f4", None))
_IMG_APCORR = (("filter", "S12", ()), ("pupil", "S15", ()), ("eefraction", "f4", ()),
               ("radius", "f4", ()), ("apcorr", "f4", ()), ("skyin", "f4", ()),
               ("skyout", "f4", ()))
_WFSS_APCORR = (("filter", "S12", ()), ("pupil", "S15", ()), ("wavelength", "f4", None),
                ("nelem_wl", "i2", ()), ("size", "u1", None), ("nelem_size", "i2", ()),
                ("apcorr", "f4", None), ("apcorr_err", "f4", None))


def _timecoeff(pupil_len: int, with_order: bool) -> dict[str, tuple]:
    key = (("filter", "S12", ()), ("pupil", f"S{pupil_len}", ()))
    if with_order:
        key += (("order", "i2", ()),)
    t0 = (("t0", "f4", ()),)
    return {
        "TIMECOEFF_LINEAR": key + t0 + (("lossperyear", "f4", ()),),
        "TIMECOEFF_EXPONENTIAL": key + t0 + (("amplitude", "f4", ()), ("tau", "f4", ()),
                                             ("const", "f4", ())),
        "TIMECOEFF_POWERLAW": key + t0 + (("year1value", "f4", ()), ("tsoft", "f4", ()),
                                          ("alpha", "f4", ())),
    }


FORMATS: dict[str, RefFormat] = {f.reftype: f for f in (
    RefFormat("mask", "MaskModel", planes=(Plane("DQ", "uint32", (2,), required=True),),
              dq_def=True, spatial=True),
    RefFormat("saturation", "SaturationModel", planes=(_sci(bunit="DN"), _DQ2), dq_def=True,
              spatial=True),
    RefFormat("superbias", "SuperBiasModel", planes=(_sci(bunit="DN"), _ERR2, _DQ2),
              dq_def=True, spatial=True),
    RefFormat("linearity", "LinearityModel",
              planes=(Plane("COEFFS", "float32", (3,), required=True),
                      Plane("INV_COEFFS", "float32", (3,)), _DQ2),
              dq_def=True, spatial=True),
    RefFormat("dark", "DarkModel",
              planes=(_sci((3,), bunit="DN"), Plane("ERR", "float32", (3,)), _DQ2,
                      Plane("AVDRKCUR", "float32", (2,))),
              dq_def=True, spatial=True),
    RefFormat("gain", "GainModel", planes=(_sci(bunit="electrons/DN"),), spatial=True),
    RefFormat("readnoise", "ReadnoiseModel", planes=(_sci(bunit="DN"),), spatial=True),
    RefFormat("ipc", "IPCModel", planes=(_sci((2, 4)),), spatial=False),
    RefFormat("flat", "FlatModel", planes=(_sci(), _ERR2, _DQ2), dq_def=True, spatial=True),
    RefFormat("area", "PixelAreaModel", planes=(_sci(),), spatial=True),
    RefFormat("bkg", "WfssBkgModel", planes=(_sci(bunit="DN/s"), _ERR2, _DQ2), dq_def=True,
              spatial=True),
    RefFormat("photom", "NrcImgPhotomModel",
              tables={"PHOTOM": _IMG_PHOTOM, **_timecoeff(12, False)},
              required_tables=("PHOTOM",)),
    RefFormat("apcorr", "NrcImgApcorrModel", tables={"APCORR": _IMG_APCORR},
              required_tables=("APCORR",)),
    RefFormat("distortion", "DistortionModel", kind="asdf", tree_keys=("model",)),
    RefFormat("filteroffset", "FilteroffsetModel", kind="asdf", tree_keys=("filters",)),
    RefFormat("specwcs", "NIRCAMGrismModel", kind="asdf",
              tree_keys=("displ", "dispx", "dispy", "orders")),
    RefFormat("wavelengthrange", "WavelengthrangeModel", kind="asdf",
              tree_keys=("wavelengthrange", "order")),
    RefFormat("abvegaoffset", "ABVegaOffsetModel", kind="asdf", tree_keys=("abvega_offset",)),
)}

# Variants chosen by EXP_TYPE (WFSS photom/apcorr have other table layouts).
_WFSS_VARIANTS = {
    "photom": RefFormat("photom", "NrcWfssPhotomModel",
                        tables={"PHOTOM": _WFSS_PHOTOM, **_timecoeff(15, True)},
                        required_tables=("PHOTOM",)),
    "apcorr": RefFormat("apcorr", "NrcWfssApcorrModel", tables={"APCORR": _WFSS_APCORR},
                        required_tables=("APCORR",)),
}

REFTYPES = tuple(FORMATS)
ASDF_UNIT_DEFAULTS = {
    "distortion": {"input_units": "pixel", "output_units": "arcsec"},
    "filteroffset": {"input_units": "pixel"},
    "specwcs": {"input_units": "micron", "output_units": "micron"},
    "wavelengthrange": {"wavelength_units": "micron"},
}


def format_for(reftype: str, exp_type: str | None = None) -> RefFormat:
    """The format of ``reftype`` (the WFSS variant for photom/apcorr of grism exposures)."""
    key = reftype.lower()
    if key not in FORMATS:
        raise WebbcalError(None, f"unknown reference type {reftype!r}; known: {', '.join(REFTYPES)}")
    if key in _WFSS_VARIANTS and str(exp_type or "").upper() in GRISM_EXP_TYPES:
        return _WFSS_VARIANTS[key]
    return FORMATS[key]


def models_for(reftype: str) -> tuple[str, ...]:
    """Every DATAMODL a file of ``reftype`` may carry."""
    key = reftype.lower()
    names = [FORMATS[key].model]
    if key in _WFSS_VARIANTS:
        names.append(_WFSS_VARIANTS[key].model)
    return tuple(names)


def nircam_module_channel(detector: str | None) -> tuple[str | None, str | None]:
    """NRCA3 -> ("A", "SHORT"); NRCBLONG -> ("B", "LONG")."""
    det = str(detector or "").upper()
    if not det.startswith("NRC") or len(det) < 4 or det[3] not in "AB":
        return None, None
    return det[3], "LONG" if det.endswith("LONG") else "SHORT"


# ---------------------------------------------------------------------------------------
# writing


def write_reference(path: str | os.PathLike, reftype: str, meta: dict, arrays: dict | None = None,
                    tables: dict | None = None, tree: dict | None = None) -> Path:
    """Write a reference file of ``reftype`` in its official format, atomically.

    ``meta``: FITS keyword -> value (USEAFTER, DETECTOR, ... ; AUTHOR/PEDIGREE/DESCRIP get
    defaults). ``arrays``: EXTNAME -> array (FITS types; ``DQ`` in standard flags).
    ``tables``: EXTNAME -> structured array / dict of columns / astropy Table (``DQ_DEF``
    optional: made from the flags present). ``tree``: ASDF content for the ASDF types.
    """
    path = Path(path)
    keywords = {str(k).upper(): v for k, v in (meta or {}).items() if v is not None}
    fmt = format_for(reftype, keywords.get("EXP_TYPE"))
    keywords = _complete_keywords(path, fmt, keywords, arrays or {})
    if fmt.kind == "asdf":
        return _write_asdf(path, fmt, keywords, tree or {}, tables or {})
    return _write_fits(path, fmt, keywords, arrays or {}, tables or {})


def _complete_keywords(path: Path, fmt: RefFormat, keywords: dict, arrays: dict) -> dict:
    out = {
        "TELESCOP": "JWST",
        "INSTRUME": "NIRCAM",
        "PEDIGREE": "DUMMY",
        "AUTHOR": "webbcal",
        "DESCRIP": f"NIRCam {fmt.reftype} reference file",
        **keywords,
    }
    # CRDS FITS files carry REFTYPE upper-case; ASDF ones lower-case (stdatamodels on_save)
    out["REFTYPE"] = fmt.reftype if fmt.kind == "asdf" else fmt.reftype.upper()
    out["DATAMODL"] = fmt.model
    out["FILENAME"] = path.name
    if not out.get("USEAFTER"):
        raise WebbcalError(path, f"{fmt.reftype} reference needs a USEAFTER keyword")
    if "DETECTOR" not in out and fmt.reftype not in ("apcorr", "wavelengthrange", "abvegaoffset", "specwcs", "filteroffset"):
        raise WebbcalError(path, f"{fmt.reftype} reference needs a DETECTOR keyword")
    module, channel = nircam_module_channel(out.get("DETECTOR"))
    if fmt.reftype in ("distortion", "filteroffset", "specwcs"):
        if module and "MODULE" not in out:
            out["MODULE"] = module
        if channel and "CHANNEL" not in out:
            out["CHANNEL"] = channel
    if fmt.reftype == "distortion" and "P_PUPIL" not in out and "PUPIL" in out:
        out["P_PUPIL"] = f"{out['PUPIL']}|"
    per_pixel_ipc = fmt.reftype == "ipc" and np.ndim(_find(arrays, "SCI")) == 4
    if fmt.spatial or per_pixel_ipc:
        _complete_subarray(path, fmt, out, arrays)
    if fmt.reftype == "dark":
        sci = _find(arrays, "SCI")
        if sci is not None and "NGROUPS" not in out:
            out["NGROUPS"] = int(np.shape(sci)[0])
        for key in ("NFRAMES", "GROUPGAP"):
            if key not in out:
                raise WebbcalError(path, f"dark reference needs the {key} keyword")
    return out


def _complete_subarray(path: Path, fmt: RefFormat, out: dict, arrays: dict) -> None:
    """Fill SUBARRAY/SUBSTRT/SUBSIZE from the array shape when the caller gave none."""
    primary = _find(arrays, fmt.primary.name)
    if primary is None:
        return
    ny, nx = np.shape(primary)[-2:]
    out.setdefault("SUBSTRT1", 1)
    out.setdefault("SUBSTRT2", 1)
    out.setdefault("SUBSIZE1", int(nx))
    out.setdefault("SUBSIZE2", int(ny))
    out.setdefault("FASTAXIS", 1)
    out.setdefault("SLOWAXIS", 2)
    if "SUBARRAY" not in out:
        full = (nx, ny) == (FULL_FRAME, FULL_FRAME)
        out["SUBARRAY"] = "FULL" if full else "GENERIC"
    if (out["SUBSIZE1"], out["SUBSIZE2"]) != (nx, ny):
        raise WebbcalError(path, f"SUBSIZE1/2 = {out['SUBSIZE1']}x{out['SUBSIZE2']} but the "
                                 f"{fmt.primary.name} array is {nx}x{ny}")


def _find(mapping: dict, name: str):
    for key, value in mapping.items():
        if str(key).upper() == name:
            return value
    return None


def _write_fits(path: Path, fmt: RefFormat, keywords: dict, arrays: dict, tables: dict) -> Path:
    arrays = {str(k).upper(): v for k, v in arrays.items()}
    tables = {str(k).upper(): v for k, v in tables.items()}
    unknown = set(arrays) - {p.name for p in fmt.planes}
    if unknown:
        raise WebbcalError(path, f"{fmt.model} has no extension(s) {sorted(unknown)}; "
                                 f"allowed: {[p.name for p in fmt.planes]}")
    primary = fits.PrimaryHDU()
    bunit = keywords.pop("BUNIT", None)
    # the WFSS photom units live in the PHOTOM extension header (nrcwfss_photom schema)
    table_units = {k: keywords.pop(k) for k in ("PHOTUNIT", "WAVEUNIT") if k in keywords}
    for key, value in keywords.items():
        primary.header[key] = value
    hdus = [primary]

    dq_def = None
    if fmt.dq_def and "DQ" in arrays:
        dq_def = _coerce_dq_def(path, tables.pop("DQ_DEF", None), arrays["DQ"])

    for plane in fmt.planes:
        if plane.name not in arrays:
            if plane.required:
                raise WebbcalError(path, f"{fmt.model} needs the {plane.name} array")
            continue
        data = np.asarray(arrays[plane.name])
        if data.ndim not in plane.ndims:
            raise WebbcalError(path, f"{plane.name} must be {' or '.join(map(str, plane.ndims))}-D, got shape {data.shape}")
        if plane.name == "DQ":
            data = compress_dq(np.asarray(data, dtype=np.uint32), dq_def)
        hdu = fits.ImageHDU(data=data.astype(plane.dtype, copy=False), name=plane.name, uint=True)
        if plane.name == "SCI" and (bunit or plane.bunit):
            hdu.header["BUNIT"] = bunit or plane.bunit
        hdus.append(hdu)
    _check_plane_shapes(path, fmt, arrays)

    if dq_def is not None:
        hdus.append(fits.BinTableHDU(data=dq_def, name="DQ_DEF"))
    for name in fmt.required_tables:
        if name not in tables:
            raise WebbcalError(path, f"{fmt.model} needs the {name} table")
    for name, table in tables.items():
        if name not in fmt.tables:
            raise WebbcalError(path, f"{fmt.model} has no table {name}; allowed: {sorted(fmt.tables)}")
        hdu = fits.BinTableHDU(data=coerce_table(path, name, table, fmt.tables[name]), name=name)
        if name == "PHOTOM":
            for key, value in table_units.items():
                hdu.header[key] = value
        hdus.append(hdu)
    with atomic_path(path) as tmp:
        fits.HDUList(hdus).writeto(tmp, overwrite=True)
    return path


def _check_plane_shapes(path: Path, fmt: RefFormat, arrays: dict) -> None:
    """Every pixel map must cover the same pixels as the primary array."""
    if not fmt.spatial:
        return
    shape = np.shape(arrays[fmt.primary.name])[-2:]
    for name, array in arrays.items():
        if np.shape(array)[-2:] != shape:
            raise WebbcalError(path, f"{name} covers {np.shape(array)[-2:]} pixels, "
                                     f"{fmt.primary.name} covers {shape}")


DQ_DEF_DTYPE = np.dtype([("BIT", ">i4"), ("VALUE", ">u4"), ("NAME", "S40"), ("DESCRIPTION", "S80")])


def default_dq_def(dq: np.ndarray) -> np.ndarray:
    """An identity DQ_DEF listing the standard flags present in ``dq`` (DO_NOT_USE at least)."""
    present = int(np.bitwise_or.reduce(np.asarray(dq, dtype=np.uint32), axis=None)) if np.size(dq) else 0
    present |= dqflags.DO_NOT_USE
    rows = [(bit.bit_length() - 1, bit, name, name.replace("_", " ").lower())
            for name, bit in dqflags.PIXEL.items() if bit and present & bit]
    return np.array(rows, dtype=DQ_DEF_DTYPE)


def _coerce_dq_def(path: Path, table, dq) -> np.ndarray:
    if table is None:
        return default_dq_def(dq)
    return coerce_table(path, "DQ_DEF", table, (("BIT", ">i4", ()), ("VALUE", ">u4", ()),
                                                ("NAME", "S40", ()), ("DESCRIPTION", "S80", ())))


def compress_dq(dq: np.ndarray, dq_def: np.ndarray | None) -> np.ndarray:
    """Standard flags -> the file's own bit values through DQ_DEF (inverse of ``expand_dq``)."""
    if dq_def is None or len(dq_def) == 0:
        return dq
    out = np.zeros(dq.shape, dtype=np.uint32)
    for value, name in zip(dq_def["VALUE"], dq_def["NAME"]):
        standard = dqflags.PIXEL.get(_text(name).strip())
        if standard is None:
            continue
        out[(dq & np.uint32(standard)) != 0] |= np.uint32(value)
    return out


def _text(value) -> str:
    return value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)


def coerce_table(path: Path, name: str, table, columns: tuple) -> np.ndarray:
    """Any table-like (structured array, dict of columns, astropy Table) -> schema dtypes.

    Schema columns come first in schema order; extra columns are kept after them.
    """
    source = _columns_of(table)
    missing = [col for col, _, _ in columns if col not in source]
    if missing:
        raise WebbcalError(path, f"table {name} lacks column(s) {missing}")
    nrows = len(next(iter(source.values()))) if source else 0
    fields, values = [], []
    schema_names = {col for col, _, _ in columns}
    for col, dtype, cell in columns:
        data = np.asarray(source[col])
        if np.dtype(dtype).kind == "S":
            data = _as_ascii(path, name, col, data, np.dtype(dtype).itemsize)
        shape = data.shape[1:] if cell is None else cell
        fields.append((col, dtype, shape))
        values.append(data)
    for col, data in source.items():
        if col not in schema_names:
            data = np.asarray(data)
            if data.dtype.kind == "U":
                data = np.char.encode(data, "ascii")
            fields.append((col, data.dtype, data.shape[1:]))
            values.append(data)
    out = np.zeros(nrows, dtype=fields)
    for (col, _, _), data in zip(fields, values):
        if len(data) != nrows:
            raise WebbcalError(path, f"table {name} column {col} has {len(data)} rows, expected {nrows}")
        out[col] = data
    return out


def _columns_of(table) -> dict:
    if isinstance(table, dict):
        return dict(table)
    names = getattr(table, "colnames", None) or getattr(getattr(table, "dtype", None), "names", None)
    if not names:
        raise TypeError(f"not a table: {type(table).__name__}")
    return {col: np.asarray(table[col]) for col in names}


def _as_ascii(path: Path, name: str, col: str, data: np.ndarray, width: int) -> np.ndarray:
    if data.dtype.kind == "U":
        data = np.char.encode(data, "ascii")
    data = data.astype(bytes)
    too_long = [v for v in data.ravel() if len(v) > width]
    if too_long:
        raise WebbcalError(path, f"table {name} column {col}: {too_long[0]!r} is longer than {width} characters")
    return data.astype(f"S{width}")


def _write_asdf(path: Path, fmt: RefFormat, keywords: dict, tree: dict, tables: dict) -> Path:
    from webbcal.io.asdf_ext import deterministic_asdf_file  # asdf loads only for ASDF types

    content = dict(tree)
    for key, table in tables.items():  # e.g. abvega_offset given as a table
        content.setdefault(key, table)
    if fmt.reftype == "abvegaoffset" and not hasattr(content.get("abvega_offset"), "colnames"):
        from astropy.table import Table

        content["abvega_offset"] = Table(_columns_of(content["abvega_offset"]))
    missing = [key for key in fmt.tree_keys if key not in content]
    if missing:
        raise WebbcalError(path, f"{fmt.model} needs {missing} in its tree")
    meta = keywords_to_meta(keywords)
    for key, value in ASDF_UNIT_DEFAULTS.get(fmt.reftype, {}).items():
        meta.setdefault(key, value)
    content["meta"] = _deep_merge(meta, content.pop("meta", {}) or {})
    with atomic_path(path) as tmp:
        deterministic_asdf_file(content).write_to(tmp)
    return path


def _deep_merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


# ---------------------------------------------------------------------------------------
# reading the metadata of any reference file (FITS or ASDF)


def file_kind(path: str | os.PathLike) -> str:
    """"fits" or "asdf" from the file's first bytes (names can lie)."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            head = handle.read(9)
    except FileNotFoundError:
        raise WebbcalError(path, "no such file") from None
    except IsADirectoryError:
        raise WebbcalError(path, "is a directory, not a reference file") from None
    if head.startswith(b"SIMPLE  ="):
        return "fits"
    if head.startswith(b"#ASDF"):
        return "asdf"
    raise WebbcalError(path, "neither a FITS nor an ASDF file")


def read_reference_keywords(path: str | os.PathLike) -> dict:
    """The reference's metadata as FITS keyword -> value (primary header or ASDF ``meta``)."""
    from webbcal.refs.keywords import meta_to_keywords

    path = Path(path)
    kind = file_kind(path)
    try:
        if kind == "fits":
            header = fits.getheader(path, 0)
            return {card.keyword: card.value for card in header.cards
                    if card.keyword and card.keyword not in ("COMMENT", "HISTORY")}
        from webbcal.io.asdf_loader import load_asdf
        asdf = load_asdf()

        with asdf.open(path, lazy_load=True, memmap=False) as handle:
            return meta_to_keywords(dict(handle.tree.get("meta") or {}))
    except WebbcalError:
        raise
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [""])[0]
        raise WebbcalError(path, f"unreadable {kind.upper()} reference: {type(exc).__name__}: {first}") from None
