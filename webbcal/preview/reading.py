"""Open a product for drawing: headers, memory-mapped images and tables, no ASDF tree.

``read_product`` also decodes the ASDF extension (the gwcs), which costs ~2 s of asdf
extension loading per process; a preview needs none of it. Headers are still checked by
``scan_file`` (not FITS, truncated: one-line errors naming the file).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from webbcal.errors import WebbcalError
from webbcal.io import asdf_ext
from webbcal.io.layouts import get_layout
from webbcal.io.lazy import map_file, read_image
from webbcal.io.product import Product, ext_key, metadata_cards, scan_file


def read_for_preview(path) -> Product:
    """The product's ``meta``, ``ext_meta``, ``arrays`` (memmaps) and ``tables``; no ``tree``."""
    path = Path(path)
    spans, _ = scan_file(path)
    model = str(spans[0].header.get("DATAMODL", "") or "").strip() or guess_model(spans)
    layout = get_layout(model)
    per_slit = layout is not None and layout.per_slit
    product = Product(model=model, meta=metadata_cards(spans[0].header), path=path)
    file_map = None
    table_spans = []
    for span in spans[1:]:
        if span.name == asdf_ext.EXTNAME:
            continue
        key = ext_key(span.name, span.ver) if (per_slit or span.ver != 1) else span.name
        product.ext_meta[key] = dict(metadata_cards(span.header))
        if span.is_table:
            table_spans.append((key, span.index))
        elif span.shape:
            file_map = file_map if file_map is not None else map_file(path)
            product.arrays[key] = read_image(path, span, lazy=True, file_map=file_map)
    if table_spans:
        product.tables.update(read_tables(path, table_spans))
    return product


def read_tables(path: Path, wanted: list[tuple[str, int]]) -> dict[str, np.ndarray]:
    """Binary tables as structured numpy arrays (units stay in the headers' TUNITn)."""
    from astropy.io import fits

    tables = {}
    try:
        with fits.open(path, memmap=False, character_as_bytes=True) as hdul:
            for key, index in wanted:
                tables[key] = structured(hdul[index].data)
    except Exception as exc:  # astropy on a corrupt table: the file's problem
        raise WebbcalError(path, f"table unreadable: {type(exc).__name__}") from None
    return tables


def structured(data) -> np.ndarray:
    """A FITS table as a plain structured array, column by column so that TZERO/TSCAL
    apply (``np.asarray`` of the record would give an unsigned column's stored bytes)."""
    if data is None:
        return np.zeros(0, dtype=[])
    names = data.columns.names
    columns = [data[name] for name in names]
    out = np.empty(len(data), dtype=[(n, c.dtype.newbyteorder("="), c.shape[1:]) for n, c in zip(names, columns)])
    for name, column in zip(names, columns):
        out[name] = column
    return out


def guess_model(spans) -> str:
    """A file without DATAMODL: its class from what it holds."""
    names = {(span.name, span.ver) for span in spans[1:]}
    if any(name == "EXTRACT1D" for name, _ in names):
        return "WFSSMultiSpecModel"
    if ("SCI", 2) in names:
        return "MultiSlitModel"
    sci = next((span for span in spans[1:] if span.name == "SCI" and span.shape), None)
    return {2: "ImageModel", 3: "CubeModel"}.get(len(sci.shape) if sci else 0, "unknown")
