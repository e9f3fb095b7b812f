"""The Product container and its FITS reader/writer (contract; see module docstrings).

CONTRACT (other modules rely on exactly this):

    Product(model: str, meta: fits.Header, arrays: dict[str, ndarray],
            ext_meta: dict[str, dict], tables: dict[str, ndarray], tree: dict,
            path: Path | None)

    read_product(path, expect: str | tuple[str, ...] | None = None, lazy: bool = True)
        -> Product. Raises WebbcalError(path, problem) for anything malformed
        (not FITS, truncated, missing required extension, wrong dtype/shape for the
        model's layout, wrong model when ``expect`` is given). Arrays are memory-mapped
        when ``lazy`` (no copy until touched); uint16 BZERO=32768 SCI reads as uint16.

    write_product(product, path) -> Path. Writes atomically (temp file in the same
        directory, then os.replace), with DATAMODL, schema dtypes, extension BUNIT,
        FILENAME/DATE, and an ``ASDF`` extension holding ``tree`` the way stdatamodels
        does, so ``stdatamodels.jwst.datamodels.open`` gives the right class and
        ``validate()`` passes.

Keys of ``arrays``/``tables``/``ext_meta`` are EXTNAMEs (``"SCI"``). Models made of
numbered sets of extensions (MultiSlitModel, WFSSMultiSpecModel; see
``layouts.Layout.per_slit``) use ``"EXTNAME,EXTVER"`` for every member (``"SCI,1"``,
``"SCI,2"``, ``"EXTRACT1D,3"``); ``ext_key``/``split_key`` convert.

Keywords the schemas read from the SCI header rather than PRIMARY (WCS info such as
RA_REF/V2_REF/S_REGION/SIP, photometry PHOTMJSR/PIXAR_SR, MJD-BEG/XPOSURE/TELAPSE; see
``layouts.is_sci_header_keyword``) are kept in ``meta`` like all others: the writer puts
them in SCI, the reader lifts them back (single-slit models only; MultiSlit keeps them
per slit in ``ext_meta["SCI,i"]``). BUNIT always stays in ``ext_meta``.

``tree`` is what the ASDF extension holds beyond the FITS headers: the gwcs of an image
at ``tree["meta"]["wcs"]``, of slit i of a MultiSlitModel at
``tree["slits"][i - 1]["meta"]["wcs"]``, webbcal provenance at ``tree["meta"]["webbcal"]``.
The FITS headers stay authoritative (no ``_fits_hash`` is written; see ``asdf_ext``).

With ``lazy=True`` plain arrays are copy-on-write ``numpy.memmap`` views of the file
(big-endian as stored; in-place edits stay in memory).
Pseudo-unsigned integers (uint16 with BZERO=32768, uint32 with BZERO=2**31: raw uncal
SCI, every DQ) cannot be a memmap of the right dtype, so they are ``ScaledMemmap``
objects: array-like (shape, dtype, ``np.asarray``, slicing, ``astype``, arithmetic)
that convert only the section touched (see ``lazy.py``).
"""

from __future__ import annotations

import datetime as _dt
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.utils.exceptions import AstropyWarning

from webbcal.errors import WebbcalError
from webbcal.io import asdf_ext
from webbcal.io.atomic import atomic_path
from webbcal.io.layouts import Layout, get_layout, is_sci_header_keyword
from webbcal.io.lazy import HDUSpan, image_span, map_file, read_image


@dataclass
class Product:
    """One DMS file in memory (see the module docstring for the key conventions)."""

    model: str
    meta: fits.Header = field(default_factory=fits.Header)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    ext_meta: dict[str, dict] = field(default_factory=dict)
    tables: dict[str, np.ndarray] = field(default_factory=dict)
    tree: dict = field(default_factory=dict)
    path: Path | None = None

    @property
    def layout(self) -> Layout | None:
        return get_layout(self.model)

    def slit_numbers(self) -> list[int]:
        """EXTVERs present in a numbered-set model (MultiSlitModel, WFSSMultiSpecModel)."""
        numbers = {split_key(key)[1] for key in (*self.arrays, *self.tables) if "," in key}
        return sorted(numbers)


def ext_key(name: str, ver: int | None = None) -> str:
    return name if ver is None else f"{name},{ver}"


def split_key(key: str) -> tuple[str, int]:
    """``"SCI,2"`` -> ("SCI", 2); ``"SCI"`` -> ("SCI", 1)."""
    name, _, ver = key.partition(",")
    return name, int(ver) if ver else 1


# Header cards that describe the HDU structure, never metadata.
_STRUCTURAL = {
    "SIMPLE", "EXTEND", "XTENSION", "BITPIX", "NAXIS", "PCOUNT", "GCOUNT", "EXTNAME",
    "EXTVER", "BZERO", "BSCALE", "TFIELDS", "THEAP", "CHECKSUM", "DATASUM", "GROUPS",
}
_STRUCTURAL_PREFIXES = ("NAXIS", "TTYPE", "TFORM", "TDIM", "TZERO", "TSCAL", "TNULL")


def _is_structural(key: str) -> bool:
    if key in _STRUCTURAL:
        return True
    return any(key.startswith(p) and key[len(p):].isdigit() for p in _STRUCTURAL_PREFIXES)


def metadata_cards(header: fits.Header) -> fits.Header:
    """``header`` without its structural cards (what ``Product.meta`` holds)."""
    out = fits.Header()
    for card in header.cards:
        if not _is_structural(card.keyword):
            out.append(card, end=True)
    return out


# ---------------------------------------------------------------------------------------
# reading


def read_product(
    path: str | os.PathLike,
    expect: str | tuple[str, ...] | None = None,
    lazy: bool = True,
    tree: bool = True,
) -> Product:
    """Open a DMS FITS file as a Product, validated against its model's layout.

    ``tree=False`` leaves the ASDF extension undecoded (``product.tree`` empty): decoding a
    gwcs costs ~0.1 s, which callers that already hold the WCS need not pay on every read.
    """
    path = Path(path)
    spans, asdf_raw = scan_file(path)
    primary = spans[0].header
    model = primary.get("DATAMODL")
    if not isinstance(model, str) or not model.strip():
        model = _guess_model(spans)
    model = model.strip()
    if expect is not None:
        wanted = (expect,) if isinstance(expect, str) else tuple(expect)
        if model not in wanted:
            raise WebbcalError(path, f"is a {model}, expected {' or '.join(wanted)}")
    layout = get_layout(model)
    per_slit = layout is not None and layout.per_slit

    product = Product(model=model, meta=metadata_cards(primary), path=path)
    file_map = None
    for span in spans[1:]:
        name = span.name
        if name == asdf_ext.EXTNAME:
            continue
        key = ext_key(name, span.ver) if (per_slit or span.ver != 1) else name
        if key in product.arrays or key in product.tables:
            raise WebbcalError(path, f"duplicate extension {key}")
        product.ext_meta[key] = _ext_cards(span.header)
        try:
            if span.is_table:
                product.tables[key] = _read_table(path, span)
            elif span.shape:
                if file_map is None and span.nbytes:
                    file_map = map_file(path)
                product.arrays[key] = read_image(path, span, lazy=lazy, file_map=file_map)
        except WebbcalError:
            raise
        except Exception as exc:  # astropy/numpy on corrupt data: any failure is the file's
            raise WebbcalError(path, f"extension {key} unreadable: {_reason(exc)}") from None

    if not per_slit:
        _lift_sci_keywords(product)
    if asdf_raw is not None and tree:
        try:
            product.tree = asdf_ext.decode_tree(asdf_raw)
        except Exception as exc:
            raise WebbcalError(path, f"ASDF extension unreadable: {_reason(exc)}") from None

    if layout is not None:
        from webbcal.io.validate import check_layout

        problem = check_layout(product, layout)
        if problem:
            raise WebbcalError(path, problem)
    return product


def _lift_sci_keywords(product: Product) -> None:
    """Schema keywords stored in the SCI header (WCS info, photometry, times) join ``meta``.

    A keyword also present in PRIMARY stays where it is, so a round trip is exact.
    """
    sci_cards = product.ext_meta.get("SCI")
    if not sci_cards:
        return
    for key in [k for k in sci_cards if is_sci_header_keyword(k) and k not in product.meta]:
        product.meta[key] = sci_cards.pop(key)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def scan_file(path: str | os.PathLike) -> tuple[list[HDUSpan], bytes | None]:
    """Read every header (not the data) and check the file holds all the data it declares.

    Returns one HDUSpan per HDU and the raw bytes of the ASDF extension (or None).
    """
    path = Path(path)
    if not path.exists():
        raise WebbcalError(path, "no such file")
    if path.is_dir():
        raise WebbcalError(path, "is a directory, not a FITS file")
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(80)
    if head.startswith(b"\x1f\x8b"):
        raise WebbcalError(path, "gzip-compressed; decompress it first (DMS products are read memory-mapped)")
    if not head.startswith(b"SIMPLE  ="):
        raise WebbcalError(path, "not a FITS file (no SIMPLE card at the start)")
    if size < 2880:
        raise WebbcalError(path, f"truncated: {size} bytes, shorter than one FITS header block")
    spans: list[HDUSpan] = []
    asdf_raw = None
    try:
        with warnings.catch_warnings():
            # astropy reports truncation and garbage cards as warnings: make them errors
            warnings.simplefilter("error", category=AstropyWarning)
            # Our own handle: astropy leaks its file when a header fails to parse.
            with open(path, "rb") as handle, fits.open(handle, memmap=False, lazy_load_hdus=False) as hdul:
                for index, hdu in enumerate(hdul):
                    for card in hdu.header.cards:  # astropy parses values lazily: do it here
                        card.value  # noqa: B018
                    data_offset = _data_offset(hdul, index, hdu)
                    span = image_span(hdu, index, data_offset)
                    if data_offset + span.nbytes > size:
                        where = span.name or f"HDU {index}"
                        raise WebbcalError(path, f"truncated: extension {where} needs {span.nbytes} data bytes, file ends at {size}")
                    spans.append(span)
                    if span.name == asdf_ext.EXTNAME and span.is_table:
                        asdf_raw = _asdf_bytes(hdu)
    except WebbcalError:
        raise
    except Exception as exc:
        raise WebbcalError(path, f"malformed or truncated FITS: {_reason(exc)}") from None
    if not spans:
        raise WebbcalError(path, "no HDUs")
    return spans, asdf_raw


def _data_offset(hdul, index: int, hdu) -> int:
    """Byte offset of an HDU's data in the file.

    ``HDUList.fileinfo`` gives it too, but costs O(number of HDUs) per call (it re-checks
    every header for resizing): quadratic for a WFSS cal with hundreds of slits.
    """
    offset = getattr(hdu, "_data_offset", None)
    return int(offset) if offset is not None else int(hdul.fileinfo(index)["datLoc"])


def _asdf_bytes(hdu) -> bytes:
    data = hdu.data
    if data is None or len(data) != 1 or asdf_ext.COLUMN not in data.columns.names:
        raise ValueError(f"ASDF extension lacks the single-row {asdf_ext.COLUMN} column")
    return np.asarray(data[asdf_ext.COLUMN][0], dtype=np.uint8).tobytes()


def _ext_cards(header: fits.Header) -> dict:
    cards = {}
    for card in header.cards:
        key = card.keyword
        if _is_structural(key) or key in ("", "COMMENT", "HISTORY"):
            continue
        cards[key] = card.value
    return cards


def _read_table(path: Path, span: HDUSpan) -> np.ndarray:
    """A binary table as a plain numpy structured array (TZERO/TSCAL applied)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", category=AstropyWarning)
        with open(path, "rb") as handle, fits.open(handle, memmap=False, character_as_bytes=True) as hdul:
            data = hdul[span.index].data
            if data is None:
                return np.zeros(0, dtype=[])
            columns = [data[name] for name in data.columns.names]
            fields = [(name, col.dtype.newbyteorder("="), col.shape[1:]) for name, col in zip(data.columns.names, columns)]
            out = np.empty(len(data), dtype=fields)
            for name, col in zip(data.columns.names, columns):
                out[name] = col
            return out


def _guess_model(spans: list[HDUSpan]) -> str:
    """No DATAMODL: pick the class the way stdatamodels does (by SCI rank and DQ)."""
    # "Product" is not a registered layout: such a file is read without validation.
    names = {span.name for span in spans[1:]}
    sci = next((span for span in spans[1:] if span.name == "SCI"), None)
    if sci is None or not sci.shape:
        return "Product"
    ndim = len(sci.shape)
    if ndim == 4 and "DQ" not in names:
        # stdatamodels says RampModel; raw integer counts are an uncal that lost DATAMODL.
        return "Level1bModel" if sci.raw_dtype.kind in "iu" else "RampModel"
    if ndim == 2 and any(span.name == "SCI" and span.ver == 2 for span in spans):
        return "MultiSlitModel"
    return {2: "ImageModel", 3: "CubeModel"}.get(ndim, "Product")


# ---------------------------------------------------------------------------------------
# writing


def write_product(product: Product, path: str | os.PathLike, *, validate: bool = True) -> Path:
    """Write ``product`` to ``path`` atomically as a DMS FITS file.

    The product is first checked against its model's layout (as ``read_product`` will
    check it), so a file webbcal cannot read back is never written; ``validate=False``
    exists only to craft bad files in tests.
    """
    path = Path(path)
    layout = get_layout(product.model)
    if validate and layout is not None:
        from webbcal.io.validate import check_layout

        problem = check_layout(product, layout, writing=True)
        if problem:
            raise WebbcalError(path, f"not written: {problem}")
    hdul = build_hdulist(product, path)
    with atomic_path(path) as tmp:
        hdul.writeto(tmp, overwrite=True, output_verify="silentfix")
    product.path = path
    return path


def build_hdulist(product: Product, path: Path) -> fits.HDUList:
    layout = get_layout(product.model)
    primary = fits.PrimaryHDU()
    header = primary.header
    meta = metadata_cards(product.meta)
    per_slit = layout is not None and layout.per_slit
    lowered = {}  # keywords the schema reads from the SCI header (not for per-slit models)
    if not per_slit and "SCI" in product.arrays:
        sci_cards = product.ext_meta.get("SCI", {})
        # in header order (not a set's): the same product must give the same bytes every run
        for key in [k for k in dict.fromkeys(meta.keys()) if is_sci_header_keyword(k) and k not in sci_cards]:
            lowered[key] = meta[key]
            del meta[key]
    header.extend(meta, unique=False)
    header["DATAMODL"] = product.model
    header["FILENAME"] = path.name
    header["DATE"] = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
    hdus: list = [primary]
    for key in _ordered_keys(product, layout):
        name, ver = split_key(key)
        spec = layout.extension(name) if layout else None
        cards = dict(product.ext_meta.get(key, {}))
        if key == "SCI":
            cards.update(lowered)
        if key in product.arrays:
            hdu = _image_hdu(product.arrays[key], spec, path, key)
            if spec is not None and spec.bunit and "BUNIT" not in cards:
                cards["BUNIT"] = default_bunit(product)
        else:
            hdu = _table_hdu(product.tables[key], spec, path, key)
        hdu.header["EXTNAME"] = name
        if "," in key or ver != 1:
            hdu.header["EXTVER"] = ver
        for card_key, value in cards.items():
            if not _is_structural(card_key):
                hdu.header[card_key] = value
        hdus.append(hdu)
    # Always written, even for an empty tree: the official Step.call(path) expects it.
    try:
        hdus.append(asdf_ext.tree_hdu(product.tree or {}))
    except Exception as exc:
        raise WebbcalError(path, f"metadata tree cannot be serialised to ASDF: {_reason(exc)}") from None
    return fits.HDUList(hdus)


def default_bunit(product: Product) -> str:
    """Data unit when the product does not say: calibrated after photom, else DN(/s)."""
    if isinstance(product.meta.get("BUNIT"), str):  # misplaced in PRIMARY: honour it
        return product.meta["BUNIT"]
    if product.meta.get("S_PHOTOM") == "COMPLETE":
        return "MJy/sr"
    return "DN" if product.model in ("Level1bModel", "RampModel") else "DN/s"


def _ordered_keys(product: Product, layout: Layout | None) -> list[str]:
    """Arrays and tables in schema order (per numbered set for MultiSlit-like models)."""
    keys = list(product.arrays) + [k for k in product.tables if k not in product.arrays]
    if layout is None:
        return keys
    rank = {ext.name: i for i, ext in enumerate(layout.extensions)}

    def sort_key(key):
        name, ver = split_key(key)
        position = rank.get(name, len(rank))
        return (ver, position) if layout.per_slit else (position, ver)

    return sorted(keys, key=sort_key)


def _image_hdu(array, spec, path: Path, key: str) -> fits.ImageHDU:
    data = np.asarray(array)
    if spec is not None and spec.dtype is not None:
        target = np.dtype(spec.dtype)
        if data.dtype.newbyteorder("=") != target:
            if data.dtype.kind == "f" and target.kind in "iu":
                raise WebbcalError(path, f"{key} is {data.dtype}, the schema needs {target}")
            data = data.astype(target)
    return fits.ImageHDU(data=data, uint=True)


def _table_hdu(table, spec, path: Path, key: str) -> fits.BinTableHDU:
    data = np.asarray(table)
    if spec is not None and spec.columns:
        wanted = spec.table_dtype(data)
        if tuple(data.dtype.names or ()) != tuple(wanted.names):
            raise WebbcalError(path, f"table {key} columns {data.dtype.names} differ from the schema {wanted.names}")
        if data.dtype != wanted:
            data = data.astype(wanted)
    hdu = fits.BinTableHDU(data=data)
    if spec is not None:
        names = list(data.dtype.names or ())
        for column, unit in spec.units:
            if column in names:
                hdu.header[f"TUNIT{names.index(column) + 1}"] = unit
    return hdu


class ProductWriter:
    """Writes products to temporary files next to their targets, each entered in ``stack``
    (``atomic_path``): all are renamed into place when the stack closes without error, all
    removed otherwise, so a stage that fails part-way leaves none of its products."""

    def __init__(self, stack):
        self.stack = stack
        self.pending: dict[Path, Path] = {}

    def write(self, product, target: Path) -> Path:
        if target in self.pending:  # rewritten (e.g. crf after a later step): reuse its temp file
            tmp = self.pending[target]
        else:
            tmp = self.stack.enter_context(atomic_path(target))
            self.pending[target] = tmp
        build_hdulist(product, target).writeto(tmp, overwrite=True, output_verify="silentfix")
        return tmp
