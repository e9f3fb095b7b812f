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
import re
import warnings

import numpy as np
import yaml
from astropy.io import fits

from webbcal import __version__

EXTNAME = "ASDF"
COLUMN = "ASDF_METADATA"

# Keys of a decoded tree that are bookkeeping of asdf/stdatamodels, not metadata.
_BOOKKEEPING = ("asdf_library", "history", "_fits_hash", "extra_fits")


# Tags of a document that holds only plain values: such a document is read and written
# with pyyaml alone. Creating the first AsdfFile in a process loads every installed asdf
# extension (about 3 s with astropy's and the jwst packages'), which would otherwise be
# paid by every Detector1 job just to store its provenance.
_PLAIN_TAGS = {"core/asdf-1.1.0", "core/software-1.0.0", "core/extension_metadata-1.0.0",
               "core/history_entry-1.0.0"}
_TAG_PATTERN = re.compile(rb"(?<![\w'\"])!([A-Za-z_][\w./-]*-\d+\.\d+\.\d+)")
_BLOCK_MAGIC = b"\xd3BLK"
_PLAIN_HEADER = ("#ASDF 1.0.0\n#ASDF_STANDARD 1.5.0\n%YAML 1.1\n%TAG ! tag:stsci.edu:asdf/\n"
                 "--- !core/asdf-1.1.0\n")


def encode_tree(tree: dict) -> bytes:
    """Serialise ``tree`` as an ASDF document (gwcs and astropy objects via their extensions)."""
    plain = _plain(tree)
    if _is_plain(plain):
        return _encode_plain(plain)
    from webbcal.io.asdf_loader import load_asdf
    asdf = load_asdf()

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=asdf.exceptions.AsdfWarning)
        deterministic_asdf_file(plain).write_to(buffer)
    return buffer.getvalue()


def deterministic_asdf_file(tree: dict):
    """An ``asdf.AsdfFile`` whose bytes depend only on ``tree``.

    asdf lists the extensions a file used in the order of a ``set`` of extension objects,
    which changes from one Python process to the next (hash randomisation): the same tree
    written twice gave different bytes. The list is sorted here so products and
    reference files are bit-identical between runs.
    """
    from webbcal.io.asdf_loader import load_asdf
    asdf = load_asdf()

    class _SortedExtensionHistory(asdf.AsdfFile):
        def _update_extension_history(self, tree, serialization_context):
            super()._update_extension_history(tree, serialization_context)
            history = tree.get("history")
            if isinstance(history, dict) and isinstance(history.get("extensions"), list):
                history["extensions"].sort(key=lambda meta: (str(meta.get("extension_uri", "")),
                                                             str(meta.get("extension_class", ""))))

    return _SortedExtensionHistory(tree)


def tree_hdu(tree: dict) -> fits.BinTableHDU:
    """The ``ASDF`` BinTableHDU holding ``tree``, laid out exactly as stdatamodels does."""
    raw = np.frombuffer(encode_tree(tree), dtype=np.uint8)[None, :]
    column = fits.Column(name=COLUMN, format=f"{raw.shape[1]}B", array=raw)
    return fits.BinTableHDU.from_columns([column], name=EXTNAME)


def decode_tree(raw: bytes) -> dict:
    """Decode the ASDF bytes of an ``ASDF`` HDU into a plain dict tree (gwcs restored)."""
    plain = _decode_plain(raw)
    if plain is not None:
        return plain
    from webbcal.io.asdf_loader import load_asdf
    asdf = load_asdf()
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


def _is_plain(node) -> bool:
    if isinstance(node, dict):
        return all(isinstance(k, str) and _is_plain(v) for k, v in node.items())
    if isinstance(node, list):
        return all(_is_plain(v) for v in node)
    return node is None or isinstance(node, (str, bool, int, float))


def _encode_plain(tree: dict) -> bytes:
    """A valid ASDF 1.5 document of plain values, written without loading asdf."""
    library = {"asdf_library": {"name": "webbcal", "version": __version__}}
    body = yaml.safe_dump({**library, **tree}, sort_keys=False, default_flow_style=False,
                          allow_unicode=False, width=100)
    body = body.replace("asdf_library:\n", "asdf_library: !core/software-1.0.0\n", 1)
    return (_PLAIN_HEADER + body + "...\n").encode("utf-8")


class _PlainLoader(yaml.SafeLoader):
    """SafeLoader that reads the bookkeeping tags of ASDF as plain mappings."""


def _tagged_mapping(loader, suffix, node):
    return loader.construct_mapping(node, deep=True)


_PlainLoader.add_multi_constructor("tag:stsci.edu:asdf/", _tagged_mapping)


def _decode_plain(raw: bytes) -> dict | None:
    """The tree of a document with only plain values, or None when asdf is needed."""
    if _BLOCK_MAGIC in raw:
        return None
    start = raw.find(b"\n---")
    if start < 0:
        return None
    tags = set(m.decode() for m in _TAG_PATTERN.findall(raw))
    if not tags <= _PLAIN_TAGS or b"!<" in raw:
        return None
    try:
        tree = yaml.load(raw, Loader=_PlainLoader)
    except yaml.YAMLError:
        return None
    if not isinstance(tree, dict):
        return None
    for key in _BOOKKEEPING:
        tree.pop(key, None)
    return tree
