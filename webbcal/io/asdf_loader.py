"""``load_asdf()``: the ``asdf`` module, with its extension manifests parsed by libyaml.

The first time a process reads or writes an ASDF tree that holds gwcs or astropy objects,
asdf loads every installed extension and parses ~50 manifest documents with pyyaml's
pure-Python loader: 0.46 s of a 4 s Image2 run. The same documents parse to the same
Python objects with pyyaml's C loader (libyaml) in 0.24 s less. asdf reads its schemas with
the C loader already; only the manifests use ``yaml.safe_load``. When libyaml or the
attribute asdf uses is missing, asdf is left exactly as it is.
"""

from __future__ import annotations

import yaml

_configured = False


class _LibyamlSafeLoad:
    """Stands in for the ``yaml`` module inside asdf's manifest reader."""

    @staticmethod
    def safe_load(stream):
        return yaml.load(stream, Loader=yaml.CSafeLoader)


def load_asdf():
    """Import ``asdf`` (once per process, switching its manifest parsing to libyaml)."""
    global _configured
    import asdf

    if not _configured:
        _configured = True
        try:
            from asdf.extension import _manifest
        except ImportError:
            return asdf
        if getattr(yaml, "__with_libyaml__", False) and getattr(_manifest, "yaml", None) is yaml:
            _manifest.yaml = _LibyamlSafeLoad
    return asdf
