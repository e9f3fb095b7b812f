"""The ``ASDF`` extension of a DMS FITS file: metadata that has no FITS keyword (gwcs).

stdatamodels stores its whole model tree as an ASDF document in a BinTableHDU named
``ASDF`` with one column ``ASDF_METADATA`` holding the raw bytes as a single ``<N>B`` row
(``stdatamodels/fits_support.py``). webbcal writes only ``Product.tree`` there (the FITS
headers stay authoritative) and never writes ``_fits_hash``: without it stdatamodels
always re-reads every keyword from the headers, so the tree cannot go stale against them.

On reading a file written by stdatamodels, the tree also holds array nodes pointing at
FITS HDUs (``source: fits:SCI,1``) and copies of header keywords; the array nodes are
dropped (the arrays are read from their HDUs) and the bookkeeping keys removed.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from astropy.io import fits

EXTNAME = "ASDF"
COLUMN = "ASDF_METADATA"

# Keys of a decoded tree that are bookkeeping of asdf/stdatamodels, not metadata.
_BOOKKEEPING = ("asdf_library", "history", "_fits_hash", "extra_fits")


def encode_tree(tree: dict) -> bytes:
    """Serialise ``tree`` as an ASDF document (gwcs and astropy objects via their extensions)."""
    import asdf

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=asdf.exceptions.AsdfWarning)
        asdf.AsdfFile(_plain(tree)).write_to(buffer)
    return buffer.getvalue()


def tree_hdu(tree: dict) -> fits.BinTableHDU:
    """The ``ASDF`` BinTableHDU holding ``tree``, laid out exactly as stdatamodels does."""
    raw = np.frombuffer(encode_tree(tree), dtype=np.uint8)[None, :]
    column = fits.Column(name=COLUMN, format=f"{raw.shape[1]}B", array=raw)
    return fits.BinTableHDU.from_columns([column], name=EXTNAME)


def decode_tree(raw: bytes) -> dict:
    """Decode the ASDF bytes of an ``ASDF`` HDU into a plain dict tree (gwcs restored)."""
    import asdf
    from asdf import treeutil
    from asdf.tags.core import NDArrayType

    def resolve_arrays(node):
        if isinstance(node, NDArrayType):
            # Arrays stored in FITS HDUs are referenced, not embedded: read them from the HDUs.
            if isinstance(getattr(node, "_source", None), str):
                return treeutil.RemoveNode
            return np.array(node)  # an embedded block: load it before the file closes
        return node

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with asdf.open(io.BytesIO(raw), lazy_load=True, memmap=False, lazy_tree=False) as af:
            tree = treeutil.walk_and_modify(dict(af.tree), resolve_arrays)
            tree = _materialise(tree)
    for key in _BOOKKEEPING:
        tree.pop(key, None)
    return tree


def _materialise(node):
    """Copy containers out of the asdf file (tagged dicts/lists become plain ones)."""
    if isinstance(node, dict):
        return {key: _materialise(value) for key, value in node.items()}
    if isinstance(node, (list, tuple)) and not hasattr(node, "_fields"):
        return [_materialise(value) for value in node]
    if isinstance(node, np.ndarray):
        return np.array(node)
    return node


def _plain(node):
    """Numpy scalars and FITS_rec tables become types the ASDF serialiser accepts."""
    if isinstance(node, dict):
        return {str(key): _plain(value) for key, value in node.items()}
    if isinstance(node, (list, tuple)):
        return [_plain(value) for value in node]
    if isinstance(node, fits.FITS_rec):
        return np.asarray(node).copy()
    if isinstance(node, np.generic):
        return node.item()
    return node
