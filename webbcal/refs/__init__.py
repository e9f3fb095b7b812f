"""The local reference-file cache: a directory plus ``manifest.json``.

CONTRACT (other modules rely on exactly this):

    RefCache(root)                       -- open a cache directory (manifest.json inside)
    RefCache.from_config(path_or_none)   -- root from the argument, else $WEBBCAL_REFS,
                                            else a CRDS-style cache under $CRDS_PATH
    cache.select(reftype, header) -> Path
        CRDS-like: exact match on the reftype's selectors present in the entry,
        latest USEAFTER not after DATE-OBS/TIME-OBS; raises ReferenceNotFound naming
        the reftype and the selector values that failed.
    cache.add(path, reftype=None)  -- copy a file in, record its selectors (atomic)
    load_reference(path, reftype, sci_header) -> Product
        opens it, checks it is that reftype and fits the exposure (detector, shape),
        remaps DQ through DQ_DEF to standard flags, cuts full-frame arrays to the
        exposure's SUBSTRT/SUBSIZE. Errors are WebbcalError(path, problem).
    get_references(reftypes, header, cache, overrides: dict[str, path]) -> dict[str, Product]
"""

from webbcal.refs.cache import RefCache, index_directory
from webbcal.refs.formats import REFTYPES, write_reference
from webbcal.refs.load import get_references, load_reference
from webbcal.refs.selection import SELECTORS

__all__ = ["REFTYPES", "SELECTORS", "RefCache", "get_references", "index_directory",
           "load_reference", "write_reference"]
